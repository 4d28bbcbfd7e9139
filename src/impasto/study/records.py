"""What an optimiser study records, and the divergence rule. Pure data; no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("gd", "adadelta", "rmsprop", "adam", "adagrad", "lbfgs")
LABELS = {
    "gd": "GD",
    "adadelta": "Adadelta",
    "rmsprop": "RMSProp",
    "adam": "Adam",
    "adagrad": "Adagrad",
    "lbfgs": "L-BFGS",
}
DIVERGENCE_FACTOR = 100.0


def label(entry: str) -> str:
    """Display name: ``adam`` -> ``Adam``, ``adam@1`` -> ``Adam``."""
    name = entry.split("@", 1)[0]
    return LABELS.get(name, name)


# a loss this many times the best seen so far counts as divergence


@dataclass(frozen=True)
class Record:
    """One iteration of one optimiser: losses, wall time since its start, function evaluations so far."""

    optimizer: str
    iteration: int
    total: float
    terms: dict[str, float]
    wall_s: float
    func_evals: int


@dataclass
class Run:
    """One optimiser's whole run. ``image`` is the final image, (1, 3, H, W) in [0, 1]."""

    optimizer: str
    lr: float
    records: list[Record] = field(default_factory=list)
    diverged: bool = False
    reason: str = ""
    image: Any = None

    @property
    def final_loss(self) -> float:
        finite = [r.total for r in self.records if math.isfinite(r.total)]
        return finite[-1] if finite else math.nan

    @property
    def best_loss(self) -> float:
        finite = [r.total for r in self.records if math.isfinite(r.total)]
        return min(finite) if finite else math.nan

    @property
    def seconds(self) -> float:
        return self.records[-1].wall_s if self.records else 0.0


@dataclass
class StudyResult:
    """All runs of a study plus what they shared (network, size, seed, iterations)."""

    runs: list[Run]
    network: str
    size: tuple[int, int]
    seed: int
    iterations: int
    info: dict[str, Any] = field(default_factory=dict)


def divergence(total: float, best: float, factor: float = DIVERGENCE_FACTOR) -> str:
    """Why ``total`` counts as divergence ('' when it does not): NaN/inf, or ``factor`` x the best so far."""
    if not math.isfinite(total):
        return f"loss became {total}"
    if math.isfinite(best) and best > 0 and total > factor * best:
        return f"loss grew to {total:.4g}, over {factor:g}x the best so far ({best:.4g})"
    return ""
