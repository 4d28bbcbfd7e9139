"""The Wasserstein-2 style loss (``style_loss="w2"``) and the moving average of the iterates (``average``)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import tiny_weights as tw
import torch

from impasto.errors import Cancelled, ConfigError
from impasto.events import CancelToken, Preview, Progress
from impasto.gatys import checkpoint as ck
from impasto.gatys import losses as L
from impasto.gatys.config import PaintConfig
from impasto.gatys.optimize import IterateAverage, evaluate, paint, prepare


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("w2avg")
    weights = tw.write(tw.vgg_state(widths=(8, 12, 16, 16, 16)), d / "vgg19-d01eb7cb.pth")
    content = tw.image(size=(64, 48), seed=0)
    style = tw.image(size=(56, 56), seed=1)
    cfg = PaintConfig(
        model_file=str(weights), image_size=48, num_iterations=12, print_iter=0, save_iter=0, seed=3, gpu="c"
    )
    return d, cfg, content, style


# --- the W2 loss against closed forms -------------------------------------------------------------------------


def test_w2_equals_closed_form_for_diagonal_gaussians() -> None:
    """Diagonal covariances: W2^2 = |mu - mu_s|^2 + sum (sqrt(a) - sqrt(b))^2."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(5, generator=gen) + 0.1, torch.rand(5, generator=gen) + 0.1
    mu, mu_s = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    target = L.gaussian_stats(mu_s, torch.diag(b))
    expected = ((mu - mu_s) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    got = L.w2_distance(mu, torch.diag(a), target)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)
    # A rotated pair (same eigenbasis) has the same distance: the formula is basis-free.
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    rot = L.gaussian_stats(q @ mu_s.double(), q @ torch.diag(b).double() @ q.t())
    got_rot = L.w2_distance(q @ mu.double(), q @ torch.diag(a).double() @ q.t(), rot)
    assert got_rot.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)


def test_w2_is_zero_for_identical_statistics() -> None:
    f = torch.randn(1, 6, 5, 7, generator=torch.Generator().manual_seed(1))
    mean, cov = L.mean_cov(f)
    assert L.w2_distance(mean, cov, L.gaussian_stats(mean, cov)).abs().item() < 1e-5
    assert abs(L.w2_style_loss(f, L.gaussian_stats(mean, cov), 100.0).item()) < 1e-4


def test_w2_agrees_with_the_style_score() -> None:
    """The loss and impasto.score's W2 style distance (a float64 reference) measure the same thing."""
    from impasto import score

    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(1, 6, 8, 9, generator=gen), torch.randn(1, 6, 7, 7, generator=gen) * 1.5 + 0.3
    mean, cov = L.mean_cov(a)
    got = L.w2_distance(mean, cov, L.gaussian_stats(*L.mean_cov(b))).item()
    assert got == pytest.approx(score.gaussian_w2(*score.feature_stats(b), *score.feature_stats(a)), rel=1e-4)


def test_mean_cov_and_style_loss_formula() -> None:
    f = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(2))
    flat = f[0].reshape(4, 15).double()
    mean, cov = L.mean_cov(f)
    torch.testing.assert_close(mean.double(), flat.mean(1), rtol=1e-6, atol=1e-6)
    centred = flat - flat.mean(1, keepdim=True)
    torch.testing.assert_close(cov.double(), centred @ centred.t() / 15, rtol=1e-5, atol=1e-6)
    target = L.gaussian_stats(torch.zeros(4), torch.eye(4))
    # normalisation: divided by C
    expected = 7.0 * L.w2_distance(mean, cov, target).item() / 4
    assert L.w2_style_loss(f, target, 7.0).item() == pytest.approx(expected, rel=1e-5)
    assert L.w2_style_loss(f, target, 7.0).dtype == torch.float32


