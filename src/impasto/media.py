"""The one place that writes files: atomic writes, images, grids, GIF and MP4, and writability checks.

Every output impasto makes goes through :func:`atomic_write`: the bytes go to a temporary file beside the target
(created with mode 0666 so the process umask applies, exactly as for any file the user makes), are flushed and
fsynced, and the temporary file is renamed over the target; the folder is fsynced after the rename. An interrupted,
killed or failing run therefore never leaves a torn file where an output belongs: the target is either the old file
or the complete new one. Temporary files are named ``.NAME.XXXXXXXX.part`` and removed on any failure.

Nothing here changes process-wide state (no ``os.umask`` round-trip, no global settings).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import ConfigError, ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
STILL_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e != ".gif")
ANIMATION_EXTENSIONS = (".gif", ".mp4")
PART_SUFFIX = ".part"
# errnos that mean "this place cannot take the file" (as opposed to a bug): the caller may try elsewhere.
UNWRITABLE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.EFBIG)


# --- the atomic writer ------------------------------------------------------------------------------------------


def _open_temporary(target: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside ``target`` (O_EXCL, mode 0666 less the umask); returns (fd, path)."""
    folder = target.parent if str(target.parent) else Path(".")
    for _ in range(100):
        tmp = folder / f".{target.name}.{secrets.token_hex(4)}{PART_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], *, durable: bool = True) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, then rename it onto ``path``.

    ``write`` gets the path of an existing empty file and may write it by name (PIL, torch.save, ffmpeg). With
    ``durable`` (the default) the data and the rename are fsynced, so a power cut cannot leave an empty file
    either. On any failure (including KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    Returns ``path`` as a Path.
    """
    target = Path(path)
    fd, tmp = _open_temporary(target)
    os.close(fd)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        _fsync_folder(target.parent if str(target.parent) else Path("."))
    return target


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def stray_parts(folder: str | os.PathLike[str]) -> list[Path]:
    """Temporary files a killed writer left in ``folder`` (never at an output's own name)."""
    return sorted(Path(folder).glob(f".*{PART_SUFFIX}"))


# --- checks before the work -------------------------------------------------------------------------------------


MIN_FREE_BYTES = 256 * 1024  # a folder with less free space than this is full for any image impasto writes


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use in ``folder``'s file system (None where unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def check_writable(folder: str | os.PathLike[str], *, need_bytes: int = MIN_FREE_BYTES) -> Path:
    """Raise ImageError unless a file can be created in ``folder`` (tried for real, then removed) and its file
    system has ``need_bytes`` free.

    Called before a long run starts, so a read-only, missing or full folder is found before the work, not after.
    """
    p = Path(folder) if str(folder) else Path(".")
    if not p.is_dir():
        raise ConfigError(f"output folder {p} does not exist")
    try:
        fd, tmp = _open_temporary(p / "write-test")
    except OSError as exc:
        raise ImageError(f"cannot write to folder {p}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass
    free = free_bytes(p)
    if free is not None and free < need_bytes:
        raise ImageError(f"cannot write to folder {p}: only {free // 1024} KiB free on its disk")
    return p


def check_output_path(
    path: str | os.PathLike[str], *, overwrite: bool = False, allowed: tuple[str, ...] | None = None
) -> Path:
    """Validate where an output will go, before any work is done; returns it as a Path.

    Checks the extension (``allowed``, default: the image formats impasto writes), that the path is not a folder,
    that its folder exists and can be written to, and that no file is there unless ``overwrite``.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if allowed is not None and ext not in allowed:
        raise ConfigError(f"unsupported output extension {ext or '(none)'!r} in {p.name!r}; use {', '.join(allowed)}")
    if p.is_dir():
        raise ConfigError(f"output path {p} is a folder; give a file name such as {p / 'out.png'}")
    if not p.parent.exists():
        raise ConfigError(f"output folder {p.parent} does not exist")
    if p.exists() and not overwrite:
        raise ConfigError(f"{p} already exists; pass --overwrite to replace it")
    if allowed is None and ext not in IMAGE_EXTENSIONS:
        raise ConfigError(f"cannot tell the image format from {p.name!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    check_writable(p.parent)
    return p


def ensure_folder(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) if missing and check it can be written to; returns it."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what} {p} is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"cannot create {what} {p}: {exc.strerror or exc}") from None
    return check_writable(p)


def is_unwritable(exc: BaseException) -> bool:
    """True for an OSError that means the destination cannot take the file (full, read-only, gone)."""
    return isinstance(exc, OSError) and exc.errno in UNWRITABLE_ERRNOS


def fallback_folders(near: Sequence[str | os.PathLike[str] | None] = ()) -> list[Path]:
    """Where to put an output whose own folder failed: ``near`` (e.g. the checkpoint's folder), then the temp
    folder."""
    out = [Path(p) for p in near if p]
    out.append(Path(tempfile.gettempdir()))
    return out


class SavedElsewhere(ImageError):
    """The output could not be written where asked; ``path`` is where it was saved instead."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def save_or_fallback(
    save: Callable[[Path], Path], dest: Path, near: Sequence[str | os.PathLike[str] | None] = ()
) -> Path:
    """``save(dest)``; if the destination cannot take the file (disk full, read-only), save in the first
    fallback folder that can and raise :class:`SavedElsewhere` naming both places. Other errors propagate."""
    try:
        return save(dest)
    except OSError as exc:
        if not is_unwritable(exc):
            raise
        first = exc
    for folder in fallback_folders(near):
        other = folder / dest.name
        if other.exists():
            other = folder / f"{dest.stem}.{secrets.token_hex(3)}{dest.suffix}"
        try:
            saved = save(other)
        except OSError:
            continue
        raise SavedElsewhere(
            f"could not write {dest} ({first.strerror or first}); saved the result to {saved} instead", saved
        )
    raise ImageError(f"could not write {dest} ({first.strerror or first}), nor anywhere else") from None


# --- images -----------------------------------------------------------------------------------------------------


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> PIL RGB (values clamped, rounded)."""
    if x.dim() == 4:
        x = x[0]
    arr = (x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr)


def image_format(path: str | os.PathLike[str]) -> str:
    """PIL's format name for ``path``'s extension; ConfigError when there is none."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot tell the image format from {Path(path).name!r}")
    return fmt


def save_image(
    img: Image.Image | torch.Tensor, path: str | os.PathLike[str], *, icc_profile: bytes | None = None
) -> Path:
    """Write ``img`` (PIL, or a tensor in [0, 1]) to ``path`` atomically; the format follows the extension.

    ``icc_profile``: embedded where the format can carry one (PNG, JPEG, TIFF, WebP). By default the image's own
    (``img.info["icc_profile"]``) if it has one, else an sRGB profile (:func:`impasto.imaging.srgb_profile`) for
    RGB, RGBA and palette images: impasto converts every input to sRGB when it loads it
    (:func:`impasto.imaging.normalise`), so its outputs are sRGB and say so, and colour-managed viewers show
    exactly what was computed. ``icc_profile=b""`` embeds none. JPEGs are written at quality 95.
    """
    pil = tensor_to_pil(img) if isinstance(img, torch.Tensor) else img
    fmt = image_format(path)
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options["quality"] = 95
        if pil.mode not in ("RGB", "L", "CMYK"):
            pil = pil.convert("RGB")
    icc = icc_profile if icc_profile is not None else pil.info.get("icc_profile")
    if icc is None and pil.mode in ("RGB", "RGBA", "P"):
        from .imaging import srgb_profile  # imaging imports this module, so not at the top

        icc = srgb_profile()
    if icc and fmt in ("PNG", "JPEG", "TIFF", "WEBP"):
        options["icc_profile"] = icc
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt, **options))


