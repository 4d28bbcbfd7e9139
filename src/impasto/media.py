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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
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


# --- video: probe, decode, encode, frame folders -----------------------------------------------------------------
#
# Decoding and encoding go through imageio-ffmpeg's bundled ffmpeg (no system ffmpeg, no ffprobe). Frames are
# (H, W, 3) uint8 RGB numpy arrays. The frame rate is kept as a rational (ffmpeg's own ``30000/1001``, read from
# the showinfo filter), the frame count is checked after encoding, and the source's audio is muxed into the output
# and cut to the video's length, so a partial video's sound is as long as its frames.

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".gif")  # what impasto writes
VIDEO_INPUT_EXTENSIONS = (*VIDEO_EXTENSIONS, ".mkv", ".avi", ".m4v")  # what it reads (ffmpeg decodes them all)
FRAME_PATTERN = "frame_{:06d}.png"  # frame i (0-based) of a frame folder is FRAME_PATTERN.format(i + 1)
FRAME_RE = re.compile(r"^frame_(\d{6})\.png$")
DEFAULT_FPS = Fraction(25)  # a folder of frames has no frame rate of its own

# container -> (ffmpeg muxer, video codec, output pixel format, audio codecs it can take as they are, audio encoder)
_CONTAINERS: dict[str, tuple[str, str, str, tuple[str, ...], str | None]] = {
    ".mp4": ("mp4", "libx264", "yuv420p", ("aac", "mp3", "ac3", "opus"), "aac"),
    ".mov": ("mov", "libx264", "yuv420p", ("aac", "mp3", "ac3", "alac", "pcm_s16le"), "aac"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", ("opus", "vorbis"), "libopus"),
    ".gif": ("gif", "gif", "rgb8", (), None),  # no audio in a GIF
}
_CODEC_OPTIONS = {
    "libx264": ["-crf", "18", "-preset", "medium"],  # visually lossless on stylised frames; plays everywhere
    "libvpx-vp9": ["-crf", "30", "-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "4"],
    # one palette per frame (streams: no pass over the whole clip), error diffusion to hide banding
    "gif": ["-filter_complex", "split[a][b];[a]palettegen=stats_mode=single[p];[b][p]paletteuse=new=1"],
}


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found. ``size`` (W, H) as decoded (rotation applied); ``fps`` a Fraction
    (:data:`DEFAULT_FPS` for a folder unless the caller gives one); ``audio``: the audio codec's name, None when
    there is no audio track; ``files``: a folder's frame images in order (empty for a video file)."""

    path: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]
    duration: float
    audio: str | None = None
    files: tuple[Path, ...] = ()

    @property
    def is_folder(self) -> bool:
        return bool(self.files)


def ffmpeg_exe() -> str:
    """The ffmpeg binary inside the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _ffmpeg_text(args: Sequence[str]) -> tuple[int, str]:
    import subprocess

    p = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True)
    return p.returncode, p.stderr.decode("utf-8", errors="replace")


def _parse_fps(text: str) -> Fraction | None:
    m = re.search(r"config in time_base: \S+, frame_rate: (\d+)/(\d+)", text)
    if m and int(m.group(1)) > 0 and int(m.group(2)) > 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    m = re.search(r"Video: .*?, ([\d.]+) fps", text)
    if m and float(m.group(1)) > 0:
        return Fraction(m.group(1)).limit_denominator(1001)
    m = re.search(r"Video: .*?, ([\d.]+) tbr", text)
    return Fraction(m.group(1)).limit_denominator(1001) if m and float(m.group(1)) > 0 else None


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Frames in ``path``'s first video stream, by decoding it (imageio-ffmpeg's ``count_frames_and_secs``)."""
    import imageio_ffmpeg

    try:
        return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])
    except RuntimeError as exc:
        raise ImageError(f"cannot read {path} as a video: {str(exc).splitlines()[0]}") from None


