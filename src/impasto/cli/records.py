"""A painting's record beside it: ``OUT.json`` (its file name + ``.json``) with the settings and quality scores.

``impasto paint`` writes it after the image; ``impasto sweep`` writes one per entry (``<settings>.png.json``). The
scores are ``impasto score OUT --content C --style S``'s (see :func:`impasto.api.paint`, ``score=True``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..media import is_unwritable, write_text


def record_path(output: Path) -> Path:
    """``out.png`` -> ``out.png.json`` (like the checkpoint's ``out.png.ckpt``)."""
    return output.with_name(output.name + ".json")


def score_line(scores: dict | None) -> str:
    """``SSIM 0.512, PSNR 14.2 dB, Gram 1.2e+03, W2 4.5, colour 0.031`` from a nested scores dict."""
    content, style = (scores or {}).get("content") or {}, (scores or {}).get("style") or {}
    parts = []
    if "ssim" in content:
        parts.append(f"SSIM {content['ssim']:.3f}")
    if "psnr" in content:
        psnr = content["psnr"]
        parts.append("PSNR inf" if isinstance(psnr, float) and math.isinf(psnr) else f"PSNR {psnr:.2f} dB")
    for key, label in (("gram", "Gram"), ("w2", "W2"), ("color_swd", "colour")):
        if key in style:
            parts.append(f"{label} {style[key]:.4g}")
    return ", ".join(parts)


def write_paint_record(result: Any, saved: Path, *, quiet: bool) -> Path | None:  # noqa: ANN401 - a PaintResult
    """Write ``saved``'s record (settings + scores) beside it and print the scores in one line on stderr (not when
    ``quiet``). A record that cannot be written (disk full) is skipped with one line: the image is what matters."""
    path = record_path(saved)
    try:
        write_text(path, json.dumps(api.paint_record(result, saved.name), indent=1) + "\n")
    except OSError as exc:
        if not is_unwritable(exc):
            raise
        print(f"impasto: could not write {path} ({exc.strerror}); the painting is saved", file=sys.stderr)
        path = None  # type: ignore[assignment]
    if not quiet:
        scores = result.info.get("scores")
        if scores:
            print(f"impasto paint: scores: {score_line(scores)}", file=sys.stderr)
        elif result.info.get("scores_skipped"):
            print(f"impasto paint: {result.info['scores_skipped']}", file=sys.stderr)
    return path
