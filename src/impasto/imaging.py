"""Images in: load, normalise (EXIF orientation, bit depth, palette, alpha, colour profile), size limits, PIL <->
tensor, colour. Writing is :mod:`impasto.media`.

Every image impasto works on, from a file (:func:`load_image`) or handed to the API as a PIL image, goes through
one function, :func:`normalise`, and comes out the same way: an 8-bit RGB PIL image, upright per its EXIF
orientation, transparent pixels composited on white, colours in sRGB. The rules:

- **Colour profiles.** An embedded ICC profile (RGB, greyscale, CMYK or Lab) is applied: the pixels are converted
  to sRGB with littlecms (``PIL.ImageCms``, the profile's default rendering intent, black-point compensation).
  An image without a profile is taken to be sRGB already; CMYK without a profile goes through Pillow's plain
  conversion (R = 255 - C - K, ...). A profile that cannot be read or does not fit the pixels is ignored with a
  logged warning. Outputs are therefore sRGB, and :func:`impasto.media.save_image` embeds an sRGB profile in them,
  so colour-managed viewers show exactly what was computed.
- **Bit depth.** 16-bit greyscale (``I;16``, ``I;16B``, ...) becomes 8-bit as ``round(v / 257)``, so 65535 is 255.
  32-bit integer (``I``) and float (``F``) images use the smallest standard range that holds their values:
  [0, 1] for floats that lie in it, then 0..255 and 0..65535 for whole-number data; anything else is stretched
  from 0 (or its minimum, if negative) to its maximum. 16-bit-per-channel RGB(A) PNG and TIFF files are reduced
  to 8 bits by Pillow itself, which keeps the high byte (``v // 256``): at most one level of 255 from
  ``round(v / 257)``.
- **Palette, alpha.** Palette images (with or without a transparent index), ``LA``, ``PA``, ``RGBA`` and images with
  a ``transparency`` colour key are composited on white, after their colours are converted to sRGB.

Size limits: :func:`load_image` refuses an image whose decoded size exceeds :func:`pixel_limit` (by default what
half the available memory holds, ``IMPASTO_MAX_PIXELS`` overrides), reading the declared size before decoding.

Tensors here are ``(1, 3, H, W)`` or ``(3, H, W)`` float in [0, 1], RGB, unless a docstring says otherwise.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import struct
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ConfigError, ImageError
from .media import IMAGE_EXTENSIONS

try:  # littlecms is part of every Pillow wheel; a source build may lack it
    from PIL import ImageCms
except ImportError:  # pragma: no cover
    ImageCms = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MAX_PIXELS = 400_000_000  # the limit where available memory cannot be read (and the old fixed limit's name)
BYTES_PER_PIXEL = 3 + 3 * 4  # what one pixel costs a command: the decoded RGB8 image and its float32 tensor
MIN_SIDE = 2
ENV_MAX_PIXELS = "IMPASTO_MAX_PIXELS"
_ORIENTATION = 0x0112
_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")

# Pillow's own decompression-bomb check (Image.MAX_IMAGE_PIXELS, a warning at 89 MP and an error at 179 MP) runs
# inside Image.open, before impasto could read the declared size and apply its own, memory-based limit. So every
# impasto load holds this lock while it opens and decodes a file, and only for that time sets Pillow's limit to
# what impasto has approved (off while the header is parsed, then max(Pillow's own, impasto's limit) while the
# pixels are decoded, so checks on frames and tiles inside the file still run). The lock keeps concurrent impasto
# loads from restoring each other's values out of order; the previous value is restored in ``finally``, so the
# process is left as it was found. Code outside impasto that opens images in another thread during such a window
# sees the relaxed value: the price of Pillow having one process-wide setting.
_PILLOW_LIMIT_LOCK = threading.Lock()


# --- how many pixels a load may decode --------------------------------------------------------------------------


def _available_memory() -> int | None:
    """Bytes of memory this process can still use: MemAvailable, capped by a cgroup v2 limit; None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            available = min(available, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return available


def pixel_limit(max_pixels: int | None = None) -> tuple[int, str]:
    """The most pixels a load may decode, and where that number comes from (for the error message).

    ``max_pixels`` (a command's own limit) wins; else the ``IMPASTO_MAX_PIXELS`` environment variable; else the
    pixel count whose decoded RGB8 image plus float32 tensor (:data:`BYTES_PER_PIXEL` = 15 bytes a pixel) fit in
    half the available memory, in whole megapixels (:data:`MAX_PIXELS`, 400 MP, where memory cannot be read).
    """
    if max_pixels is not None:
        if max_pixels < 1:
            raise ConfigError(f"max_pixels must be at least 1, got {max_pixels}")
        return int(max_pixels), "set by the caller"
    env = os.environ.get(ENV_MAX_PIXELS)
    if env is not None and env.strip():
        try:
            value = int(env.strip())
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{ENV_MAX_PIXELS} must be a whole number of pixels such as 200000000, got {env!r}")
        return value, f"set by {ENV_MAX_PIXELS}"
    memory = _available_memory()
    if memory is None:
        return MAX_PIXELS, f"the default; {ENV_MAX_PIXELS} overrides"
    limit = max(1_000_000, memory // 2 // BYTES_PER_PIXEL // 1_000_000 * 1_000_000)
    return limit, f"set by available memory; {ENV_MAX_PIXELS} overrides"


def _megapixels(n: int) -> str:
    """``600 MP``, ``12.0 MP`` or ``40,000 pixels``: a size for a message."""
    if n >= 10_000_000:
        return f"{n // 1_000_000} MP"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MP"
    return f"{n:,} pixels"


# --- loading ----------------------------------------------------------------------------------------------------


def load_image(
    path: str | os.PathLike[str],
    *,
    min_side: int = MIN_SIDE,
    max_side: int | None = None,
    max_pixels: int | None = None,
) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image in sRGB: see :func:`normalise` for what that involves.

    ``max_side``: the caller will use the image at most this many pixels on its longest side, so a larger image is
    returned downscaled to exactly that (Lanczos; never upscaled), and a JPEG is decoded at 1/2, 1/4 or 1/8 of its
    size when that still covers it (``draft``), which cuts decode memory and time for huge photos.
    ``max_pixels``: the most pixels to decode (None: :func:`pixel_limit`); the declared size is checked before
    any pixel is decoded. Pillow's process-wide ``Image.MAX_IMAGE_PIXELS`` is left as it was.

    Raises ImageError with one sentence for a missing, unreadable, truncated, tiny or over-limit file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image not found: {p}")
    if p.is_dir():
        raise ImageError(f"expected an image file but {p} is a folder")
    limit, why = pixel_limit(max_pixels)
    im: Image.Image | None = None
    target: tuple[int, int] | None = None  # (W, H) as stored, before the EXIF turn
    swapped = False
    try:
        with _PILLOW_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            try:
                Image.MAX_IMAGE_PIXELS = None  # the header only: impasto's own check follows
                im = Image.open(p)
                w, h = im.size
                if min(w, h) < min_side:
                    raise ImageError(f"{p} is {w}x{h} pixels; both sides need at least {min_side}")
                target = fit_size((w, h), max_side) if max_side and max(w, h) > max_side else None
                if target is not None:
                    im.draft(None, target)  # JPEG/MPO: decode at 1/2, 1/4 or 1/8, still covering ``target``
                decoded = im.size[0] * im.size[1]
                if decoded > limit:
                    reduced = f", {_megapixels(decoded)} at the size asked for" if decoded < w * h else ""
                    raise ImageError(
                        f"{p} is {w}x{h} ({_megapixels(w * h)}{reduced}); impasto reads at most "
                        f"{_megapixels(limit)} here ({why})"
                    )
                Image.MAX_IMAGE_PIXELS = None if saved is None else max(saved, limit)
                im.load()
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        swapped = _orientation(im) in (5, 6, 7, 8)  # turned a quarter: the target's sides swap too
        img = normalise(im)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{p} holds a frame or tile larger than it declares (a decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{p} is not an image impasto can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError(f"cannot read image {p}: {exc}") from None
    finally:
        if im is not None:
            im.close()
    if target is not None:
        img = resize(img, (target[1], target[0]) if swapped else target)
    return img


# --- normalisation: any PIL image -> upright 8-bit sRGB RGB -----------------------------------------------------


def normalise(img: Image.Image) -> Image.Image:
    """Any PIL image -> a new 8-bit RGB image in sRGB, upright, with transparency composited on white.

    The one normalisation for files (:func:`load_image`) and for PIL images passed to :mod:`impasto.api`: applies
    the EXIF orientation, reduces 16/32-bit and float data to 8 bits, expands palettes, converts colours to sRGB
    through the embedded ICC profile (see the module docstring for each rule) and composites alpha on white.
    The result carries no ``icc_profile``, EXIF or transparency in ``info``: its pixels are plain sRGB.
    """
    icc = img.info.get("icc_profile")
    img = _upright(img)
    colour, alpha = _colour_and_alpha(img)
    rgb = _to_srgb(colour, icc)
    if alpha is not None:
        rgb = Image.composite(rgb, Image.new("RGB", rgb.size, (255, 255, 255)), alpha)
    if rgb is img:
        rgb = rgb.copy()
    rgb.info = {}
    return rgb


def to_rgb(img: Image.Image) -> Image.Image:
    """Old name of :func:`normalise` (which also applies EXIF orientation and colour profiles)."""
    return normalise(img)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright; 2-8 mirror and/or turn), 1 when absent or unreadable."""
    try:
        value = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop a load; the pixels are still fine
        log.warning("ignoring an unreadable EXIF block")
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned per its EXIF orientation (a copy only when it needs turning)."""
    return ImageOps.exif_transpose(img) if _orientation(img) != 1 else img


def _colour_and_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Split ``img`` into 8-bit colour data in mode L, RGB, CMYK or LAB and an alpha mask (mode L) or None."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_GREY or mode in ("I", "F"):
        arr = np.asarray(img)  # (H, W) uint16 / int32 / float32
        key = img.info.get("transparency")
        alpha = None
        if isinstance(key, (int, float)) and not isinstance(key, bool):
            alpha = Image.fromarray(np.where(arr == key, 0, 255).astype(np.uint8), "L")
        return Image.fromarray(_to_uint8(arr, mode), "L"), alpha
    if mode == "P":
        palette_alpha = img.palette is not None and img.palette.mode == "RGBA"
        img = img.convert("RGBA" if ("transparency" in img.info or palette_alpha) else "RGB")
    elif mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("PA", "RGBa", "RGBX", "YCbCr", "HSV", "1", "La"):
        img = img.convert({"La": "LA", "1": "L", "PA": "RGBA", "RGBa": "RGBA"}.get(mode, "RGB"))
    if img.mode in ("LA", "RGBA"):
        return img.convert(img.mode[:-1]), img.getchannel("A")
    if img.mode not in ("L", "RGB", "CMYK", "LAB"):
        return img.convert("RGB"), None
    return img, None


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) 16-bit, int32 or float32 samples -> (H, W) uint8 by the rules in the module docstring."""
    if mode in _SIXTEEN_BIT_GREY:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)  # == round(v / 257), exactly
    if mode == "F":
        finite = np.isfinite(arr)
        if not finite.all():
            vals = arr[finite]
            lo_f, hi_f = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
            arr = np.nan_to_num(arr, nan=0.0, posinf=hi_f, neginf=lo_f)
    if arr.size == 0:
        return np.zeros(arr.shape, np.uint8)
    lo, hi = float(arr.min()), float(arr.max())
    whole = mode == "I" or bool(np.array_equal(arr, np.round(arr)))
    if mode == "F" and lo >= 0 and hi <= 1:
        scaled = arr * 255.0
    elif whole and lo >= 0 and hi <= 255:
        scaled = arr
    elif whole and lo >= 0 and hi <= 65535:
        return ((arr.astype(np.int64) + 128) // 257).astype(np.uint8)
    else:
        base = min(lo, 0.0)
        scaled = (arr - base) * 255.0 / (hi - base) if hi > base else np.zeros_like(arr, np.float32)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


_PROFILE_SPACE = {"L": "GRAY", "RGB": "RGB", "CMYK": "CMYK", "LAB": "LAB"}


def _to_srgb(colour: Image.Image, icc: bytes | None) -> Image.Image:
    """Mode L/RGB/CMYK/LAB 8-bit data described by ``icc`` (None: sRGB, or plain CMYK/Lab) -> RGB in sRGB."""
    if ImageCms is not None and (icc or colour.mode == "LAB"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc)) if icc else None
            if source is None:  # Lab pixels without a profile: CIE Lab, D50
                source = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
            space = source.profile.xcolor_space.strip().upper()
            if colour.mode == "L" and space == "RGB":
                colour = colour.convert("RGB")  # a colour profile on grey pixels: grey in that RGB space
            if _PROFILE_SPACE[colour.mode] == space:
                converted = ImageCms.profileToProfile(
                    colour,
                    source,
                    ImageCms.createProfile("sRGB"),  # a fresh one each time: littlecms profiles are not shared
                    renderingIntent=ImageCms.Intent(ImageCms.getDefaultIntent(source)),
                    outputMode="RGB",
                    flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
                )
                if converted is not None:  # None only for inPlace=True
                    return converted
            log.warning("ignoring a %s colour profile on %s pixels; taking them as sRGB", space, colour.mode)
        except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
            log.warning("ignoring an unusable colour profile (%s); taking the pixels as sRGB", exc)
    return colour if colour.mode == "RGB" else colour.convert("RGB")


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The ICC profile impasto embeds in what it writes: littlecms's sRGB, with a fixed date (same bytes each run).

    Empty when Pillow was built without littlecms.
    """
    if ImageCms is None:  # pragma: no cover
        return b""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)  # creation date; the profile ID (84:100) stays zero
    return bytes(data)


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
    w, h = size
    return img if img.size == (w, h) else img.resize((w, h), Image.Resampling.LANCZOS)


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
