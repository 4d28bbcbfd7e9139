"""Writing GAN outputs: image grids, one file per sample, GIF (Pillow) and MP4 (imageio-ffmpeg) animations.

Every file is written atomically (temporary file + rename, ``impasto.imaging.atomic_write``). Images come in as
(N, 3, H, W) float tensors in [-1, 1] (the generator's range).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError
from ..imaging import IMAGE_EXTENSIONS, atomic_write, check_output_path, save_image

ANIMATION_EXTENSIONS = (".gif", ".mp4")
STILL_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e != ".gif")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, ``round((x + 1) / 2 * 255)``."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) in [-1, 1] -> N RGB PIL images."""
    return [Image.fromarray(a) for a in to_uint8(images)]


def make_grid(images: torch.Tensor, ncol: int, padding: int = 2, fill: int = 255) -> Image.Image:
    """Tile (N, 3, H, W) in [-1, 1] row by row, ``ncol`` per row, ``padding`` pixels of ``fill`` between."""
    arr = to_uint8(images)
    n, h, w, _ = arr.shape
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    canvas = np.full((nrow * h + (nrow + 1) * padding, ncol * w + (ncol + 1) * padding, 3), fill, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        canvas[y : y + h, x : x + w] = arr[i]
    return Image.fromarray(canvas)


def check_output(path: str | os.PathLike[str], allowed: Sequence[str], overwrite: bool = False) -> Path:
    """Validate an output path before any work (see impasto.imaging.check_output_path)."""
    return check_output_path(path, overwrite=overwrite, allowed=tuple(allowed))


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], ncol: int, padding: int = 2) -> Path:
    """Write a grid image (format from the extension) atomically."""
    return save_image(make_grid(images, ncol, padding), path)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def save_each(images: torch.Tensor, folder: str | os.PathLike[str], names: Sequence[str]) -> list[Path]:
    """Write image ``i`` to ``folder / names[i]`` (atomically each); returns the paths."""
    folder = Path(folder)
    return [save_image(img, folder / name) for img, name in zip(to_pil(images), names, strict=True)]


def _frames_for(frames: Sequence[Image.Image], bounce: bool) -> list[Image.Image]:
    frames = list(frames)
    return frames + frames[-2:0:-1] if bounce and len(frames) > 2 else frames


def save_gif(
    frames: Sequence[Image.Image],
    path: str | os.PathLike[str],
    *,
    duration_ms: int = 100,
    loop: bool = True,
    bounce: bool = False,
) -> Path:
    """Animated GIF via Pillow: ``duration_ms`` per frame, looping forever unless ``loop=False``, optionally
    played forwards then backwards (``bounce``; the end frames are not repeated)."""
    seq = _frames_for(frames, bounce)
    if not seq:
        raise ConfigError("no frames to write")
    kwargs = {"save_all": True, "append_images": seq[1:], "duration": int(duration_ms), "disposal": 1}
    if loop:
        kwargs["loop"] = 0
    return atomic_write(path, lambda tmp: seq[0].save(tmp, format="GIF", **kwargs))


def save_mp4(
    frames: Sequence[Image.Image], path: str | os.PathLike[str], *, fps: float = 10.0, bounce: bool = False
) -> Path:
    """H.264 MP4 (yuv420p, plays everywhere) via imageio-ffmpeg; odd sizes are padded by one pixel."""
    import imageio_ffmpeg

    seq = _frames_for(frames, bounce)
    if not seq:
        raise ConfigError("no frames to write")
    w, h = seq[0].size
    w2, h2 = w + w % 2, h + h % 2  # yuv420p needs even sides

    def write(tmp: Path) -> None:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (w2, h2),
            fps=fps,
            codec="libx264",
            quality=8,
            macro_block_size=1,
            output_params=["-f", "mp4"],  # the temporary name does not end in .mp4
        )
        writer.send(None)
        try:
            for im in seq:
                arr = np.zeros((h2, w2, 3), np.uint8)
                arr[:h, :w] = np.asarray(im.convert("RGB"))
                writer.send(arr)
        finally:
            writer.close()

    return atomic_write(path, write)


def save_animation(
    frames: Sequence[Image.Image], path: str | os.PathLike[str], *, fps: float = 10.0, bounce: bool = False,
    loop: bool = True,
) -> Path:  # fmt: skip
    """GIF or MP4 by the extension of ``path``."""
    ext = Path(path).suffix.lower()
    if ext == ".gif":
        return save_gif(frames, path, duration_ms=round(1000 / fps), loop=loop, bounce=bounce)
    if ext == ".mp4":
        return save_mp4(frames, path, fps=fps, bounce=bounce)
    raise ConfigError(f"unsupported animation extension {ext!r}; use .gif or .mp4")


# --- reference-compatible helpers ----------------------------------------------------------------------------


def convert_to_images(obj: torch.Tensor | np.ndarray) -> list[Image.Image]:
    """Like pytorch-pretrained-BigGAN's: (N, 3, H, W) in [-1, 1] -> PIL images, ``clip((x + 1) / 2 * 256)``."""
    arr = obj.detach().float().cpu().numpy() if isinstance(obj, torch.Tensor) else np.asarray(obj)
    arr = np.clip((arr.transpose(0, 2, 3, 1) + 1) / 2.0 * 256, 0, 255).astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def save_as_images(obj: torch.Tensor | np.ndarray, file_name: str = "output") -> list[Path]:
    """Like the reference's: write ``{file_name}_{i}.png`` for each image (atomically); returns the paths."""
    return [save_image(im, f"{file_name}_{i}.png") for i, im in enumerate(convert_to_images(obj))]
