"""Class-conditional sampling: every requested class x ``samples`` noise vectors, in batches, with events.

Sample ``j`` uses the same noise vector for every class (so a grid's columns compare classes at equal z); the
noise is a function of ``seed`` and ``samples`` alone, drawn for all samples before any is skipped, so changing
``batch_size``, the device or which samples are skipped (``skip``, to resume a killed run) does not change which
images come out.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..errors import ConfigError
from ..events import Callback, CancelToken, Finished, Preview, Progress, Started, Stopwatch, emit
from ..media import make_grid
from ..nets.biggan import BigGANDeep
from .export import to_pil
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
    """What to draw. ``classes``: ImageNet indices; ``samples`` per class; ``seed`` None draws a fresh one.

    ``skip``: rows (``i * samples + j`` for class ``classes[i]``, sample ``j``) not to draw, e.g. those a killed
    run already wrote; the other rows come out exactly as in a run without ``skip``.
    """

    classes: tuple[int, ...]
    samples: int = 1
    truncation: float = 0.4
    seed: int | None = None
    batch_size: int = 8
    skip: frozenset[int] = frozenset()

    def validated(self) -> GenerateConfig:
        if not self.classes:
            raise ConfigError("give at least one class")
        check_count("samples", self.samples, 1)
        check_count("batch size", self.batch_size, 1)
        check_truncation(self.truncation)
        n = len(self.classes) * self.samples
        bad = sorted(r for r in self.skip if not 0 <= r < n)
        if bad:
            raise ConfigError(f"cannot skip row {bad[0]}: there are {n} rows (classes x samples)")
        return self


@dataclass(frozen=True)
class GenerateResult:
    """``images``: (len(rows), 3, H, W) float32 in [-1, 1] on the CPU; ``rows[k]`` says which sample
    ``images[k]`` is: row ``i * samples + j`` is class ``classes[i]``, sample ``j`` (class-major; all rows in
    order unless some were skipped or the run was cancelled). ``noise``: (samples, z_dim) before any class.
    ``elapsed`` in seconds; ``info``: resolution, device, skipped rows."""

    images: torch.Tensor
    classes: tuple[int, ...]
    samples: int
    truncation: float
    seed: int
    noise: torch.Tensor
    rows: tuple[int, ...]
    elapsed: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)

    def sample_of(self, row: int) -> tuple[int, int]:
        """Row -> (ImageNet class, sample number)."""
        return self.classes[row // self.samples], row % self.samples

    def pictures(self) -> list[Image.Image]:
        """One RGB PIL image per row of ``images``, in the same order."""
        return to_pil(self.images)

    def grid(self, padding: int = 2, fill: Mapping[int, Image.Image] | None = None) -> Image.Image:
        """The samples as one picture: a row per class, a column per sample (``padding`` white pixels between).

        ``fill`` gives pictures for rows this result does not hold (e.g. read back from the files of a resumed
        run); rows neither made nor filled are left out, the rest keep their order.
        """
        pictures = dict(fill or {})
        pictures.update(zip(self.rows, self.pictures(), strict=True))
        if not pictures:
            raise ConfigError("no samples to put in a grid")
        return make_grid([pictures[r] for r in sorted(pictures)], self.samples, padding)


def run_batches(
    model: BigGANDeep,
    z: torch.Tensor,
    embeddings: torch.Tensor,
    truncation: float,
    batch_size: int,
    callback: Callback | None,
    cancel: CancelToken | None,
    watch: Stopwatch,
    partial: Callable[[torch.Tensor], Any],
    on_batch: Callable[[int, slice, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """``model.synthesize`` over rows of z/embeddings (N, z_dim) in batches -> (N, 3, H, W) float32 CPU.

    Checks ``cancel`` before each batch (``Cancelled(partial(images_so_far))``); after each batch calls
    ``on_batch(step, rows, images)`` (e.g. to emit previews), then emits Progress.
    """
    n = z.shape[0]
    total = (n + batch_size - 1) // batch_size
    out: list[torch.Tensor] = []
    empty = z.new_zeros(0, 3, model.config.output_dim, model.config.output_dim)
    with torch.inference_mode():
        for step in range(total):
            if cancel is not None:
                cancel.check(partial=partial(torch.cat(out) if out else empty))
            sl = slice(step * batch_size, min(n, (step + 1) * batch_size))
            out.append(model.synthesize(z[sl], embeddings[sl], truncation).float().cpu())
            if on_batch is not None:
                on_batch(step + 1, sl, out[-1])
            emit(callback, Progress(step=step + 1, total=total, elapsed=watch(), info={"images": sl.stop}))
    return torch.cat(out) if out else empty


def device_of(model: torch.nn.Module) -> str:
    p = next(model.parameters(), None)
    return str(p.device) if p is not None else "cpu"


def generate(
    model: BigGANDeep,
    config: GenerateConfig,
    *,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> GenerateResult:
    """Draw ``config.samples`` images of each class (less the ``skip`` rows).

    Emits Started, then per batch a Preview per image (``info``: row, class, sample) and a Progress, then
    Finished. Cancelled carries a GenerateResult of the rows made so far.
    """
    config = config.validated()
    seed = new_seed() if config.seed is None or config.seed < 0 else int(config.seed)
    t = check_truncation(config.truncation)
    watch = Stopwatch()
    k, s = len(config.classes), config.samples
    noise = noise_for_seed(seed, s, model.config.z_dim, t)  # (S, z_dim): drawn for every sample, skipped or not
    rows = tuple(r for r in range(k * s) if r not in config.skip)
    index = torch.tensor(rows, dtype=torch.long)
    z = noise.repeat(k, 1)[index]  # (R, z_dim): class-major, noise j repeated for each class, skipped rows out
    with torch.inference_mode():
        emb = model.embed(class_vectors(config.classes, model.config.num_classes))  # (K, z_dim)
    emb = emb.repeat_interleave(s, dim=0)[index]  # (R, z_dim)
    total = (len(rows) + config.batch_size - 1) // config.batch_size
    info = {"resolution": model.config.output_dim, "device": device_of(model), "skipped": len(config.skip)}
    emit(callback, Started(total=total, info={"images": len(rows), "seed": seed, **info}))

    def result(images: torch.Tensor) -> GenerateResult:
        done = rows[: images.shape[0]]
        return GenerateResult(images, config.classes, s, t, seed, noise, done, watch(), info)

    def previews(step: int, sl: slice, images: torch.Tensor) -> None:
        if callback is None:
            return
        for row, picture in zip(rows[sl], to_pil(images), strict=True):
            cls, j = config.classes[row // s], row % s
            emit(callback, Preview(step=step, image=picture, info={"row": row, "class": cls, "sample": j}))

    images = run_batches(model, z, emb, t, config.batch_size, callback, cancel, watch, result, previews)
    out = result(images)
    emit(callback, Finished(result=out, elapsed=out.elapsed))
    return out