def frame_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The still images directly inside ``folder`` (PNG, JPEG, ...), sorted by name: a folder of frames."""
    p = Path(folder)
    return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in STILL_EXTENSIONS)


def probe_video(path: str | os.PathLike[str], *, fps: Fraction | float | None = None) -> VideoInfo:
    """Frame count, frame rate, size, duration and audio of a video file or a folder of frames.

    ``fps`` is used for a folder (default :data:`DEFAULT_FPS`) and ignored for a file, which has its own. Raises
    ImageError for a missing or unreadable input, ConfigError for a folder without frames or an unknown extension.
    """
    p = Path(path)
    if p.is_dir():
        files = frame_files(p)
        if not files:
            raise ConfigError(f"no frames found in folder {p} (expected PNG or JPEG images, sorted by name)")
        from .imaging import load_image  # imaging imports this module, so not at the top

        first = load_image(files[0])
        rate = Fraction(fps).limit_denominator(1001) if fps else DEFAULT_FPS
        return VideoInfo(p, len(files), rate, first.size, float(len(files) / rate), None, tuple(files))
    if not p.exists():
        raise ImageError(f"video not found: {p}")
    if p.suffix.lower() not in VIDEO_INPUT_EXTENSIONS:
        raise ConfigError(
            f"unsupported video extension {p.suffix.lower() or '(none)'!r} in {p.name!r}; give a video "
            f"({', '.join(VIDEO_INPUT_EXTENSIONS)}) or a folder of frames"
        )
    code, text = _ffmpeg_text(["-i", str(p), "-map", "0:v:0", "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-"])
    header = text.split("Stream mapping:")[0]
    size_m = re.search(r"\bs:(\d+)x(\d+)\b", text)  # the decoded frame (after rotation), from showinfo
    if code != 0 or size_m is None:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"ffmpeg exit code {code}"
        raise ImageError(f"{p} is not a video impasto can read ({why})")
    audio_m = re.search(r"Stream #\d+:\d+\S*: Audio: (\w+)", header)
    dur_m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", header)
    duration = int(dur_m.group(1)) * 3600 + int(dur_m.group(2)) * 60 + float(dur_m.group(3)) if dur_m else 0.0
    rate = _parse_fps(text) or DEFAULT_FPS
    size = (int(size_m.group(1)), int(size_m.group(2)))
    return VideoInfo(p, count_video_frames(p), rate, size, duration, audio_m.group(1) if audio_m else None)


def read_video(info: VideoInfo, *, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """The frames of ``info`` in order, each (H, W, 3) uint8 RGB, resized (Lanczos) to ``size`` (W, H) if given.

    A folder's frames are loaded like any impasto input (EXIF orientation, colour profile -> sRGB); frames of
    another size than the first are resized to the first's (or to ``size``). A file is decoded by ffmpeg one
    frame at a time, every frame passed through as decoded (no frame dropped or repeated to a constant rate).
    """
    target = size or info.size
    if info.is_folder:
        from .imaging import load_image, resize

        for f in info.files:
            yield np.asarray(resize(load_image(f), target))
        return
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(info.path), output_params=["-fps_mode", "passthrough"])
    try:
        meta = next(reader)
        w, h = meta["size"]
        for raw in reader:
            arr = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
            if (w, h) != target:
                arr = np.asarray(Image.fromarray(arr).resize(target, Image.Resampling.LANCZOS))
            yield arr
    finally:
        reader.close()


def write_frame(path: str | os.PathLike[str], frame: np.ndarray, *, compress_level: int = 6) -> Path:
    """One (H, W, 3) uint8 frame to a PNG at ``path``, atomically. ``compress_level`` 1 is fast (work files)."""
    img = Image.fromarray(np.ascontiguousarray(frame))
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG", compress_level=compress_level))


def read_frame(path: str | os.PathLike[str]) -> np.ndarray:
    """A PNG frame written by :func:`write_frame` -> (H, W, 3) uint8; ImageError when it cannot be decoded."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read frame {path}: {exc}") from None


