"""Multi-scale painting: one iteration budget split over the scales, previews at the final scale, state carried."""

from __future__ import annotations

import pytest
import tiny_weights as tw
import torch

from impasto.errors import ConfigError
from impasto.events import Preview, Progress, Started
from impasto.gatys import optimize
from impasto.gatys.config import PaintConfig, auto_scales
from impasto.gatys.lbfgs import LBFGS
from impasto.gatys.optimize import paint, plan, save_steps, scale_plan, split_budget


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("budget")
    weights = tw.write(tw.vgg_state(widths=(8, 12, 16, 16, 16)), d / "vgg19-d01eb7cb.pth")
    content = tw.image(size=(64, 48), seed=0)
    style = tw.image(size=(56, 56), seed=1)
    cfg = PaintConfig(
        model_file=str(weights), image_size=48, num_iterations=12, print_iter=0, save_iter=0, seed=3, gpu="c"
    )
    return d, cfg, content, style


@pytest.mark.parametrize("total", [5, 7, 100, 1000, 1001])
def test_split_budget_sums_and_favours_coarse_iterations_fine_time(total: int) -> None:
    sizes = auto_scales(512)
    counts = split_budget(total, sizes)
    assert sum(counts) == total and min(counts) >= 1
    if total >= 100:
        assert counts == sorted(counts, reverse=True)  # coarse scales take more iterations ...
        cost = [n * s * s for n, s in zip(counts, sizes, strict=True)]
        assert cost == sorted(cost) and cost[-1] > 3 * cost[0]  # ... and the fine scales most of the time


def test_default_auto_plan_is_one_budget_cheaper_than_a_plain_run() -> None:
    cfg = PaintConfig(image_size=512, scales="auto", save_iter=20)
    p = plan(cfg)
    assert p.scales == ((128, 356), (181, 251), (256, 178), (362, 126), (512, 89))
    assert p.total == cfg.num_iterations == 1000
    # pixel-iterations of the whole chain: about a quarter of a plain 1000-step run at 512 px
    work = sum(n * s * s for s, n in p.scales) / (1000 * 512 * 512)
    assert 0.2 < work < 0.3
    # intermediates at the final scale only (steps 912..1000), the last step excluded
    assert p.preview_steps == (920, 940, 960, 980)
    assert len(save_steps(cfg.replace(save_all_scales=True))) == 49
    # explicit scale_iterations keep their meaning
    assert scale_plan(cfg.replace(scale_iterations="10")) == [(s, 10) for s in auto_scales(512)]


def test_budget_smaller_than_the_scales_is_refused() -> None:
    with pytest.raises(ConfigError, match="num_iterations 3 is split over the 5 scales"):
        plan(PaintConfig(image_size=512, scales="auto", num_iterations=3))


def test_multi_scale_run_counts_one_budget_and_previews_the_final_scale(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    events: list = []
    cfg = cfg.replace(scales="24,34,48", num_iterations=12, save_iter=2, optimizer="adam", learning_rate=20.0)
    counts = [n for _, n in scale_plan(cfg)]
    assert counts == [5, 4, 3]
    result = paint(content, [style], cfg, callback=events.append)
    assert result.steps == 12 and len(result.losses) == 12 and result.config.num_iterations == 12
    started = next(e for e in events if isinstance(e, Started))
    assert started.total == 12
    progress = [e for e in events if isinstance(e, Progress)]
    assert [e.step for e in progress] == list(range(1, 13)) and {e.total for e in progress} == {12}
    assert [e.info["scale"] for e in progress] == [24] * 5 + [34] * 4 + [48] * 3
    assert [e.step for e in events if isinstance(e, Preview)] == [10]  # final scale: steps 10..12, 12 is last
    again: list = []
    everywhere = paint(content, [style], cfg.replace(save_all_scales=True), callback=again.append)
    assert everywhere.steps == 12
    assert [e.step for e in again if isinstance(e, Preview)] == [2, 4, 6, 8, 10]


def test_adam_moments_are_resized_to_the_next_scale() -> None:
    small = torch.zeros(1, 3, 8, 8, requires_grad=True)
    prev = torch.optim.Adam([small], lr=0.5)
    small.grad = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) + 1.0  # a mean well off 0
    prev.step()
    prev.step()
    big = torch.zeros(1, 3, 16, 16, requires_grad=True)
    nxt = torch.optim.Adam([big], lr=0.5)
    optimize._carry_state(prev, nxt, big)
    state = nxt.state[big]
    assert float(state["step"]) == 2 and state["exp_avg"].shape == big.shape
    assert bool((state["exp_avg_sq"] >= 0).all())
    # moments carry the gradient's per-pixel scale: 4x the pixels, a quarter of the first moment (on average)
    old, new = prev.state[small]["exp_avg"], state["exp_avg"]
    assert float(new.mean()) == pytest.approx(float(old.mean()) / 4, rel=0.05)


def test_lbfgs_history_is_resampled_when_carried(monkeypatch) -> None:  # noqa: ANN001
    small = torch.zeros(1, 3, 8, 8, requires_grad=True)
    target = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    prev = LBFGS([small], max_iter=1, tolerance_grad=-1, tolerance_change=-1, history_size=4)

    def closure() -> torch.Tensor:
        prev.zero_grad()
        loss = ((small - target) ** 2).mean() + (small**4).mean()
        loss.backward()
        return loss

    for _ in range(6):
        prev.step(closure)
    big = torch.zeros(1, 3, 16, 16, requires_grad=True)
    nxt = LBFGS([big], max_iter=1, tolerance_grad=-1, tolerance_change=-1, history_size=4)
    optimize._carry_state(prev, nxt, big)
    assert not nxt.state  # the default: a restart at each scale (measured better, see CARRY_LBFGS_HISTORY)
    monkeypatch.setattr(optimize, "CARRY_LBFGS_HISTORY", True)
    optimize._carry_state(prev, nxt, big)
    state = nxt.state[big]
    assert state["count"] == 4 and state["W"].shape == (8, 3 * 16 * 16) and state["n_iter"] == 6
    # another history size (a scale whose memory plan chose less) starts afresh rather than mixing shapes
    other = LBFGS([big], max_iter=1, tolerance_grad=-1, tolerance_change=-1, history_size=2)
    optimize._carry_state(nxt, other, big)
    assert not other.state


def test_fast_multi_scale_lbfgs_runs_the_budget(setup) -> None:  # noqa: ANN001
    _, cfg, content, style = setup
    cfg = cfg.replace(scales="24,34,48", num_iterations=9, fast=True)
    result = paint(content, [style], cfg)
    assert result.steps == 9 and result.image.shape == (1, 3, 36, 48)
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in result.losses)