def make_grid(images: Sequence[Image.Image], ncol: int, padding: int = 2, fill: int = 255) -> Image.Image:
    """Tile same-sized RGB images row by row, ``ncol`` per row, ``padding`` pixels of ``fill`` between."""
    arrays = [np.asarray(im.convert("RGB")) for im in images]
    if not arrays:
        raise ConfigError("no images to put in a grid")
    h, w, _ = arrays[0].shape
    n = len(arrays)
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    canvas = np.full((nrow * h + (nrow + 1) * padding, ncol * w + (ncol + 1) * padding, 3), fill, np.uint8)
    for i, arr in enumerate(arrays):
        r, c = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        canvas[y : y + h, x : x + w] = arr
    return Image.fromarray(canvas)


def slug(text: str) -> str:
    """``"Golden retriever!"`` -> ``"golden-retriever"`` (safe in a file name)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# --- animations -------------------------------------------------------------------------------------------------


def _sequence(frames: Sequence[Image.Image], bounce: bool) -> list[Image.Image]:
    seq = list(frames)
    if bounce and len(seq) > 2:
        seq = seq + seq[-2:0:-1]
    if not seq:
        raise ConfigError("no frames to write")
    return seq


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
    seq = _sequence(frames, bounce)
    kwargs: dict[str, object] = {"save_all": True, "append_images": seq[1:], "duration": int(duration_ms)}
    kwargs["disposal"] = 1
    if loop:
        kwargs["loop"] = 0
    return atomic_write(path, lambda tmp: seq[0].save(tmp, format="GIF", **kwargs))


def save_mp4(
    frames: Sequence[Image.Image], path: str | os.PathLike[str], *, fps: float = 10.0, bounce: bool = False
) -> Path:
    """H.264 MP4 (yuv420p, plays everywhere) via imageio-ffmpeg's bundled ffmpeg; odd sizes are padded by one
    pixel."""
    import imageio_ffmpeg

    seq = _sequence(frames, bounce)
    w, h = seq[0].size
    w2, h2 = w + w % 2, h + h % 2  # yuv420p needs even sides

    def write(tmp: Path) -> None:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w2, h2), fps=fps, codec="libx264", quality=8, macro_block_size=1,
            output_params=["-f", "mp4"],  # the temporary name does not end in .mp4
        )  # fmt: skip
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
