"""impasto.gatys.lbfgs.LBFGS: torch.optim.LBFGS's iterates (as neural-style-pt drives it), checkpoints, resampling."""

from __future__ import annotations

import copy

import pytest
import torch

from impasto.gatys.lbfgs import LBFGS


def _problem(n: int = 300, seed: int = 0):  # noqa: ANN202
    """A smooth non-quadratic loss of a (1, 3, 10, 10) tensor: softplus regression plus a quartic term."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(2 * n, n, generator=gen) / n**0.5
    b = torch.randn(2 * n, generator=gen)
    x0 = torch.randn(1, 3, 10, n // 30, generator=gen)

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        v = x.reshape(-1)
        return torch.nn.functional.softplus(a @ v - b).sum() + 0.01 * (v**4).sum()

    return loss_fn, x0


def _run(opt_cls: type, steps: int, stepwise: bool, history: int = 10, **kw: object) -> list[torch.Tensor]:
    loss_fn, x0 = _problem()
    x = x0.clone().requires_grad_(True)
    opt = opt_cls([x], max_iter=1 if stepwise else steps, tolerance_change=-1, tolerance_grad=-1,
                  history_size=history, **kw)  # fmt: skip
    seen: list[torch.Tensor] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        seen.append(x.detach().clone())
        return loss

    if stepwise:
        for _ in range(steps):
            opt.step(closure)
    else:
        opt.step(closure)
    return seen


@pytest.mark.parametrize("stepwise", [False, True])
def test_iterates_match_torch_lbfgs(stepwise: bool) -> None:
    # 30 evaluations with a history of 10: the ring buffer wraps twice; every evaluated point agrees to fp32 rounding
    ours = _run(LBFGS, 30, stepwise)
    theirs = _run(torch.optim.LBFGS, 30, stepwise)
    assert len(ours) == len(theirs) == 30
    moved = (theirs[-1] - theirs[0]).abs().max()
    assert moved > 0.5  # the iterates went somewhere: the comparison below is not trivially true
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (k, (a - b).abs().max())


def test_bf16_history_stays_close() -> None:
    # bf16 storage of the pairs: the direction is rounded to ~3 digits; the run still descends like fp32's
    loss_fn, _ = _problem()
    ours = _run(LBFGS, 30, False, history_dtype=torch.bfloat16)
    theirs = _run(torch.optim.LBFGS, 30, False)
    start, end, reference = (float(loss_fn(v)) for v in (ours[0], ours[-1], theirs[-1]))
    assert end < start * 0.7
    assert end == pytest.approx(reference, rel=1e-3)


def test_state_dict_round_trip_continues_identically() -> None:
    # a checkpoint after 12 steps, loaded into a fresh optimiser, continues exactly as the uninterrupted run
    loss_fn, x0 = _problem()

    def make(x: torch.Tensor, dtype: torch.dtype) -> LBFGS:
        return LBFGS([x], max_iter=1, tolerance_change=-1, tolerance_grad=-1, history_size=5, history_dtype=dtype)

    for dtype in (torch.float32, torch.bfloat16):
        x = x0.clone().requires_grad_(True)
        opt = make(x, dtype)

        def closure(x: torch.Tensor = x, opt: LBFGS = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn(x)
            loss.backward()
            return loss

        for _ in range(12):
            opt.step(closure)
        saved_x, saved = x.detach().clone(), copy.deepcopy(opt.state_dict())
        for _ in range(8):
            opt.step(closure)
        x2 = saved_x.clone().requires_grad_(True)
        opt2 = make(x2, dtype)
        opt2.load_state_dict(saved)
        assert opt2.state[x2]["W"].dtype == dtype and opt2.state[x2]["SY"].dtype == torch.float64

        def closure2(x2: torch.Tensor = x2, opt2: LBFGS = opt2) -> torch.Tensor:
            opt2.zero_grad()
            loss = loss_fn(x2)
            loss.backward()
            return loss

        for _ in range(8):
            opt2.step(closure2)
        assert torch.equal(x.detach(), x2.detach())


def test_resample_keeps_history_and_descends() -> None:
    # carried to a 2x larger image, the history is resized and the first step there is an L-BFGS step, not a restart
    gen = torch.Generator().manual_seed(3)
    target = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 8, generator=gen), size=(16, 16), mode="bilinear")

    def loss_fn(x: torch.Tensor) -> torch.Tensor:  # a mean over pixels, like the painting losses
        small = torch.nn.functional.interpolate(target, size=x.shape[-2:], mode="bilinear", antialias=True)
        return ((x - small) ** 2).mean() + 0.1 * (x**4).mean()

    x = torch.zeros(1, 3, 8, 8, requires_grad=True)
    opt = LBFGS([x], max_iter=1, tolerance_change=-1, tolerance_grad=-1, history_size=6)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        return loss

    for _ in range(8):
        opt.step(closure)
    n_iter = opt.state[x]["n_iter"]

    def resize(v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(v.view(1, 3, 8, 8), size=(16, 16), mode="bilinear").reshape(-1)

    big = resize(x.detach().reshape(-1)).view(1, 3, 16, 16).requires_grad_(True)
    opt.resample(resize, big, gain=0.25)
    state = opt.state[big]
    assert state["count"] == 6 and state["W"].shape == (12, 3 * 16 * 16) and state["n_iter"] == n_iter
    x = big
    before = float(loss_fn(big).detach())
    opt.step(closure)  # evaluates at big, then one step along the carried history's direction
    assert opt.state[big]["n_iter"] == n_iter + 1 and opt.state[big]["count"] == 6  # not restarted
    assert float(loss_fn(big).detach()) < before


def test_paint_picks_it_for_the_fast_path_and_keeps_torch_for_the_exact_one() -> None:
    from impasto.gatys.config import PaintConfig
    from impasto.gatys.optimize import _make_optimizer

    img = torch.zeros(1, 3, 4, 4, requires_grad=True)
    exact = PaintConfig().resolve()
    assert type(_make_optimizer(exact, img, stepwise=False)) is torch.optim.LBFGS  # upstream's, bit for bit
    fast = _make_optimizer(exact.replace(fast=True), img, stepwise=False)
    assert isinstance(fast, LBFGS) and fast.history_dtype == torch.float32
    assert fast.param_groups[0]["max_iter"] == exact.num_iterations
    bf16 = _make_optimizer(exact.replace(lbfgs_history_dtype="bfloat16"), img, stepwise=True)
    assert isinstance(bf16, LBFGS) and bf16.history_dtype == torch.bfloat16 and bf16.param_groups[0]["max_iter"] == 1
    assert isinstance(_make_optimizer(exact, img, stepwise=False, multi=True), LBFGS)  # history carried over scales
    wolfe = exact.replace(fast=True, lbfgs_line_search="strong_wolfe")
    assert type(_make_optimizer(wolfe, img, stepwise=False)) is torch.optim.LBFGS