def test_w2_gradient_matches_finite_differences() -> None:
    """float64 gradcheck through the eigenvalues of S_s^1/2 S S_s^1/2 (a full-rank case: N > C)."""
    gen = torch.Generator().manual_seed(3)
    style = torch.randn(3, 40, generator=gen, dtype=torch.float64)
    s_mean = style.mean(1)
    s_cov = (style - s_mean[:, None]) @ (style - s_mean[:, None]).t() / 40
    target = L.gaussian_stats(s_mean, s_cov)
    target = dataclasses.replace(target, mean=target.mean.double(), cov=target.cov.double())

    def w2(flat: torch.Tensor) -> torch.Tensor:  # (C, N) float64
        mean = flat.mean(1)
        centred = flat - mean[:, None]
        return L.w2_distance(mean, centred @ centred.t() / flat.shape[1], target)

    x = (torch.randn(3, 12, generator=gen, dtype=torch.float64) * 2 + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(w2, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_blend_is_the_pooled_features_statistics() -> None:
    """Blending two styles with weights n1/(n1+n2) gives the mean and covariance of their features pooled."""
    gen = torch.Generator().manual_seed(4)
    f1, f2 = torch.randn(1, 4, 3, 4, generator=gen), torch.randn(1, 4, 2, 4, generator=gen) + 1.0
    pooled = torch.cat([f1.reshape(1, 4, 1, 12), f2.reshape(1, 4, 1, 8)], dim=3)  # (1, C, 1, 20)
    blended = L.blend_gaussians([L.mean_cov(f1), L.mean_cov(f2)], [12 / 20, 8 / 20])
    mean, cov = L.mean_cov(pooled)
    torch.testing.assert_close(blended.mean, mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blended.cov, cov, rtol=1e-5, atol=1e-5)
    one = L.blend_gaussians([L.mean_cov(f1)], [1.0])
    torch.testing.assert_close(one.cov, L.mean_cov(f1)[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(one.cov_sqrt @ one.cov_sqrt, one.cov.double(), rtol=1e-4, atol=1e-5)


# --- W2 painting ----------------------------------------------------------------------------------------------


def _style_terms(problem, raw: torch.Tensor) -> float:  # noqa: ANN001
    with torch.no_grad():
        _, record = evaluate(problem, raw)
    return sum(v for k, v in record.items() if k.startswith("style:"))


@pytest.mark.parametrize("fast", [False, True])
def test_w2_paint_reduces_the_w2_distance(setup, fast) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(style_loss="w2", content_weight=0.0, tv_weight=0.0, style_weight=1.0, num_iterations=30)
    problem = prepare(content, [style], cfg)
    assert problem.style_stats and set(problem.style_stats) == set(problem.style_targets)
    result = paint(content, [style], cfg.replace(fast=fast))
    before, after = _style_terms(problem, problem.init), _style_terms(problem, result.raw)
    assert math.isfinite(after) and after < 0.5 * before, (before, after)
    assert all(math.isfinite(v) for step in result.losses for v in step.values())


def test_w2_with_normalize_options_and_two_styles(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(style_loss="w2", normalize_weights=True, normalize_gradients=True, num_iterations=4)
    result = paint(content, [style, tw.image(size=(40, 40), seed=7)], cfg.replace(style_blend_weights="3,1"))
    assert all(math.isfinite(v) for step in result.losses for v in step.values())


# --- the moving average ---------------------------------------------------------------------------------------


def test_iterate_average_is_the_bias_corrected_ema() -> None:
    xs = [torch.full((1, 3, 2, 2), float(v)) for v in (4.0, -2.0, 7.0, 1.0)]
    d = 0.9
    avg = IterateAverage(d)
    for t, x in enumerate(xs, start=1):
        avg.update(x)
        expected = sum((1 - d) * d ** (t - k) * xs[k - 1] for k in range(1, t + 1)) / (1 - d**t)
        torch.testing.assert_close(avg.value(), expected, rtol=1e-6, atol=1e-6)
    first = IterateAverage(0.5)
    first.update(xs[0])
    assert torch.equal(first.value(), xs[0])  # the first value is the first image, exactly
    again = IterateAverage(0.1)
    again.load(avg.state(), xs[0])
    assert torch.equal(again.value(), avg.value()) and again.decay == d


class _Recorder:
    """An in-memory checkpointer keeping every snapshot."""

    def __init__(self) -> None:
        self.states: list[dict] = []

    def save(self, state: dict) -> None:
        self.states.append(state)

    def load(self) -> dict | None:
        return self.states[-1] if self.states else None


def _hand_ema(xs: list[torch.Tensor], d: float) -> torch.Tensor:
    biased, accum = torch.zeros_like(xs[0]), 1.0
    for x in xs:
        accum *= d
        biased = biased * d + (1 - d) * x
    return biased / (1 - accum)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_average_result_is_the_ema_of_the_iterates(setup, optimizer) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(optimizer=optimizer, learning_rate=5.0, average_decay=0.8)
    rec = _Recorder()
    plain = paint(content, [style], cfg.replace(checkpoint_every=1), checkpointer=rec)  # every step's image
    # step t evaluates the image the step before left (step 1: the starting image)
    iterates = [prepare(content, [style], cfg).init.cpu()] + [s["image"] for s in rec.states[:-1]]
    assert len(iterates) == cfg.num_iterations and torch.equal(iterates[-1], plain.raw)
    averaged = paint(content, [style], cfg.replace(average=True))
    assert averaged.losses == plain.losses  # averaging never changes the optimisation
    torch.testing.assert_close(averaged.raw, _hand_ema(iterates, 0.8), rtol=1e-5, atol=1e-4)
    assert not torch.equal(averaged.raw, plain.raw)


def test_average_resets_at_each_scale(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(scales="24,48", scale_iterations="5,6", average=True, average_decay=0.7, checkpoint_every=1)
    rec = _Recorder()
    result = paint(content, [style], cfg, checkpointer=rec)
    by_scale = {(s["scale_index"], s["step"]): s for s in rec.states}
    first_fine = by_scale[(1, 1)]["average"]
    assert first_fine["accum"] == pytest.approx(0.7)  # one update since the scale began
    assert first_fine["biased"].shape[-2:] == result.raw.shape[-2:]
    # the fine scale's result averages only its own iterates: its start (the one image in the average after its
    # first step) and the images steps 1..5 left for steps 2..6
    start = first_fine["biased"] / (1 - first_fine["accum"])
    fine = [start, *(by_scale[(1, t)]["image"] for t in range(1, 6))]
    torch.testing.assert_close(result.raw, _hand_ema(fine, 0.7), rtol=1e-5, atol=1e-4)
    # the coarse scale's average was its own: accum after 5 updates
    assert by_scale[(0, 5)]["average"]["accum"] == pytest.approx(0.7**5)


def test_preview_and_cancel_show_the_average(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(average=True, save_iter=4)
    previews = []
    token = CancelToken()

    def cb(event: object) -> None:
        if isinstance(event, Preview):
            previews.append(event)
        if isinstance(event, Progress) and event.step == 6:
            token.cancel()

    with pytest.raises(Cancelled) as info:
        paint(content, [style], cfg, callback=cb, cancel=token)
    whole6 = paint(content, [style], cfg.replace(num_iterations=6, save_iter=0))
    torch.testing.assert_close(info.value.partial, whole6.image, rtol=0, atol=1e-6)
    whole4 = paint(content, [style], cfg.replace(num_iterations=4, save_iter=0))
    torch.testing.assert_close(previews[0].raw, whole4.image[0], rtol=0, atol=1e-6)


# --- resume ---------------------------------------------------------------------------------------------------


def _interrupted_then_resumed(content, style, cfg: PaintConfig, stop_at: int, checkpointer):  # noqa: ANN001, ANN202
    token = CancelToken()

    def cb(event: object) -> None:
        if isinstance(event, Progress) and event.step == stop_at:
            token.cancel()

    with pytest.raises(Cancelled):
        paint(content, [style], cfg, cancel=token, callback=cb, checkpointer=checkpointer)
    return paint(content, [style], cfg.replace(resume=True), checkpointer=checkpointer)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_resume_with_average_is_bit_identical(setup, optimizer) -> None:  # noqa: ANN001
    d, cfg, content, style = setup
    cfg = cfg.replace(
        optimizer=optimizer, average=True, style_loss="w2", checkpoint_every=4,
        checkpoint_path=str(d / f"avg-{optimizer}.ckpt"),
    )  # fmt: skip
    whole = paint(content, [style], cfg)
    resumed = _interrupted_then_resumed(content, style, cfg, 6, None)  # through the file (torch.save/load)
    assert torch.equal(whole.raw, resumed.raw) and whole.losses == resumed.losses


def test_resume_with_average_across_a_scale_boundary(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(scales="24,48", scale_iterations="6,6", checkpoint_every=6, average=True)
    whole = paint(content, [style], cfg, checkpointer=ck.MemoryCheckpointer())
    resumed = _interrupted_then_resumed(content, style, cfg, 8, ck.MemoryCheckpointer())
    assert torch.equal(whole.raw, resumed.raw) and whole.losses == resumed.losses


def test_new_options_keep_old_checkpoints_resumable(setup) -> None:  # noqa: ANN001
    """At their defaults the new options stay out of the settings, so older checkpoints' fingerprints still match;
    changing one is refused like any other setting."""
    _, cfg, content, style = setup
    defaults = {f.name: f.default for f in dataclasses.fields(PaintConfig)}
    defaults.update({k: v for k, v in PaintConfig().resolve_choices({}).__dict__.items() if k in ("style_loss",)})
    assert all(defaults[k] == v for k, v in ck._ADDED_DEFAULTS.items())  # style_loss: as VGG resolves it
    cfg = cfg.resolve_choices({})  # paint takes the settings after the network's choices are made
    names = set(ck.settings(cfg))
    assert not names & {"style_loss", "average", "average_decay"}
    assert "average_decay" not in ck.settings(cfg.replace(average_decay=0.5))  # no effect without average
    assert "average" in ck.settings(cfg.replace(average=True))
    assert ck.settings(cfg.replace(average=True, average_decay=0.5))["average_decay"] == 0.5
    assert ck.settings(cfg.replace(style_loss="w2"))["style_loss"] == "w2"
    mem = ck.MemoryCheckpointer()
    paint(content, [style], cfg.replace(num_iterations=3, checkpoint_every=1), checkpointer=mem)
    with pytest.raises(ConfigError, match="style_loss 'gram' -> 'w2'"):
        paint(content, [style], cfg.replace(num_iterations=3, style_loss="w2", resume=True), checkpointer=mem)


# --- config and CLI -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"style_loss": "mmd"}, "style_loss must be one of gram, w2, not 'mmd'"),
        ({"average_decay": 1.0}, "average_decay must be between 0 and 1"),
        ({"average_decay": 0.0}, "average_decay must be between 0 and 1"),
    ],
)
def test_bad_options(setup, change, match) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    with pytest.raises(ConfigError, match=match):
        paint(content, [style], cfg.replace(**change))


def test_cli_options(setup, tmp_path) -> None:  # noqa: ANN001
    from impasto.cli.main import main

    _, cfg, content, style = setup
    content.save(tmp_path / "c.png")
    style.save(tmp_path / "s.png")
    out = tmp_path / "out.png"
    args = [
        "-q", "paint", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"), "-o", str(out),
        "--model-file", cfg.model_file, "--image-size", "48", "--gpu", "c", "--seed", "1", "--print-iter", "0",
        "--save-iter", "0", "--num-iterations", "3",
    ]  # fmt: skip
    assert main([*args, "--style-loss", "w2", "--average", "--average-decay", "0.9"]) == 0
    assert out.exists()
    assert main([*args, "--overwrite", "--style-loss", "nope"]) == 2
