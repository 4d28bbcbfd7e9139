"""impasto's extras to neural-style-pt: the fast path, multi-scale painting, checkpoint/resume (tiny random VGG)."""

from __future__ import annotations

import dataclasses

import pytest
import tiny_weights as tw
import torch

from impasto.errors import Cancelled, ConfigError
from impasto.events import CancelToken, Progress, Started
from impasto.gatys import checkpoint as ck
from impasto.gatys.config import PaintConfig, auto_scales
from impasto.gatys.optimize import evaluate, paint, prepare, save_steps, scale_plan
from impasto.gatys.preprocess import preprocess


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("extras")
    weights = tw.write(tw.vgg_state(widths=(8, 12, 16, 16, 16)), d / "vgg19-d01eb7cb.pth")
    content = tw.image(size=(64, 48), seed=0)
    style = tw.image(size=(56, 56), seed=1)
    cfg = PaintConfig(
        model_file=str(weights), image_size=48, num_iterations=12, print_iter=0, save_iter=0, seed=3, gpu="c"
    )
    return d, cfg, content, style


def _fp32_loss(result, content, style, cfg: PaintConfig) -> float:  # noqa: ANN001
    """The painting's loss re-evaluated on the exact fp32 path."""
    problem = prepare(content, [style], cfg.replace(fast=False))
    with torch.no_grad():
        return float(evaluate(problem, result.raw)[0])


# --- fast path -------------------------------------------------------------------------------------------------


def test_fast_path_final_loss_close_to_fp32(setup) -> None:  # noqa: ANN001
    """Same seed and length, fast vs exact: the final loss (re-evaluated in fp32) stays within a few percent.

    Adam here: L-BFGS without a line search on a tiny random network is chaotic (two fp32 runs differing in the
    last bit end far apart), so it says nothing about bf16. benchmarks/paint.py measures L-BFGS on a full-size VGG-19.
    """
    _, cfg, content, style = setup
    cfg = cfg.replace(num_iterations=30, optimizer="adam")
    exact = paint(content, [style], cfg)
    fast = paint(content, [style], cfg.replace(fast=True))
    assert fast.image.shape == exact.image.shape
    assert all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in fast.losses)
    assert fast.losses[-1]["total"] < fast.losses[0]["total"]
    exact_loss = _fp32_loss(exact, content, style, cfg)
    assert exact_loss == pytest.approx(exact.final_loss, rel=1e-5)
    fast_loss = _fp32_loss(fast, content, style, cfg)
    assert fast_loss == pytest.approx(exact_loss, rel=0.05)


def test_fast_path_gradients_match_autograd(setup) -> None:  # noqa: ANN001
    """The fused losses' hand-written backward equals autograd's through the plain losses (fp32 copy)."""
    _, cfg, content, style = setup
    problem = prepare(content, [style], cfg.replace(fast=True, normalize_gradients=True))
    exact = dataclasses.replace(problem, fast_net=None, fast_dtype=None)
    fp32 = dataclasses.replace(problem, fast_net=problem.net, fast_dtype=torch.float32)  # fused losses, fp32 net
    img = preprocess(problem.content01, problem.contract) + torch.randn(problem.init.shape) * 5
    grads = []
    for p in (exact, fp32):
        x = img.clone().requires_grad_(True)
        loss, record = evaluate(p, x)
        loss.backward()
        grads.append((x.grad, record))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-4 * grads[0][0].abs().max().item())
    assert grads[1][1] == pytest.approx(grads[0][1], rel=1e-5)


