"""Run several optimisers on one style-transfer loss from one starting image, recording everything.

The loss comes from the Gatys engine (``impasto.gatys``) through an :class:`Objective`; this module only
drives optimisers. Learning rates are in 0–255 pixel units, as in the original study: the image being
optimised is kept in those units whatever range the network takes (the objective converts), so a rate
means the same thing for every network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..errors import Cancelled, ConfigError
from ..events import Callback, CancelToken, Finished, Progress, Started, Stopwatch, emit
from .records import OPTIMIZERS, Record, Run, StudyResult, divergence


class Objective(Protocol):
    """A style-transfer loss over an image in 0–255 pixel units, (1, 3, H, W)."""

    network: str

    def initial(self) -> torch.Tensor:
        """The shared starting image (same seed for every optimiser), 0–255 units."""
        ...

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss as a 0-d tensor with grad, {term: value})."""
        ...

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """0–255 units -> (1, 3, H, W) RGB in [0, 1] for display."""
        ...


@dataclass(frozen=True)
class StudyConfig:
    """``lr`` maps an optimiser to its learning rate (0–255 pixel units); missing ones use ``default_lr``."""

    optimizers: tuple[str, ...] = OPTIMIZERS
    default_lr: float = 10.0
    lr: Mapping[str, float] = field(default_factory=dict)
    iterations: int = 100
    lbfgs_history: int = 100  # neural-style-pt's lbfgs_num_correction default

    def validate(self) -> None:
        unknown = [o for o in self.optimizers if o not in OPTIMIZERS]
        if unknown:
            raise ConfigError(f"unknown optimiser(s) {', '.join(unknown)}; choose from {', '.join(OPTIMIZERS)}")
        if not self.optimizers:
            raise ConfigError("no optimisers chosen")
        for name, value in {**self.lr, "default": self.default_lr}.items():
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"learning rate for {name} must be a positive number, got {value}")
        bad_lr = [o for o in self.lr if o not in OPTIMIZERS]
        if bad_lr:
            raise ConfigError(f"learning rate given for unknown optimiser(s) {', '.join(bad_lr)}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be at least 1, got {self.iterations}")

    def rate(self, name: str) -> float:
        """The rate for ``name``. L-BFGS takes 1 unless set explicitly: like neural-style-pt, whose
        -learning_rate applies to Adam only, a global rate does not rescale L-BFGS's (already curvature-scaled) step."""
        if name in self.lr:
            return float(self.lr[name])
        return 1.0 if name == "lbfgs" else float(self.default_lr)


def make_optimizer(name: str, params: Sequence[torch.Tensor], lr: float, lbfgs_history: int) -> torch.optim.Optimizer:
    """Plain textbook settings, as the original study used (no momentum for GD; L-BFGS without line search)."""
    factories: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "gd": lambda: torch.optim.SGD(params, lr=lr),
        "adadelta": lambda: torch.optim.Adadelta(params, lr=lr),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr),
        "adam": lambda: torch.optim.Adam(params, lr=lr),
        "adagrad": lambda: torch.optim.Adagrad(params, lr=lr),
        # one L-BFGS iteration per step() so every iteration is recorded; the history persists across steps,
        # so this is the same as neural-style-pt's single step(max_iter=N) call
        "lbfgs": lambda: torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=1,
            history_size=lbfgs_history,
            tolerance_grad=-1,
            tolerance_change=-1,
        ),
    }
    return factories[name]()


def run_one(
    name: str,
    objective: Objective,
    config: StudyConfig,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> Run:
    """One optimiser from the shared starting image; stops early (marked diverged) on NaN/inf or 100x growth."""
    lr = config.rate(name)
    x = objective.initial().clone().requires_grad_(True)
    opt = make_optimizer(name, [x], lr, config.lbfgs_history)
    run = Run(optimizer=name, lr=lr)
    watch = Stopwatch()
    evals = 0
    best = math.inf
    last_terms: dict[str, float] = {}
    last_total = math.nan
    emit(callback, Started(total=config.iterations, info={"optimizer": name, "lr": lr}))

    def closure() -> torch.Tensor:
        nonlocal evals, last_terms, last_total
        opt.zero_grad(set_to_none=True)
        loss, terms = objective(x)
        loss.backward()
        evals += 1
        last_total, last_terms = float(loss.detach()), terms
        return loss

    for it in range(1, config.iterations + 1):
        if cancel is not None and cancel.cancelled:
            run.image = objective.to_image(x.detach())
            raise Cancelled("cancelled", partial=run)
        if name == "lbfgs":
            opt.step(closure)
        else:
            closure()
            opt.step()
        run.records.append(Record(name, it, last_total, dict(last_terms), watch(), evals))
        emit(
            callback,
            Progress(
                step=it,
                total=config.iterations,
                losses={"total": last_total, **last_terms},
                elapsed=watch(),
                info={"optimizer": name},
            ),
        )
        reason = divergence(last_total, best) or ("" if torch.isfinite(x).all() else "image became non-finite")
        if reason:
            run.diverged, run.reason = True, reason
            break
        best = min(best, last_total)
    with torch.no_grad():
        finite = torch.nan_to_num(x.detach(), nan=0.0, posinf=255.0, neginf=0.0)
    run.image = objective.to_image(finite)
    return run


def compare(
    objective: Objective,
    config: StudyConfig,
    *,
    size: tuple[int, int],
    seed: int,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> StudyResult:
    """Every optimiser in ``config`` on ``objective``; Finished carries the StudyResult."""
    config.validate()
    watch = Stopwatch()
    runs = [run_one(name, objective, config, callback, cancel) for name in config.optimizers]
    result = StudyResult(runs=runs, network=objective.network, size=size, seed=seed, iterations=config.iterations)
    emit(callback, Finished(result=result, elapsed=watch()))
    return result
