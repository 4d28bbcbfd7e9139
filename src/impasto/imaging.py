"""Images in: load (EXIF orientation, alpha, bomb checks), PIL <-> tensor, colour. Writing is :mod:`impasto.media`.

Tensors here are ``(1, 3, H, W)`` or ``(3, H, W)`` float in [0, 1], RGB, unless a docstring says otherwise.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ConfigError, ImageError
from .media import IMAGE_EXTENSIONS

MAX_PIXELS = 40_000 * 40_000 // 4  # 400 megapixels: beyond this we refuse, as a decompression bomb
MIN_SIDE = 2

ImageFile.LOAD_TRUNCATED_IMAGES = False


def load_image(path: str | os.PathLike[str], *, min_side: int = MIN_SIDE) -> Image.Image:
    """Read an image file as an RGB PIL image, upright per its EXIF tag, alpha composited on white.

    Raises ImageError with one sentence for a missing, unreadable, truncated, tiny or bomb-sized file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image not found: {p}")
    if p.is_dir():
        raise ImageError(f"expected an image file but {p} is a folder")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{p} is {w}x{h} pixels, over the {MAX_PIXELS // 1_000_000} MP limit")
                im.load()
                img = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{p} declares a size too large to decode safely (decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{p} is not an image impasto can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {p}: {exc}") from None
    if min(img.size) < min_side:
        raise ImageError(f"{p} is {img.size[0]}x{img.size[1]} pixels; both sides need at least {min_side}")
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of ``img``; transparent pixels are composited on white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given plus the images inside any folder given; raises ConfigError when nothing is left."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise ConfigError(f"no images found in folder {p}")
            out.extend(found)
        elif not p.exists():
            raise ImageError(f"image not found: {p}")
        else:
            out.append(p)
    return out


def fit_size(size: tuple[int, int], longest: int | None) -> tuple[int, int]:
    """(W, H) scaled so the longest side is ``longest`` (unchanged when None), each side at least 1."""
    w, h = size
    if not longest:
        return w, h
    s = longest / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos resize to (W, H); returns ``img`` itself when the size already matches."""
    return img if img.size == tuple(size) else img.resize(tuple(size), Image.LANCZOS)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) float32 in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> YCbCr (JPEG/ITU-R BT.601 full range, Cb/Cr centred on 0.5)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 0.5 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], dim=1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_ycbcr."""
    y, cb, cr = x[:, 0], x[:, 1] - 0.5, x[:, 2] - 0.5
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.stack([r, g, b], dim=1)


def transfer_luminance(stylized: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Keep ``stylized``'s luminance (Y) and ``original``'s chroma (CbCr): "preserve colour".

    Both (N, 3, H, W) in [0, 1]; ``original`` is resized bilinearly to ``stylized``'s size if needed.
    """
    if original.shape[-2:] != stylized.shape[-2:]:
        original = torch.nn.functional.interpolate(
            original, size=stylized.shape[-2:], mode="bilinear", align_corners=False, antialias=True
        )
    s, o = rgb_to_ycbcr(stylized), rgb_to_ycbcr(original)
    return ycbcr_to_rgb(torch.cat([s[:, :1], o[:, 1:]], dim=1)).clamp(0, 1)
