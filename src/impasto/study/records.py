"""What an optimiser study records, and the divergence rule. Pure data; no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

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

# what became of one optimiser in a study: it ran to its end (or diverged), was stopped by the user, or never began
FINISHED, STOPPED, NOT_RUN = "finished", "stopped", "not run"


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
    """One optimiser's whole run. ``image`` is the final image, (1, 3, H, W) in [0, 1] (None when it never ran);
    ``scores`` its quality scores (``impasto.api.score``'s shape) once measured.

    ``status``: ``"finished"`` (all its iterations, or stopped early as diverged), ``"stopped"`` (cancelled part
    way: ``records`` hold the iterations it did) or ``"not run"``.
    """

    optimizer: str
    lr: float
    records: list[Record] = field(default_factory=list)
    diverged: bool = False
    reason: str = ""
    image: Any = None
    status: str = FINISHED
    # quality scores of the final image (impasto.study.scoring: {"content", "style", "network"}), None unmeasured
    scores: dict[str, Any] | None = None

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
    """All runs of a study plus what they shared (network, size (W, H), seed, iterations).

    ``elapsed``: seconds the study took (this session's share when resumed); ``info``: what ran where (network
    preprocessing, layers, weights, device); ``fingerprint``: the settings that decide the numbers (inputs' pixels,
    network, size, seed, iterations, optimisers and rates), which a resumed study must match.
    """

    runs: list[Run]
    network: str
    size: tuple[int, int]
    seed: int
    iterations: int
    info: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every optimiser ran to its end (False for a study stopped part way)."""
        return all(r.status == FINISHED for r in self.runs)

    def finished(self) -> list[Run]:
        """The runs that ran to their end, in the study's order."""
        return [r for r in self.runs if r.status == FINISHED]

    def pictures(self) -> list[Image.Image]:
        """Each run's final image as an RGB PIL image, in the study's order (runs that never began have none)."""
        from ..media import tensor_to_pil

        return [tensor_to_pil(r.image) for r in self.runs if r.image is not None]


@dataclass(frozen=True)
class SavedRecords:
    """Runs a study saved as each optimiser finished (``records.json``), to resume a stopped or killed study.

    ``fingerprint`` is the saved study's; ``runs`` maps an optimiser entry to its finished Run.
    """

    fingerprint: dict[str, Any]
    runs: dict[str, Run]
    source: str = "records.json"


def divergence(total: float, best: float, factor: float = DIVERGENCE_FACTOR) -> str:
    """Why ``total`` counts as divergence ('' when it does not): NaN/inf, or ``factor`` x the best so far."""
    if not math.isfinite(total):
        return f"loss became {total}"
    if math.isfinite(best) and best > 0 and total > factor * best:
        return f"loss grew to {total:.4g}, over {factor:g}x the best so far ({best:.4g})"
    return ""
