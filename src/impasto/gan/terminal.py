"""Show BigGAN samples in the terminal as sixel graphics: ``display_in_terminal``, in pure Python and NumPy.

pytorch-pretrained-BigGAN's ``display_in_terminal(obj)`` pastes a batch side by side and prints it through
libsixel. impasto's takes the same inputs (a ``(N, 3, H, W)`` output in [-1, 1] as a tensor or array, a PIL
image, or a list of them), encodes the sixel stream itself (PIL quantises to at most 256 colours; each band of six
rows is written colour by colour, run-length coded) and writes it to standard output. Where the terminal cannot
show sixel graphics it writes one line saying so to standard error instead and returns False.

A terminal counts as sixel-capable when ``IMPASTO_SIXEL`` is ``1`` (``0`` turns display off), when ``TERM`` or
``TERM_PROGRAM`` names one known to draw sixels (mlterm, yaft, foot, contour, WezTerm, mintty, iTerm2, or any
``TERM`` containing ``sixel``), or -- with standard input and output both a terminal, on POSIX -- when it answers
the primary device attributes query (``ESC [ c``) within 0.2 s with attribute 4 (sixel graphics).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
from PIL import Image

__all__ = ["display_in_terminal", "encode_sixel", "image_to_sixel", "sixel_supported"]

SIXEL_TERMS = ("sixel", "mlterm", "yaft", "foot", "contour", "wezterm")
SIXEL_PROGRAMS = ("wezterm", "mintty", "iterm.app", "contour")
QUERY_TIMEOUT_S = 0.2
NO_SIXEL_MESSAGE = (
    "impasto: this terminal cannot show images (no sixel graphics; set IMPASTO_SIXEL=1 to force them); "
    "save them instead with save_as_images(output, 'sample')"
)

_RUN = re.compile(r"(.)\1{3,}")
_da1_answer: bool | None = None  # the terminal's answer to the device attributes query, asked once per process


def encode_sixel(indices: np.ndarray, palette: np.ndarray) -> str:
    """A sixel DCS string drawing ``indices`` (H, W) of colour numbers with ``palette`` (K, 3) uint8 RGB rows.

    Pixel aspect 1:1 with raster attributes ``"1;1;W;H``; only colours that occur are defined (``#n;2;r;g;b``,
    percentages). Each band of six rows draws one pass per colour present (``$`` returns to the band's start,
    ``-`` moves to the next band); runs of four or more equal sixels are written ``!count`` + sixel. Pixels a pass
    does not paint keep what earlier passes drew (P2 = 1).
    """
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.size == 0:
        raise ValueError(f"indices must be a non-empty (H, W) array; got shape {idx.shape}")
    pal = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    if idx.min() < 0 or idx.max() >= len(pal):
        raise ValueError(f"colour numbers must be in 0..{len(pal) - 1}")
    idx = idx.astype(np.int64)
    h, w = idx.shape
    used = np.unique(idx)
    out = ["\x1bP0;1;0q", f'"1;1;{w};{h}']
    for c in used:
        r, g, b = (int(round(v * 100 / 255)) for v in pal[c])
        out.append(f"#{c};2;{r};{g};{b}")
    weights = (1 << np.arange(6, dtype=np.int64))[:, None]
    for top in range(0, h, 6):
        band = idx[top : top + 6]
        if band.shape[0] < 6:
            band = np.vstack([band, np.full((6 - band.shape[0], w), -1, dtype=np.int64)])
        colours = np.unique(band[band >= 0])
        passes = []
        for c in colours:
            bits = ((band == c) * weights).sum(axis=0)
            row = (bits + 63).astype(np.uint8).tobytes().decode("ascii").rstrip("?")
            row = _RUN.sub(lambda m: f"!{len(m.group(0))}{m.group(1)}", row)
            passes.append(f"#{c}{row}")
        out.append("$".join(passes) + "-")
    out.append("\x1b\\")
    return "".join(out)


def image_to_sixel(image: Image.Image, colors: int = 256) -> str:
    """``image`` as a sixel string, quantised by PIL to at most ``colors`` (2..256) colours."""
    if not 2 <= colors <= 256:
        raise ValueError(f"colors must be in 2..256; got {colors}")
    rgb = image.convert("RGB")
    quantized = rgb.quantize(colors=colors)
    palette = np.asarray(quantized.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    return encode_sixel(np.asarray(quantized), palette)


def _to_images(obj: Any) -> list[Image.Image]:
    """PIL images from a PIL image, a list of them, or a (N, C, H, W) / (C, H, W) output in [-1, 1]."""
    if isinstance(obj, Image.Image):
        return [obj]
    if isinstance(obj, Sequence) and obj and all(isinstance(o, Image.Image) for o in obj):
        return list(obj)
    if hasattr(obj, "detach"):  # a torch tensor
        obj = obj.detach().float().cpu().numpy()
    arr = np.asarray(obj)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise ValueError(
            f"display_in_terminal takes a PIL image, a list of them or a (N, 3, H, W) array; got shape {arr.shape}"
        )
    pixels = np.clip((arr.transpose(0, 2, 3, 1) + 1.0) / 2.0 * 256.0, 0, 255).astype(np.uint8)
    return [Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p) for p in pixels]


def _side_by_side(images: list[Image.Image]) -> Image.Image:
    width = sum(im.width for im in images)
    height = max(im.height for im in images)
    canvas = Image.new("RGB", (width, height))
    x = 0
    for im in images:
        canvas.paste(im.convert("RGB"), (x, 0))
        x += im.width
    return canvas


def _query_da1(timeout: float = QUERY_TIMEOUT_S) -> bool:
    """Ask the terminal on stdin/stdout for its primary device attributes; True if they include 4 (sixel)."""
    try:
        import select
        import termios
        import tty
    except ImportError:  # not POSIX
        return False
    try:
        fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
        if not (os.isatty(fd_in) and os.isatty(fd_out)):
            return False
        saved = termios.tcgetattr(fd_in)
    except (OSError, ValueError, AttributeError, termios.error):
        return False
    answer = b""
    try:
        tty.setcbreak(fd_in, termios.TCSANOW)
        sys.stdout.flush()
        os.write(fd_out, b"\x1b[c")
        while not answer.endswith(b"c") and len(answer) < 128:
            ready, _, _ = select.select([fd_in], [], [], timeout)
            if not ready:
                break
            answer += os.read(fd_in, 64)
    except (OSError, termios.error):
        return False
    finally:
        try:
            termios.tcsetattr(fd_in, termios.TCSANOW, saved)
        except termios.error:
            pass
    return da1_has_sixel(answer)


def da1_has_sixel(answer: bytes) -> bool:
    """Whether a primary device attributes answer (``ESC [ ? 62 ; 4 ; 22 c``) lists attribute 4, sixel graphics."""
    match = re.search(rb"\x1b\[\?([\d;]*)c", answer)
    return match is not None and b"4" in match.group(1).split(b";")


def sixel_supported(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: standard output) is a terminal that draws sixel graphics (see module doc)."""
    global _da1_answer
    force = os.environ.get("IMPASTO_SIXEL", "").strip().lower()
    if force in ("1", "yes", "true", "on"):
        return True
    if force in ("0", "no", "false", "off"):
        return False
    stream = sys.stdout if stream is None else stream
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    term = os.environ.get("TERM", "").lower()
    program = os.environ.get("TERM_PROGRAM", "").lower()
    if term == "dumb":
        return False
    if any(name in term for name in SIXEL_TERMS) or program in SIXEL_PROGRAMS:
        return True
    if stream is not sys.stdout:
        return False
    if _da1_answer is None:
        _da1_answer = _query_da1()
    return _da1_answer


def display_in_terminal(obj: Any, *, colors: int = 256, stream: IO[str] | None = None) -> bool:
    """Reference-compatible: show ``obj`` in the terminal as one sixel image, the batch side by side.

    ``obj`` is a BigGAN output (``(N, 3, H, W)`` in [-1, 1], tensor or array), a PIL image or a list of them.
    Writes the sixel stream and a newline to ``stream`` (default standard output) and returns True; where the
    terminal cannot show sixels (:func:`sixel_supported`), writes one line saying so to standard error and returns
    False.
    """
    images = _to_images(obj)
    out = sys.stdout if stream is None else stream
    if not sixel_supported(out):
        sys.stderr.write(NO_SIXEL_MESSAGE + "\n")
        sys.stderr.flush()
        return False
    out.write(image_to_sixel(_side_by_side(images), colors=colors) + "\n")
    out.flush()
    return True