def numbered_frames(folder: str | os.PathLike[str]) -> dict[int, Path]:
    """The ``frame_NNNNNN.png`` files in ``folder``: 0-based index -> path."""
    p = Path(folder)
    if not p.is_dir():
        return {}
    out = {}
    for f in p.iterdir():
        m = FRAME_RE.match(f.name)
        if m and f.is_file():
            out[int(m.group(1)) - 1] = f
    return out


def check_video_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Validate a video output (mp4, mov, webm, gif) before the work, like :func:`check_output_path`."""
    return check_output_path(path, overwrite=overwrite, allowed=VIDEO_EXTENSIONS)


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """(W, H) rounded up to even sides, as yuv420p (H.264, VP9) needs."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def encode_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike[str],
    *,
    fps: Fraction | float,
    size: tuple[int, int],
    audio_from: VideoInfo | None = None,
    expect_frames: int | None = None,
) -> Path:
    """Encode (H, W, 3) uint8 frames of ``size`` (W, H) to ``path`` atomically; the container follows the extension.

    mp4 and mov: H.264 (CRF 18) yuv420p with AAC audio; webm: VP9 with Opus; gif: a palette per frame, no audio.
    Odd sides are padded to even by repeating the last row/column (yuv420p needs even sides; gif is not padded).
    ``audio_from``: a probed source whose audio track (if any) is muxed in -- copied where the container takes its
    codec, else re-encoded -- and cut to ``expect_frames`` frames' length. ``fps`` is passed to ffmpeg as a
    rational. The encoded file's frame count is checked (``expect_frames``, default: the frames given) before it is
    renamed into place; a mismatch raises ImageError and leaves ``path`` untouched.
    """
    import imageio_ffmpeg

    ext = Path(path).suffix.lower()
    if ext not in _CONTAINERS:
        raise ConfigError(f"unsupported video extension {ext!r}; use {', '.join(VIDEO_EXTENSIONS)}")
    muxer, codec, pix_fmt, copyable, audio_encoder = _CONTAINERS[ext]
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    w, h = size
    w2, h2 = (w, h) if ext == ".gif" else even_size(size)
    audio_path, audio_codec = None, None
    if audio_from is not None and audio_from.audio and audio_encoder is not None and not audio_from.is_folder:
        audio_path = str(audio_from.path)
        audio_codec = "copy" if audio_from.audio in copyable else audio_encoder
    params = ["-f", muxer]  # the temporary file's name ends in .part, so name the container
    params += _CODEC_OPTIONS.get(codec, [])
    if audio_path is not None and audio_codec == "libopus":
        params += ["-b:a", "128k"]
    if muxer in ("mp4", "mov"):
        params += ["-movflags", "+faststart"]
    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        if audio_path is not None and expect_frames is not None:
            # the audio ends with the last frame (a partial video has partial audio). Not -shortest: an audio
            # track a little shorter than the video would cut frames. Half a frame of slack keeps the last one.
            params.extend(["-t", f"{(expect_frames + 0.5) / rate:.6f}"])
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w2, h2), fps=rate, codec=codec, pix_fmt_out=pix_fmt, quality=None, macro_block_size=1,
            ffmpeg_log_level="error", audio_path=audio_path, audio_codec=audio_codec, output_params=list(params),
        )  # fmt: skip
        writer.send(None)
        try:
            for frame in frames:
                if frame.shape != (h, w, 3):
                    raise ImageError(f"frame {written + 1} is {frame.shape[1]}x{frame.shape[0]}, expected {w}x{h}")
                if (w2, h2) != (w, h):
                    frame = np.pad(frame, ((0, h2 - h), (0, w2 - w), (0, 0)), mode="edge")
                writer.send(np.ascontiguousarray(frame))
                written += 1
        finally:
            writer.close()
        if written == 0:
            raise ConfigError("no frames to write")
        got = count_video_frames(tmp)
        want = written if expect_frames is None else expect_frames
        if got != want:
            raise ImageError(f"encoding {Path(path).name} gave {got} frames instead of {want}")

    return atomic_write(path, write)
