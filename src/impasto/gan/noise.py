"""Noise and class vectors: the truncation trick and the reference's helper functions.

``truncated_noise_sample``, ``one_hot_from_int`` and ``one_hot_from_names`` keep pytorch-pretrained-BigGAN's
signatures and return float32 NumPy arrays like it does, so notebooks port by changing one import. Departures:
noise is drawn by *resampling* values outside [-2, 2] (the paper's truncation trick) from a ``torch.Generator``
seeded with ``seed`` (the reference uses scipy's ``truncnorm`` with NumPy's RandomState, so the same seed gives
different numbers); names are looked up in impasto's ImageNet class list, then as everyday words in impasto's
WordNet index (``dog``, ``coffee``, ``soap bubble``: the reference's WordNet rule, precomputed and deterministic, so
no NLTK or WordNet is needed; see :mod:`impasto.gan.classes`), and a name neither knows raises UnknownModelError
with suggestions. (The reference returns None for a word WordNet has no noun for, and fails an assertion for one
it has but cannot map to a class.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..devices import make_generator
from ..errors import ConfigError
from .classes import NUM_CLASSES, resolve

BOUND = 2.0  # |z| above this is resampled; the model's z is then truncation * z, in [-2t, 2t]


def check_truncation(truncation: float) -> float:
    """``truncation`` as a float, or ConfigError unless it is in (0, 1]."""
    try:
        t = float(truncation)
    except (TypeError, ValueError):
        raise ConfigError(f"truncation must be a number in (0, 1]; got {truncation!r}") from None
    if not 0.0 < t <= 1.0:
        raise ConfigError(f"truncation must be in (0, 1]; got {t:g}")
    return t


def truncated_normal(
    n: int, dim: int, *, truncation: float = 1.0, generator: torch.Generator | None = None, bound: float = BOUND
) -> torch.Tensor:
    """(n, dim) float32 on the CPU: N(0, 1) with every value outside [-bound, bound] redrawn, times ``truncation``.

    Redrawing in a fixed order from ``generator`` makes the result a function of the seed alone (not of batch
    size or device).
    """
    z = torch.randn(n, dim, generator=generator)
    while True:
        bad = z.abs() > bound
        count = int(bad.sum())
        if count == 0:
            break
        z[bad] = torch.randn(count, generator=generator)
    return z * check_truncation(truncation)


def noise_for_seed(seed: int, n: int, dim: int, truncation: float) -> torch.Tensor:
    """``truncated_normal`` from a fresh generator seeded with ``seed``: (n, dim) float32 in [-2t, 2t]."""
    return truncated_normal(n, dim, truncation=truncation, generator=make_generator(seed))


def class_vectors(indices: Sequence[int], num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """(len(indices), num_classes) float32 one-hot rows."""
    out = torch.zeros(len(indices), num_classes)
    out[torch.arange(len(indices)), torch.as_tensor(list(indices), dtype=torch.long)] = 1.0
    return out


def truncated_noise_sample(
    batch_size: int = 1, dim_z: int = 128, truncation: float = 1.0, seed: int | None = None
) -> np.ndarray:
    """Reference-compatible: (batch_size, dim_z) float32 array, ``truncation * TruncatedNormal(-2, 2)``."""
    gen = make_generator(seed)
    return truncated_normal(batch_size, dim_z, truncation=truncation, generator=gen).numpy()


def _batch(items: list, batch_size: int) -> list:
    if len(items) == 1 and batch_size > 1:
        return items * batch_size
    return items


def one_hot_from_int(int_or_list: int | Sequence[int], batch_size: int = 1) -> np.ndarray:
    """Reference-compatible: (batch, 1000) float32 one-hot rows; a single class is repeated ``batch_size`` times."""
    items = [int_or_list] if isinstance(int_or_list, int | np.integer) else list(int_or_list)
    items = _batch(items, batch_size)
    return class_vectors([resolve(int(i)) for i in items]).numpy()


def one_hot_from_names(class_name_or_list: str | Sequence[str], batch_size: int = 1) -> np.ndarray:
    """Reference-compatible: (batch, 1000) float32 one-hot rows for class names, everyday words (through the
    WordNet index: ``"dog"`` -> 253) or numbers as strings; a single name is repeated ``batch_size`` times.

    UnknownModelError (with suggestions) for a name that is neither; :func:`impasto.gan.classes.explain` says
    which class a word became.
    """
    items = [class_name_or_list] if isinstance(class_name_or_list, str) else list(class_name_or_list)
    items = _batch(items, batch_size)
    return class_vectors([resolve(name) for name in items]).numpy()
