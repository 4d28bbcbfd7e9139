"""Interpolation between two (class, seed) endpoints, linear or spherical, in noise and class-embedding space.

Frame 0 is exactly the plain sample of (class_from, seed_from) and the last frame that of (class_to, seed_to):
the endpoints use the same noise (``noise_for_seed``) and the same embedding as ``sampling.generate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..events import Callback, CancelToken, Finished, Started, Stopwatch, emit
from ..nets.biggan import BigGANDeep
from .export import grid_of
from .noise import check_truncation, class_vectors, noise_for_seed
from .sampling import check_count, device_of, new_seed, run_batches


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t) a + t b; returns ``a``/``b`` themselves at t = 0/1."""
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    return (1.0 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation row by row (a, b: (N, D)), along the great circle, scaling the radius linearly.

    Rows that are (nearly) parallel fall back to ``lerp``. Exact endpoints at t = 0/1.
    """
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)  # (N, 1)
    ua, ub = a / na.clamp_min(eps), b / nb.clamp_min(eps)
    omega = torch.arccos((ua * ub).sum(1, keepdim=True).clamp(-1.0, 1.0))  # (N, 1) angle between rows
    so = torch.sin(omega)
    direction = (torch.sin((1.0 - t) * omega) * ua + torch.sin(t * omega) * ub) / so.clamp_min(eps)
    radius = (1.0 - t) * na + t * nb
    out = direction * radius
    parallel = so.squeeze(1) < 1e-4
    if parallel.any():
        out[parallel] = lerp(a[parallel], b[parallel], t)
    return out


@dataclass(frozen=True)
class InterpolateConfig:
    """``steps`` frames (>= 2, endpoints included) for each of ``samples`` noise vectors."""

    class_from: int
    class_to: int
    seed_from: int | None = None
    seed_to: int | None = None  # None: the same as seed_from (only the class moves)
    steps: int = 10
    samples: int = 1
    truncation: float = 0.4
    spherical: bool = False
    batch_size: int = 8

    def validated(self) -> InterpolateConfig:
        check_count("steps", self.steps, 2)
        check_count("samples", self.samples, 1)
        check_count("batch size", self.batch_size, 1)
        check_truncation(self.truncation)
        return self


@dataclass(frozen=True)
class InterpolateResult:
    """``frames``: (steps, samples, 3, H, W) float32 in [-1, 1] on the CPU; ``ts``: the step positions in [0, 1].

    A cancelled run's partial result holds the frames made so far (``len(ts)`` of them). ``elapsed`` in seconds;
    ``info``: resolution, device, steps planned.
    """

    frames: torch.Tensor
    ts: tuple[float, ...]
    class_from: int
    class_to: int
    seed_from: int
    seed_to: int
    truncation: float
    spherical: bool
    elapsed: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)

    def pictures(self, padding: int = 2) -> list[Image.Image]:
        """One RGB PIL image per frame (an animation's frames): the samples side by side."""
        return [grid_of(f, ncol=f.shape[0], padding=padding) for f in self.frames]

    def grid(self, padding: int = 2) -> Image.Image:
        """The frames as one picture: a row per sample, a column per step."""
        steps, samples = self.frames.shape[:2]
        by_sample = self.frames.transpose(0, 1).reshape(steps * samples, *self.frames.shape[2:])  # (S*steps, 3, H, W)
        return grid_of(by_sample, ncol=steps, padding=padding)


def interpolate(
    model: BigGANDeep,
    config: InterpolateConfig,
    *,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> InterpolateResult:
    """Render the interpolation; emits Started, Progress per batch, Finished."""
    config = config.validated()
    t_trunc = check_truncation(config.truncation)
    seed_from = new_seed() if config.seed_from is None or config.seed_from < 0 else int(config.seed_from)
    seed_to = seed_from if config.seed_to is None or config.seed_to < 0 else int(config.seed_to)
    s, n_steps, dim = config.samples, config.steps, model.config.z_dim
    watch = Stopwatch()
    z_a = noise_for_seed(seed_from, s, dim, t_trunc)  # (S, z_dim)
    z_b = noise_for_seed(seed_to, s, dim, t_trunc)
    with torch.inference_mode():
        emb = model.embed(class_vectors([config.class_from, config.class_to], model.config.num_classes))  # (2, z)
    e_a, e_b = emb[:1].expand(s, -1), emb[1:].expand(s, -1)  # (S, z_dim) each
    mix = slerp if config.spherical else lerp
    ts = tuple(i / (n_steps - 1) for i in range(n_steps))
    z = torch.cat([mix(z_a, z_b, t) for t in ts])  # (steps*S, z_dim), step-major
    e = torch.cat([mix(e_a, e_b, t) for t in ts])
    total = (n_steps * s + config.batch_size - 1) // config.batch_size
    info = {"resolution": model.config.output_dim, "device": device_of(model), "steps": n_steps}
    emit(callback, Started(total=total, info={"frames": n_steps, "samples": s, "seed_from": seed_from, **info}))

    def result(images: torch.Tensor) -> InterpolateResult:
        done = images.shape[0] // s
        frames = images[: done * s].reshape(done, s, *images.shape[1:]) if done else images.new_zeros(0, s, 3, 0, 0)
        return InterpolateResult(
            frames, ts[:done], config.class_from, config.class_to, seed_from, seed_to, t_trunc, config.spherical,
            watch(), info,
        )  # fmt: skip

    images = run_batches(model, z, e, t_trunc, config.batch_size, callback, cancel, watch, result)
    out = result(images)
    emit(callback, Finished(result=out, elapsed=out.elapsed))
    return out
