"""``--preset seed-study``: the six experiments of the well-known optimiser comparison on the style loss.

Learning rate 10 on 0–255 pixels for every optimiser at 300 px over 100, 500 and 1000 iterations and at
600 px; then lower rates for the ones that oscillate at 10 (GD, Adadelta, RMSProp); then Adam at lr 1
against lr 10 over 1000 iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import OPTIMIZERS


@dataclass(frozen=True)
class Experiment:
    folder: str
    title: str
    size: int
    iterations: int
    optimizers: tuple[str, ...]
    default_lr: float = 10.0


SEED_STUDY: tuple[Experiment, ...] = (
    Experiment("1-lr10-300px-100it", "All six at lr 10, 300 px, 100 iterations", 300, 100, OPTIMIZERS),
    Experiment("2-lr10-300px-500it", "All six at lr 10, 300 px, 500 iterations", 300, 500, OPTIMIZERS),
    Experiment("3-lr10-300px-1000it", "All six at lr 10, 300 px, 1000 iterations", 300, 1000, OPTIMIZERS),
    Experiment("4-lr10-600px-500it", "All six at lr 10, 600 px, 500 iterations", 600, 500, OPTIMIZERS),
    Experiment(
        "5-lower-lr-300px-500it",
        "The oscillating ones at lower rates (GD, Adadelta, RMSProp at lr 1 and 0.1), 300 px, 500 iterations",
        300,
        500,
        ("gd@1", "gd@0.1", "adadelta@1", "adadelta@0.1", "rmsprop@1", "rmsprop@0.1"),
    ),
    Experiment(
        "6-adam-lr1-vs-lr10-300px-1000it",
        "Adam at lr 1 vs lr 10, 300 px, 1000 iterations",
        300,
        1000,
        ("adam@1", "adam@10"),
    ),
)

PRESETS = {"seed-study": SEED_STUDY}
