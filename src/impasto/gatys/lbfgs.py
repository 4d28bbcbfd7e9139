"""L-BFGS for the fast path: torch.optim.LBFGS's iterates without its per-pair Python loop.

Same semantics as ``torch.optim.LBFGS(params, lr, max_iter, max_eval, tolerance_grad, tolerance_change,
history_size, line_search_fn=None)`` as neural-style-pt drives it (no line search): the first direction is ``-g``
with step ``min(1, 1/|g|_1) * lr``; later steps take ``lr``; a pair ``(s, y)`` enters the history when
``y.s > 1e-10``; the initial inverse Hessian is ``H0 = gamma I`` with ``gamma = y.s / y.y`` of the newest pair; the
same stopping tests, the same evaluation count, the last update never evaluated.

What differs is how ``d = -H g`` is computed. torch's two-loop recursion costs ``4 m`` dot/axpy calls over the
whole image for ``m`` history pairs -- at 512 px and m = 100 about 400 tiny kernels, on a 2-core CPU 1 to 1.6 s an
iteration, as much as the bf16 network itself. Here the history lives in ONE preallocated ring buffer
``W = [S; Y]`` of shape ``(2 m, n)`` (``history_dtype`` float32 or bfloat16: bf16 halves its memory, see
``PaintConfig.lbfgs_history_dtype``) and the direction comes from the compact representation of Byrd, Nocedal and
Schnabel (1994, eq. 2.17/3.2):

    H = gamma I + [S  gamma Y] [[R^-T (D + gamma Y^T Y) R^-1, -R^-T], [-R^-1, 0]] [S^T; gamma Y^T]

with ``R`` the upper triangle of ``S^T Y`` (pairs in chronological order) and ``D`` its diagonal. Per iteration
that is one matrix product ``W @ [s, y, g]`` (the new row/column of ``S^T Y`` and ``Y^T Y`` and the projections
of ``g``) and one ``W^T c``: two passes over the history instead of four, in two BLAS calls. The ``m x m`` algebra
(two triangular solves) runs in float64 on the CPU. In exact arithmetic the direction is the two-loop's; in fp32 it
agrees to rounding (tests/test_lbfgs.py checks 30 iterates against torch.optim.LBFGS).

One parameter tensor only (the image); ``state_dict``/``load_state_dict`` round-trip the whole state (checkpoints).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["LBFGS"]

_CURVATURE_MIN = 1e-10  # torch.optim.LBFGS: a pair enters the history only when y.s exceeds this


class LBFGS(torch.optim.Optimizer):
    """L-BFGS without line search, history in a ``(2 * history_size, n)`` ring buffer (see the module docstring).

    ``params``: exactly one tensor. ``history_dtype``: float32 (default) or bfloat16 storage of the pairs.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        history_dtype: torch.dtype = torch.float32,
    ) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": None,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1 or len(self.param_groups[0]["params"]) != 1:
            raise ValueError("impasto's LBFGS optimises exactly one tensor (the image)")
        if history_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"history_dtype must be float32 or bfloat16, not {history_dtype}")
        self.history_dtype = history_dtype

    @property
    def _param(self) -> torch.Tensor:
        return self.param_groups[0]["params"][0]

    def _flat_grad(self) -> torch.Tensor:
        p = self._param
        if p.grad is None:
            return torch.zeros(p.numel(), device=p.device, dtype=p.dtype)
        return p.grad.reshape(-1)  # a view when contiguous: read before the next closure() overwrites it

    # --- the history ----------------------------------------------------------------------------------------

    def _history(self, n: int) -> dict[str, Any]:
        state = self.state[self._param]
        if "W" not in state:
            m = self.param_groups[0]["history_size"]
            state["W"] = torch.zeros(2 * m, n, device=self._param.device, dtype=self.history_dtype)  # [S; Y]
            state["SY"] = torch.zeros(m, m, dtype=torch.float64)  # SY[i, j] = s_i . y_j, indexed by slot
            state["YY"] = torch.zeros(m, m, dtype=torch.float64)  # YY[i, j] = y_i . y_j
            state["head"] = 0  # slot of the oldest pair
            state["count"] = 0  # pairs held
        return state

    def _spans(self, state: dict[str, Any]) -> list[tuple[int, int]]:
        """The slot ranges ``[a, b)`` of the ring that hold pairs (one, or two when they wrap around)."""
        m, head, count = self.param_groups[0]["history_size"], state["head"], state["count"]
        if count == m:
            return [(0, m)]
        end = head + count
        return [(head, min(end, m))] + ([(0, end - m)] if end > m else [])

    @staticmethod
    def _times(w: torch.Tensor, spans: list[tuple[int, int]], rows: torch.Tensor) -> torch.Tensor:
        """``[S; Y] @ rows^T`` (2m, k) float64 on the CPU for ``rows`` (k, n), reading only the filled slots
        ``spans`` of each half (zero rows for the empty ones): a history that is filling up costs what it holds, not
        its capacity. Computed as ``rows @ W^T``: BLAS runs that (k, n) x (n, 2m) product twice as fast as
        ``W @ rows^T`` with k = 3 on the CPU (21 ms vs 46 at 512 px, m = 100)."""
        m = w.shape[0] // 2
        if spans == [(0, m)]:
            return torch.mm(rows, w.t()).t().to("cpu", torch.float64)
        out = torch.zeros(2 * m, rows.shape[0], dtype=torch.float64)
        for a, b in spans:
            out[a:b] = torch.mm(rows, w[a:b].t()).t().to("cpu", torch.float64)
            out[m + a : m + b] = torch.mm(rows, w[m + a : m + b].t()).t().to("cpu", torch.float64)
        return out

    def _direction(self, state: dict[str, Any], g: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor] | None,
                   ys: float, h_diag: float) -> torch.Tensor:  # fmt: skip
        """``-H g`` from the compact form; ``pair`` (s, y) enters the history first (None: the history stays)."""
        m = self.param_groups[0]["history_size"]
        w, sy, yy = state["W"], state["SY"], state["YY"]
        if pair is not None:
            s, y = pair
            if state["count"] == m:  # full: the newest pair takes the oldest one's slot
                k = state["head"]
                state["head"] = (k + 1) % m
            else:
                k = (state["head"] + state["count"]) % m
                state["count"] += 1
            w[k].copy_(s)
            w[m + k].copy_(y)
            rhs = torch.stack([s, y, g]).to(w.dtype)  # (3, n)
            prod = self._times(w, self._spans(state), rhs)  # (2m, 3): [S; Y] @ [s, y, g]
            sy[:, k] = prod[:m, 1]  # s_i . y_new
            sy[k, :] = prod[m:, 0]  # s_new . y_j
            sy[k, k] = ys
            yy[:, k] = prod[m:, 1]
            yy[k, :] = prod[m:, 1]
            proj = prod[:, 2]  # (2m,) [S^T g; Y^T g]
        else:
            proj = self._times(w, self._spans(state), g.to(w.dtype)[None])[:, 0]  # (2m,)
        count = state["count"]
        if count == 0:
            return g.neg().mul_(h_diag)
        order = torch.tensor([(state["head"] + i) % m for i in range(count)])  # slots oldest -> newest
        r = torch.triu(sy[order][:, order])  # (count, count) R
        d = torch.diagonal(r)
        p1 = proj[order]  # S^T g
        p2 = proj[m + order] * h_diag  # gamma Y^T g
        u = torch.linalg.solve_triangular(r, p1[:, None], upper=True)[:, 0]  # R^-1 S^T g
        v = torch.diag(d) @ u + h_diag * (yy[order][:, order] @ u) - p2
        a = torch.linalg.solve_triangular(r.t(), v[:, None], upper=False)[:, 0]  # R^-T (...)
        coef = torch.zeros(2 * m, dtype=torch.float64)
        coef[order] = a
        coef[m + order] = -h_diag * u
        coef = coef.to(w.device, w.dtype)
        hg = torch.zeros_like(g, dtype=w.dtype)  # (n,) [S gamma Y] (...) g over the filled slots only
        for lo, hi in self._spans(state):
            hg.addmv_(w[lo:hi].t(), coef[lo:hi]).addmv_(w[m + lo : m + hi].t(), coef[m + lo : m + hi])
        hg = hg.to(g.dtype)
        return hg.add_(g, alpha=h_diag).neg_()

    # --- one step() --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Up to ``max_iter`` iterations, as torch.optim.LBFGS.step without line search; returns the first loss."""
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        p = self._param
        state = self.state[p]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with torch.enable_grad():
            orig_loss = closure()
        loss = float(orig_loss.detach())
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if tolerance_grad >= 0 and float(flat_grad.abs().max()) <= tolerance_grad:
            return orig_loss

        hist = self._history(p.numel())
        d: torch.Tensor | None = state.get("d")
        t: float | None = state.get("t")
        h_diag: float = state.get("H_diag", 1.0)
        prev_flat_grad: torch.Tensor | None = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1 or t is None:
                d = flat_grad.neg()
                hist["head"], hist["count"] = 0, 0
                h_diag = 1.0
            elif prev_flat_grad is None:  # just resampled to a new size: the history's direction, no new pair
                d = self._direction(hist, flat_grad, None, 0.0, h_diag)
                if float(flat_grad.dot(d)) >= 0:  # not a descent direction there: start afresh
                    state["n_iter"] = 1
                    d = flat_grad.neg()
                    hist["head"], hist["count"] = 0, 0
                    h_diag = 1.0
            else:
                y = flat_grad.sub(prev_flat_grad)
                assert d is not None  # set by the iteration (or step) that set t
                s = d.mul(t)
                ys = float(y.dot(s))
                pair = None
                if ys > _CURVATURE_MIN:
                    pair = (s, y)
                    h_diag = ys / float(y.dot(y))
                d = self._direction(hist, flat_grad, pair, ys, h_diag)
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(flat_grad.abs().sum())) * lr
            else:
                t = lr
            gtd = float(flat_grad.dot(d))
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            p.add_(d.view_as(p), alpha=t)
            if n_iter != max_iter:
                with torch.enable_grad():
                    loss = float(closure().detach())
                flat_grad = self._flat_grad()
                ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval:
                break
            if tolerance_grad >= 0 and float(flat_grad.abs().max()) <= tolerance_grad:
                break
            if tolerance_change >= 0:
                if float(d.abs().max()) * t <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                    break

        state["d"], state["t"], state["H_diag"] = d, t, h_diag
        state["prev_flat_grad"], state["prev_loss"] = prev_flat_grad, prev_loss
        return orig_loss

    # --- checkpoints and scales ----------------------------------------------------------------------------------

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's loader, then the history back in its own dtypes (torch casts every float to the parameter's)."""
        raw = dict(next(iter(state_dict["state"].values()), {}))
        super().load_state_dict(state_dict)
        state = self.state[self._param]
        if "W" in raw:
            state["W"] = raw["W"].to(self._param.device, self.history_dtype, copy=True)
            state["SY"] = raw["SY"].to("cpu", torch.float64, copy=True)
            state["YY"] = raw["YY"].to("cpu", torch.float64, copy=True)

    def resample(self, resize: Callable[[torch.Tensor], torch.Tensor], param: torch.Tensor, gain: float) -> None:
        """Carry the state to a new image size (``paint`` between scales), before the first step there.

        ``resize`` maps a flat vector of the old image to a flat vector of the new one (the same resampling as the
        image); steps ``s`` are resized, gradient differences ``y`` resized and multiplied by ``gain`` (the
        gradient's per-pixel scale: a mean over r^2 times more pixels makes each pixel's share r^2 smaller), so
        ``s.y`` and the curvature it measures keep their size. ``param`` is the new image tensor; the step count is
        kept, so the next step is an ordinary one (not a steepest-descent restart) unless the carried history's
        direction is not a descent direction at the new size.
        """
        old = self.state[self._param]
        self.param_groups[0]["params"] = [param]
        self.state.clear()
        if "W" not in old or old.get("d") is None:
            return
        m = self.param_groups[0]["history_size"]
        count, head = old["count"], old["head"]
        new = self._history(param.numel())
        for i in range(count):
            k = (head + i) % m
            new["W"][i].copy_(resize(old["W"][k].float()))
            new["W"][m + i].copy_(resize(old["W"][m + k].float()).mul_(gain))
        new["count"], new["head"] = count, 0
        if count:
            w = new["W"].float()
            gram = (w @ w.t()).to("cpu", torch.float64)  # (2m, 2m): rebuild S^T Y and Y^T Y for the new vectors
            new["SY"][:count, :count] = gram[:count, m : m + count]
            new["YY"][:count, :count] = gram[m : m + count, m : m + count]
            del w
        # The next scale starts from the last EVALUATED image (its pending update was never evaluated), so the next
        # step takes the history's direction at the new gradient and adds no pair (prev_flat_grad = None).
        new["t"] = old["t"]
        new["H_diag"] = old["H_diag"] / gain  # gamma = s.y / y.y: y.y shrinks by ``gain`` (s.y is kept)
        new["prev_loss"] = old["prev_loss"]
        new["func_evals"], new["n_iter"] = old["func_evals"], old["n_iter"]