def test_fast_path_off_by_default_is_bit_identical(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    assert PaintConfig().fast is False
    a = paint(content, [style], cfg)
    b = paint(content, [style], cfg.replace(fast=False))
    assert torch.equal(a.raw, b.raw) and a.losses == b.losses
    assert prepare(content, [style], cfg).fast_net is None


# --- multi-scale -----------------------------------------------------------------------------------------------


def test_auto_scales_and_plan() -> None:
    assert auto_scales(512) == (128, 181, 256, 362, 512)
    assert auto_scales(100) == (100,)
    assert PaintConfig(image_size=256, scales="auto").scales == (128, 181, 256)
    cfg = PaintConfig(image_size=64, scales="32,64", scale_iterations="5,3", save_iter=2)
    assert scale_plan(cfg) == [(32, 5), (64, 3)]
    assert save_steps(cfg) == [6]  # the final scale's steps (6..8) only, the last excluded
    assert save_steps(cfg.replace(save_all_scales=True)) == [2, 4, 6]
    # num_iterations is one budget split over the scales (the coarse one takes more iterations)
    assert scale_plan(PaintConfig(image_size=64, scales="32,64", num_iterations=4)) == [(32, 3), (64, 1)]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"scales": "32,40"}, "the last scale must be image_size"),
        ({"scales": "24,48", "scale_iterations": "1,2,3"}, "3 scale_iterations given for 2 scales"),
        ({"scale_iterations": "3"}, "scale_iterations needs scales"),
        ({"scales": "24,48", "scale_iterations": "0"}, "at least 1"),
        ({"checkpoint_every": 2}, "checkpoint_path"),
    ],
)
def test_bad_extras(setup, change, match) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    with pytest.raises(ConfigError, match=match):
        paint(content, [style], cfg.replace(**change))


