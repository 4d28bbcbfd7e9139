"""Videos across workers: the frames split into chunks, a task per chunk, the chunks stitched in order.

Layout (the work folder ``OUT.chunks/`` beside the output, which every worker must be able to read and write --
on a Ray cluster a shared folder)::

    OUT.chunks/.impasto-chunks.json          the settings' fingerprint and the chunk plan (ranges of frames)
    OUT.chunks/style_0.png ...               the style images, so a worker reads them by path
    OUT.chunks/chunk_000000-000048.zip       frames [0, 48) stylised: frame_000001.png ... + chunk.json

A chunk task (:func:`render_chunk`, the task function ``"impasto.workers.video:render_chunk"``) reads its range of
input frames itself (a file by ffmpeg's ``select`` on the decoded frame number, a folder by name), stylises them
and writes its chunk file atomically (:func:`impasto.media.atomic_write`): a chunk file is present complete or not
at all. Its name is its range, so a task that ran twice (a lost worker's chunk redone by the executor, or an
orphaned worker finishing after a kill) writes the same name with the same frames, and :func:`stitch_frames`
reads each range of the plan exactly once, in order: no frame is lost or duplicated. A resumed run skips the
ranges whose chunk file is there (:func:`finished_chunks`) and keeps the plan saved in the manifest, whatever the
number of workers now.

Seams with the stabiliser: it blends each frame with the previous result, so a chunk that starts cold would
differ from a single-process run at its first frames. Each chunk but the first therefore starts
:func:`warmup_frames` frames early and discards them: the previous result's influence decays like
``alpha ** k``, so after the warm-up the blend state differs from the single-process one by at most
:data:`SEAM_TOLERANCE` of the largest possible difference (in practice far less: the weight is below alpha
wherever the content changes). Without the stabiliser frames are independent: no warm-up, and the stitched video
equals the single-process one pixel for pixel.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import ConfigError, ImageError

log = logging.getLogger(__name__)

TASK_FN = "impasto.workers.video:render_chunk"
CHUNK_MANIFEST = ".impasto-chunks.json"
CHUNK_INFO = "chunk.json"  # the last member of a chunk file: its range and frame count
SEAM_TOLERANCE = 0.02  # the warm-up leaves at most this fraction of the stabiliser's start-up difference
MAX_WARMUP = 60  # frames; caps the warm-up for an alpha close to 1
MIN_CHUNK, MAX_CHUNK = 8, 240  # frames per chunk by default: small enough to balance and resume, large enough
CHUNKS_PER_WORKER = 4  # ... to keep the warm-up and the per-task start-up cheap


def chunk_name(start: int, stop: int) -> str:
    """The chunk file of frames [start, stop) (0-based)."""
    return f"chunk_{start:06d}-{stop:06d}.zip"


def default_chunk_frames(frames: int, workers: int) -> int:
    """Frames per chunk: about :data:`CHUNKS_PER_WORKER` chunks per worker, within [MIN_CHUNK, MAX_CHUNK]."""
    per = math.ceil(max(1, frames) / (CHUNKS_PER_WORKER * max(1, workers)))
    return max(MIN_CHUNK, min(MAX_CHUNK, per))


def plan_chunks(frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """Consecutive ranges [start, stop) covering frames 0..frames-1, each ``chunk_frames`` long (the last shorter)."""
    if chunk_frames < 1:
        raise ConfigError(f"chunk_frames must be at least 1, got {chunk_frames}")
    return [(a, min(a + chunk_frames, frames)) for a in range(0, frames, chunk_frames)]


def warmup_frames(alpha: float | None) -> int:
    """Frames a chunk starts early with the stabiliser (``alpha``; None: off -> 0): the smallest k with
    ``alpha ** k <= SEAM_TOLERANCE``, at most :data:`MAX_WARMUP`."""
    if alpha is None or alpha <= 0:
        return 0
    return min(MAX_WARMUP, math.ceil(math.log(SEAM_TOLERANCE) / math.log(alpha)))


# --- reading a range of input frames ----------------------------------------------------------------------------


def read_frame_range(
    input: str | os.PathLike[str], start: int, stop: int, size: tuple[int, int]
) -> Iterator[np.ndarray]:
    """Input frames [start, stop) of a video file or a folder of frames, each (H, W, 3) uint8 RGB of ``size``
    (W, H) -- the same pixels :func:`impasto.media.read_video` gives for those frames (same decode, same Lanczos
    resize). A file is decoded by ffmpeg, which passes on only the frames whose number is in the range."""
    from PIL import Image

    from ..media import frame_files

    p = Path(input)
    if stop <= start:
        return
    if p.is_dir():
        from ..imaging import load_image, resize

        for f in frame_files(p)[start:stop]:
            yield np.asarray(resize(load_image(f), size))
        return
    import imageio_ffmpeg

    # frames are numbered as decoded (n counts from 0); passthrough: no frame dropped or repeated to a rate
    pick = f"select=between(n\\,{start}\\,{stop - 1})"
    params = ["-vf", pick, "-fps_mode", "passthrough", "-frames:v", str(stop - start)]
    reader = imageio_ffmpeg.read_frames(str(p), output_params=params)
    try:
        meta = next(reader)
        w, h = meta["size"]
        for raw in reader:
            arr = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
            if (w, h) != tuple(size):
                arr = np.asarray(
                    Image.fromarray(arr).resize(cast(tuple[int, int], tuple(size)), Image.Resampling.LANCZOS)
                )
            yield arr
    finally:
        reader.close()


# --- the renderer a chunk uses ------------------------------------------------------------------------------------


def make_renderer(style: Mapping[str, Any], device: str, models: Any) -> tuple[Any, dict[str, str]]:
    """The per-frame renderer ((N, 3, H, W) float in [0, 1] -> same) for a style description, built once per chunk
    with the style side computed once; and ``info`` (model, device). ``style``: ``method`` (magenta or linear),
    ``layer``, ``styles`` (image paths), ``style_weights``, ``preset``, ``strength``, ``preserve_color``.

    The same computation as ``impasto.api.video`` in one process (Magenta: a PIL frame through ``with_vector`` /
    ``with_preset``; linear: ``prepare_style`` then ``render``), so a chunked video equals the single-process one.
    """
    from ..fast.magenta import StylizeOptions
    from ..fast.render import style_side
    from ..imaging import load_image

    side = style_side(
        method=style["method"], layer=style["layer"], styles=list(style.get("styles") or ()),
        style_weights=style.get("style_weights"), preset=style.get("preset"),
        opts=StylizeOptions(strength=float(style["strength"]), preserve_color=bool(style["preserve_color"])),
        device=device, models=models, read=load_image,
    )  # fmt: skip
    return side.frames(), {"model": side.model, "device": side.device}


# --- the chunk task -------------------------------------------------------------------------------------------------


def render_chunk(
    *,
    input: str,
    work: str,
    start: int,
    stop: int,
    size: Sequence[int],
    style: Mapping[str, Any],
    stabilize: Sequence[float] | None = None,
    warmup: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """The task: stylise input frames [start, stop) into ``work/chunk_START-STOP.zip`` (written atomically).

    ``size``: (W, H) of the stylised frames; ``stabilize``: [alpha, sigma] or None; ``warmup``: frames before
    ``start`` rendered and discarded (the stabiliser's seam, see the module docstring). Returns ``start``,
    ``stop``, ``frames`` (stored), ``path``, ``seconds``, ``worker_pid``.
    """
    from ..fast import video as fv
    from ..media import atomic_write
    from . import worker_cancel, worker_device, worker_models

    t0 = time.perf_counter()
    first = max(0, int(start) - int(warmup))
    render, _info = make_renderer(style, worker_device(device), worker_models())
    stab = None if stabilize is None else fv.StabilizeOptions(alpha=float(stabilize[0]), sigma=float(stabilize[1]))
    target = Path(work) / chunk_name(start, stop)
    stored = 0

    def write(tmp: Path) -> None:
        nonlocal stored
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already

            def on_frame(i: int, frame: np.ndarray) -> None:
                nonlocal stored
                index = first + i
                if index < start:
                    return  # a warm-up frame: only the stabiliser's state needed it
                zf.writestr(f"frame_{index + 1:06d}.png", _png(frame))
                stored += 1

            fv.stylize_frames(
                read_frame_range(input, first, stop, (int(size[0]), int(size[1]))), render, on_frame=on_frame,
                total=stop - first, stabilize=stab, cancel=worker_cancel(),
            )  # fmt: skip
            if stored == 0:
                raise ImageError(f"no frames decoded in range {start}-{stop} of {input}")
            zf.writestr(CHUNK_INFO, json.dumps({"start": start, "stop": stop, "frames": stored}))

    atomic_write(target, write)
    return {
        "start": start, "stop": stop, "frames": stored, "path": str(target), "seconds": time.perf_counter() - t0,
        "worker_pid": os.getpid(),
    }  # fmt: skip


def _png(frame: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --- finished chunks and stitching ----------------------------------------------------------------------------------


def chunk_frames_stored(path: str | os.PathLike[str]) -> int | None:
    """How many frames a chunk file holds, or None when it is not a complete chunk file."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = json.loads(zf.read(CHUNK_INFO))
            names = [n for n in zf.namelist() if n.startswith("frame_")]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return int(info["frames"]) if len(names) == int(info.get("frames", -1)) else None


def finished_chunks(work: str | os.PathLike[str], plan: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """The ranges of ``plan`` whose chunk file in ``work`` is complete -> frames stored."""
    out = {}
    for a, b in plan:
        n = chunk_frames_stored(Path(work) / chunk_name(a, b))
        if n is not None:
            out[(a, b)] = n
    return out


def read_chunk(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The frames of one chunk file in order, each (H, W, 3) uint8."""
    from PIL import Image

    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("frame_"))
        for n in names:
            with zf.open(n) as fh, Image.open(fh) as im:
                yield np.asarray(im.convert("RGB"))


def stitch_frames(work: str | os.PathLike[str], plan: Sequence[tuple[int, int]]) -> Iterator[np.ndarray]:
    """Every frame of the chunks of ``plan`` (in plan order, each range read once), as (H, W, 3) uint8. Stops
    at the first range without a complete chunk file (a partial video: the finished prefix)."""
    for a, b in plan:
        path = Path(work) / chunk_name(a, b)
        if chunk_frames_stored(path) is None:
            return
        yield from read_chunk(path)


def prefix_frames(done: Mapping[tuple[int, int], int], plan: Sequence[tuple[int, int]]) -> int:
    """Frames in the finished chunks at the start of ``plan`` (up to the first one not finished)."""
    count = 0
    for r in plan:
        if r not in done:
            break
        count += done[r]
    return count


@dataclass(frozen=True)
class ChunkPlan:
    """What a chunked run saved in its manifest: the ranges and the warm-up."""

    chunks: tuple[tuple[int, int], ...]
    warmup: int

    def to_json(self) -> dict[str, Any]:
        return {"chunks": [list(c) for c in self.chunks], "warmup": self.warmup}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkPlan:
        return cls(tuple((int(a), int(b)) for a, b in data["chunks"]), int(data["warmup"]))


def fps_text(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"
