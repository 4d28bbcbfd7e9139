"""``impasto presets PHOTO -o sheet.png``: the 26 built-in styles on one contact sheet."""

from __future__ import annotations

import argparse

from .. import api
from ..devices import keep_freed_memory
from ..imaging import load_image
from ..media import check_output_path, save_image
from .common import add_device, add_overwrite


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", help="the photo to preview the styles on")
    p.add_argument("-o", "--output", default="presets.png", help="sheet file (default: presets.png)")
    p.add_argument("--tile", type=int, default=256, help="tile size in px (default: 256)")
    add_device(p)
    add_overwrite(p)


def run(args: argparse.Namespace) -> int:
    dest = check_output_path(args.output, overwrite=args.overwrite)
    keep_freed_memory()
    sheet = api.preset_sheet(load_image(args.photo), tile=args.tile, device=args.device)
    save_image(sheet, dest)
    print(dest)
    return 0