def test_multi_scale(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    events: list = []
    # Adam with a large step: L-BFGS without a line search wanders on this tiny random network.
    cfg = cfg.replace(scales="24,34,48", scale_iterations="6,5,4", save_iter=4, optimizer="adam", learning_rate=20.0)
    result = paint(content, [style], cfg, callback=events.append)
    assert result.image.shape == (1, 3, 36, 48) and result.steps == 15 and len(result.losses) == 15
    started = [e for e in events if isinstance(e, Started)]
    assert len(started) == 1 and started[0].total == 15 and list(started[0].info["scales"]) == [24, 34, 48]
    progress = [e for e in events if isinstance(e, Progress)]
    assert [e.step for e in progress] == list(range(1, 16)) and {e.total for e in progress} == {15}
    assert [e.info["scale"] for e in progress] == [24] * 6 + [34] * 5 + [48] * 4
    for index in range(3):
        totals = [e.losses["total"] for e in progress if e.info["scale_index"] == index]
        assert all(torch.isfinite(torch.tensor(totals)))
        assert totals[-1] < totals[0]
    # The last scale starts from the previous result upsampled, far below where noise at that size starts.
    first_last = next(e.losses["total"] for e in progress if e.info["scale_index"] == 2)
    noise_start = paint(content, [style], cfg.replace(scales=None, scale_iterations=None, num_iterations=1))
    assert first_last < noise_start.final_loss / 2


def test_multi_scale_fast(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    result = paint(content, [style], cfg.replace(scales="24,48", scale_iterations="4", fast=True))
    assert result.image.shape == (1, 3, 36, 48) and result.steps == 8


# --- checkpoint / resume ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_checkpointed_stepping_is_bit_identical(setup, optimizer) -> None:  # noqa: ANN001
    """With checkpoints on, L-BFGS runs one iteration per step(): the same arithmetic as upstream's one step()."""
    _, cfg, content, style = setup
    cfg = cfg.replace(optimizer=optimizer)
    plain = paint(content, [style], cfg)
    mem = ck.MemoryCheckpointer()
    stepped = paint(content, [style], cfg.replace(checkpoint_every=5), checkpointer=mem)
    assert torch.equal(plain.raw, stepped.raw) and plain.losses == stepped.losses
    assert mem.saves == 3  # steps 5, 10 and the end (12)


def _interrupted_then_resumed(content, style, cfg: PaintConfig, stop_at: int, checkpointer):  # noqa: ANN001, ANN202
    token = CancelToken()

    def cb(event: object) -> None:
        if isinstance(event, Progress) and event.step == stop_at:
            token.cancel()

    with pytest.raises(Cancelled):
        paint(content, [style], cfg, cancel=token, callback=cb, checkpointer=checkpointer)
    events: list = []
    resumed = paint(content, [style], cfg.replace(resume=True), checkpointer=checkpointer, callback=events.append)
    return resumed, events


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_resume_equals_uninterrupted(setup, optimizer) -> None:  # noqa: ANN001
    d, cfg, content, style = setup
    cfg = cfg.replace(optimizer=optimizer, checkpoint_every=4, checkpoint_path=str(d / f"run-{optimizer}.ckpt"))
    whole = paint(content, [style], cfg)
    resumed, events = _interrupted_then_resumed(content, style, cfg, 6, None)  # checkpoint at 4; killed at 6
    progress = [e.step for e in events if isinstance(e, Progress)]
    assert progress == list(range(5, 13))
    assert [e.info.get("resumed_at") for e in events if isinstance(e, Started)] == [4]
    # The optimiser state round-trips through torch.save/torch.load(weights_only=True) exactly: bit-identical.
    assert torch.equal(whole.raw, resumed.raw)
    assert whole.losses == resumed.losses


def test_resume_with_line_search_in_memory(setup) -> None:  # noqa: ANN001
    """strong_wolfe (several evaluations per step()) and an in-memory checkpointer (snapshots must not share the
    optimiser's live tensors)."""
    _, cfg, content, style = setup
    cfg = cfg.replace(lbfgs_line_search="strong_wolfe", checkpoint_every=3)
    whole = paint(content, [style], cfg, checkpointer=ck.MemoryCheckpointer())
    resumed, _ = _interrupted_then_resumed(content, style, cfg, 7, ck.MemoryCheckpointer())
    assert torch.equal(whole.raw, resumed.raw) and whole.losses == resumed.losses


def test_resume_multi_scale_across_a_scale_boundary(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(scales="24,48", scale_iterations="6,6", checkpoint_every=6)
    whole = paint(content, [style], cfg, checkpointer=ck.MemoryCheckpointer())
    resumed, _ = _interrupted_then_resumed(content, style, cfg, 8, ck.MemoryCheckpointer())
    assert torch.equal(whole.raw, resumed.raw) and whole.losses == resumed.losses


def test_resume_with_other_settings_is_refused(setup) -> None:  # noqa: ANN001
    d, cfg, content, style = setup
    path = d / "refuse.ckpt"
    cfg = cfg.replace(num_iterations=4, checkpoint_every=2, checkpoint_path=str(path))
    paint(content, [style], cfg)
    assert path.exists() and not list(d.glob("refuse.ckpt.*.tmp"))
    state = torch.load(path, weights_only=True)
    assert state["step"] == 4 and state["format"] == ck.FORMAT
    with pytest.raises(ConfigError, match=r"different settings \(style_weight None -> 50\.0\)"):
        paint(content, [style], cfg.replace(resume=True, style_weight=50.0))
    with pytest.raises(ConfigError, match="input images differ"):
        paint(tw.image(size=(64, 48), seed=5), [style], cfg.replace(resume=True))
    # Options that do not change the painting may change.
    done = paint(content, [style], cfg.replace(resume=True, print_iter=1, save_iter=3))
    assert done.steps == 4


def test_resume_without_checkpoint_starts_over(setup) -> None:  # noqa: ANN001
    d, cfg, content, style = setup
    cfg = cfg.replace(num_iterations=3, checkpoint_every=1, checkpoint_path=str(d / "none-yet.ckpt"), resume=True)
    assert paint(content, [style], cfg).steps == 3


def test_unreadable_checkpoint_is_one_line(setup) -> None:  # noqa: ANN001
    d, cfg, content, style = setup
    bad = d / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        paint(content, [style], cfg.replace(resume=True, checkpoint_path=str(bad)))


# --- CLI -------------------------------------------------------------------------------------------------------


def test_cli_extras(setup, tmp_path, capsys) -> None:  # noqa: ANN001
    from impasto.cli.main import main

    d, cfg, content, style = setup
    content.save(tmp_path / "c.png")
    style.save(tmp_path / "s.png")
    out = tmp_path / "out.png"
    args = [
        "-q", "paint", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"), "-o", str(out),
        "--model-file", cfg.model_file, "--image-size", "48", "--gpu", "c", "--seed", "1", "--print-iter", "0",
        "--save-iter", "0", "--num-iterations", "3",
    ]  # fmt: skip
    assert main([*args, "--scales", "24,48", "--fast", "--checkpoint-every", "2"]) == 0
    assert out.exists() and (tmp_path / "out.png.ckpt").exists()
    # Resuming a finished run with the same settings just writes the result again (no --overwrite needed).
    assert main([*args, "--scales", "24,48", "--fast", "--checkpoint-every", "2", "--resume"]) == 0
    capsys.readouterr()
    assert main([*args, "--scales", "auto", "--fast", "--checkpoint-every", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different settings (scales [24, 48] -> [48])" in err, err
    assert main([*args, "--scales", "32,40"]) == 2
    assert "the last scale must be image_size" in capsys.readouterr().err
