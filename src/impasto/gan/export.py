"""BigGAN's outputs as pictures: the generator's [-1, 1] tensors to uint8/PIL, and the reference's helpers.

Writing files (grids, GIF, MP4) is :mod:`impasto.media`'s job; this module only converts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..media import make_grid, save_image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, ``round((x + 1) / 2 * 255)``."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) in [-1, 1] -> N RGB PIL images."""
    return [Image.fromarray(a) for a in to_uint8(images)]


def grid_of(images: torch.Tensor, ncol: int, padding: int = 2) -> Image.Image:
    """(N, 3, H, W) in [-1, 1] tiled row by row, ``ncol`` per row."""
    return make_grid(to_pil(images), ncol, padding)


# --- reference-compatible helpers ----------------------------------------------------------------------------


def convert_to_images(obj: torch.Tensor | np.ndarray) -> list[Image.Image]:
    """Like pytorch-pretrained-BigGAN's: (N, 3, H, W) in [-1, 1] -> PIL images, ``clip((x + 1) / 2 * 256)``."""
    arr = obj.detach().float().cpu().numpy() if isinstance(obj, torch.Tensor) else np.asarray(obj)
    arr = np.clip((arr.transpose(0, 2, 3, 1) + 1) / 2.0 * 256, 0, 255).astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def save_as_images(obj: torch.Tensor | np.ndarray, file_name: str = "output") -> list[Path]:
    """Like the reference's: write ``{file_name}_{i}.png`` for each image (atomically); returns the paths."""
    return [save_image(im, f"{file_name}_{i}.png") for i, im in enumerate(convert_to_images(obj))]
