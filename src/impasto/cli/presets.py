"""``impasto presets PHOTO -o sheet.png``: the 26 built-in styles on one contact sheet.

The output is checked (extension, folder writable, not already there) before any work; Ctrl-C stops before the next
tile and writes nothing (exit 130); a sheet the destination cannot take (disk full) is saved in the temporary folder
and one line says where (exit 1).
"""

from __future__ import annotations

import argparse
import sys

from .. import api
from ..devices import keep_freed_memory
from ..errors import Cancelled, ConfigError
from ..media import check_output_path, save_image, save_or_fallback
from .common import ProgressBar, add_device, add_overwrite, cancel_on_sigint


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", help="the photo to preview the styles on")
    p.add_argument("-o", "--output", default="presets.png", help="sheet file (default: presets.png)")
    p.add_argument("--tile", type=int, default=256, help="tile size in px, at least 32 (default: 256)")
    add_device(p)
    add_overwrite(p)


def run(args: argparse.Namespace) -> int:
    if args.tile < 32:
        raise ConfigError(f"--tile must be at least 32 px, got {args.tile}")
    dest = check_output_path(args.output, overwrite=args.overwrite)
    keep_freed_memory()
    bar = ProgressBar(args.quiet, unit="tile", desc="presets")
    try:
        with cancel_on_sigint("this tile") as token:
            sheet = api.preset_sheet(args.photo, tile=args.tile, device=args.device, callback=bar, cancel=token)
    except Cancelled:
        bar.close()
        print(f"impasto: stopped; no sheet written ({dest} is as it was)", file=sys.stderr)
        return 130
    finally:
        bar.close()
    save_or_fallback(lambda d: save_image(sheet, d), dest)
    print(dest)
    return 0
