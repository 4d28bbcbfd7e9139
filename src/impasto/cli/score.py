"""``impasto score OUT --content C --style S [--json]``: quality scores to rank results.

Content fidelity (SSIM, PSNR on luminance), style distance (Gram, Gaussian W2 in the painting network's style
layers, colour sliced Wasserstein) and, with ``--lpips [alex|vgg]``, LPIPS against the content; see
:mod:`impasto.score`. ``--json`` prints one JSON object; a PSNR of
identical images is infinite and is written as the string ``"inf"`` (JSON has no infinity).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from .. import api
from ..errors import ConfigError
from .common import add_device


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="the image to score (a painting or a stylised photo)")
    p.add_argument("--content", "-c", help="the content photo (SSIM and PSNR on luminance at the output's size)")
    p.add_argument("--style", "-s", help="the style image (Gram, W2 and colour distances)")
    p.add_argument("--network", "--model", dest="network", default=None,
                   help="feature network for the style distances: a registry name or a VGG/NIN .pth file "
                        "(default: the one 'impasto paint' uses)")  # fmt: skip
    p.add_argument(
        "--lpips", nargs="?", const="alex", default=None, choices=("alex", "vgg"), metavar="{alex,vgg}",
        help="also LPIPS against the content (AlexNet trunk unless 'vgg'), where its weights are installed",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    add_device(p)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def _table(scores: dict) -> str:
    rows: list[tuple[str, str, str]] = []
    for group in ("content", "style"):
        for name, value in (scores.get(group) or {}).items():
            text = "inf" if isinstance(value, float) and math.isinf(value) else f"{value:.6g}"
            rows.append((group, name, text))
    if scores.get("network"):
        rows.append(("style", "network", str(scores["network"])))
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    return "\n".join(f"{g:<{w1}}  {n:<{w2}}  {v}" for g, n, v in rows)


def run(args: argparse.Namespace) -> int:
    if args.content is None and args.style is None:
        raise ConfigError("give --content and/or --style to compare the output with (see 'impasto score --help')")
    scores = api.score(
        args.output, content=args.content, style=args.style, network=args.network, lpips=args.lpips,
        device=args.device,
    )  # fmt: skip
    for reason in (scores.get("skipped") or {}).values():
        print(reason, file=sys.stderr)
    if args.json:
        print(json.dumps(_jsonable(scores), sort_keys=False))
    else:
        print(_table(scores))
    return 0
