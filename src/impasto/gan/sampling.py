"""Class-conditional sampling: every requested class x ``samples`` noise vectors, in batches, with events.

Sample ``j`` uses the same noise vector for every class (so a grid's columns compare classes at equal z); the
noise is a function of ``seed`` alone, so changing ``batch_size`` or the device does not change which images
come out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..events import Callback, CancelToken, Finished, Progress, Started, Stopwatch, emit
from ..nets.biggan import BigGANDeep
from .noise import check_truncation, class_vectors, noise_for_seed


def new_seed() -> int:
    """A fresh seed (from the OS, not the global RNG), recorded in results so a run can be repeated."""
    return secrets.randbelow(2**31 - 1)


def check_count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum}; got {value!r}")
    return value


@dataclass(frozen=True)
class GenerateConfig:
    """What to draw. ``classes``: ImageNet indices; ``samples`` per class; ``seed`` None draws a fresh one."""

    classes: tuple[int, ...]
    samples: int = 1
    truncation: float = 0.4
    seed: int | None = None
    batch_size: int = 8

    def validated(self) -> GenerateConfig:
        if not self.classes:
            raise ConfigError("give at least one class")
        check_count("samples", self.samples, 1)
        check_count("batch size", self.batch_size, 1)
        check_truncation(self.truncation)
        return self


@dataclass(frozen=True)
class GenerateResult:
    """``images``: (len(classes) * samples, 3, H, W) float32 in [-1, 1] on the CPU, class-major (row ``i *
    samples + j`` is class ``classes[i]``, sample ``j``). ``noise``: (samples, z_dim) before any class."""

    images: torch.Tensor
    classes: tuple[int, ...]
    samples: int
    truncation: float
    seed: int
    noise: torch.Tensor


def run_batches(
    model: BigGANDeep,
    z: torch.Tensor,
    embeddings: torch.Tensor,
    truncation: float,
    batch_size: int,
    callback: Callback | None,
    cancel: CancelToken | None,
    watch: Stopwatch,
    partial,  # noqa: ANN001 - partial(images_so_far) -> the result to attach to Cancelled
) -> torch.Tensor:
    """``model.synthesize`` over rows of z/embeddings (N, z_dim) in batches -> (N, 3, H, W) float32 CPU."""
    n = z.shape[0]
    total = (n + batch_size - 1) // batch_size
    out: list[torch.Tensor] = []
    with torch.inference_mode():
        for step in range(total):
            if cancel is not None:
                cancel.check(partial=partial(torch.cat(out) if out else z.new_zeros(0, 3, 0, 0)))
            sl = slice(step * batch_size, min(n, (step + 1) * batch_size))
            out.append(model.synthesize(z[sl], embeddings[sl], truncation).float().cpu())
            emit(callback, Progress(step=step + 1, total=total, elapsed=watch(), info={"images": sl.stop}))
    return torch.cat(out)


def generate(
    model: BigGANDeep,
    config: GenerateConfig,
    *,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> GenerateResult:
    """Draw ``config.samples`` images of each class; emits Started, Progress per batch, Finished."""
    config = config.validated()
    seed = new_seed() if config.seed is None or config.seed < 0 else int(config.seed)
    t = check_truncation(config.truncation)
    watch = Stopwatch()
    k, s = len(config.classes), config.samples
    noise = noise_for_seed(seed, s, model.config.z_dim, t)  # (S, z_dim)
    z = noise.repeat(k, 1)  # (K*S, z_dim): class-major, noise j repeated for each class
    with torch.inference_mode():
        emb = model.embed(class_vectors(config.classes, model.config.num_classes))  # (K, z_dim)
    emb = emb.repeat_interleave(s, dim=0)  # (K*S, z_dim)
    total = (k * s + config.batch_size - 1) // config.batch_size
    emit(callback, Started(total=total, info={"images": k * s, "seed": seed, "resolution": model.config.output_dim}))

    def partial(images: torch.Tensor) -> GenerateResult:
        return GenerateResult(images, config.classes, s, t, seed, noise)

    images = run_batches(model, z, emb, t, config.batch_size, callback, cancel, watch, partial)
    result = GenerateResult(images, config.classes, s, t, seed, noise)
    emit(callback, Finished(result=result, elapsed=watch()))
    return result
