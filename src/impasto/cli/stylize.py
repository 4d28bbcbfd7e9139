"""``impasto stylize``: fast style transfer with Magenta's networks (offline, any size, folders)."""

from __future__ import annotations

import argparse
import sys

from .. import api
from ..devices import keep_freed_memory
from ..errors import ConfigError
from ..events import Event, Preview
from ..imaging import expand_inputs
from ..media import save_image
from .common import ProgressBar, add_device, add_overwrite, float_list, plan_outputs


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", nargs="+", help="photo(s) or folder(s) of photos")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--style", action="append", metavar="IMAGE", help="style image (repeat to blend several)")
    src.add_argument("--preset", metavar="N[:w],...", help="built-in style 0-25, or a blend like 3:0.5,12:0.5")
    p.add_argument("--style-weights", type=float_list, metavar="W,W", help="blend weights, one per --style")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (one content image)")
    p.add_argument("--out-dir", metavar="DIR", help="folder for outputs named CONTENT_stylized.png")
    p.add_argument("--size", type=int, metavar="PX", help="longest side of the output (default: the input's)")
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="0..1; with --style it moves the style vector toward the photo's own, with --preset it mixes pixels",
    )
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours (luminance transfer)")
    add_device(p)
    add_overwrite(p)


def run(args: argparse.Namespace) -> int:
    if args.style_weights is not None and not args.style:
        raise ConfigError("--style-weights needs --style images")
    if not 0.0 <= args.strength <= 1.0:
        raise ConfigError(f"--strength must be between 0 and 1, got {args.strength}")
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16 px, got {args.size}")
    inputs = expand_inputs(args.content)
    keep_freed_memory()  # this process is about to render images: reuse big blocks (see devices)
    outputs = plan_outputs(inputs, args.output, args.out_dir, "stylized", args.overwrite)
    bar = ProgressBar(args.quiet or len(inputs) == 1, unit="img")

    def on_event(event: Event) -> None:
        if isinstance(event, Preview):
            dest = outputs[event.step - 1]
            save_image(event.image, dest)
            print(dest, file=sys.stdout, flush=True)
        bar(event)

    try:
        api.stylize(
            inputs,
            styles=args.style or (),
            style_weights=args.style_weights,
            preset=args.preset,
            size=args.size,
            strength=args.strength,
            preserve_color=args.preserve_color,
            device=args.device,
            callback=on_event,
        )
    finally:
        bar.close()
    return 0
