"""``impasto interpolate --from NAME --to NAME [--seed-from A --seed-to B] --steps 10 -o out.gif|out.mp4|grid.png``.

The output is checked (extension, folder, writable, not there unless --overwrite) before the work; it is written
once, atomically, at the end, so a kill leaves nothing at its name, and Ctrl-C writes the frames made so far.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..errors import Cancelled, ConfigError
from ..events import Event, Started
from ..media import (
    ANIMATION_EXTENSIONS,
    STILL_EXTENSIONS,
    SavedElsewhere,
    check_output_path,
    save_animation,
    save_image,
    save_or_fallback,
)
from .common import ProgressBar, cancel_on_sigint
from .generate import add_model_options, check_batch_size, model_source


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_class", required=True, metavar="NAME|N", help="start class")
    p.add_argument("--to", dest="to_class", required=True, metavar="NAME|N", help="end class")
    p.add_argument("--seed-from", type=int, help="noise seed at the start, 0 or more (default: fresh, printed)")
    p.add_argument("--seed-to", type=int, help="noise seed at the end (default: the same as --seed-from)")
    p.add_argument("--steps", type=int, default=10, help="frames including both ends, at least 2 (default: 10)")
    p.add_argument("--samples", type=int, default=1, help="parallel interpolations side by side (default: 1)")
    p.add_argument("--truncation", type=float, default=0.4, help="truncation in (0, 1] (default: 0.4)")
    p.add_argument("--slerp", action="store_true", help="spherical instead of linear interpolation")
    p.add_argument("-o", "--output", required=True, help="out.gif or out.mp4 (animation) or grid.png (still)")
    p.add_argument("--fps", type=float, default=10.0, help="animation frames per second (default: 10)")
    p.add_argument("--bounce", action="store_true", help="play forwards then backwards")
    p.add_argument("--no-loop", action="store_true", help="GIF plays once instead of looping")
    add_model_options(p)


def run(args: argparse.Namespace) -> int:
    for flag, value in (("--seed-from", args.seed_from), ("--seed-to", args.seed_to)):
        if value is not None and value < 0:
            raise ConfigError(f"{flag} must be 0 or more (leave it out for a fresh one); got {value}")
    if not args.fps > 0:
        raise ConfigError(f"--fps must be positive; got {args.fps:g}")
    check_batch_size(args.batch_size)
    a, b = api.resolve_class(args.from_class), api.resolve_class(args.to_class)
    source = model_source(args)
    dest = check_output_path(args.output, overwrite=args.overwrite, allowed=ANIMATION_EXTENSIONS + STILL_EXTENSIONS)
    seed_from = args.seed_from if args.seed_from is not None else api.new_seed()
    bar = ProgressBar(args.quiet, unit="batch", desc="interpolate")

    def on_event(event: Event) -> None:
        if isinstance(event, Started) and not args.quiet:  # the options were valid and the model loaded
            for word in (args.from_class, args.to_class):
                line = api.explain_class(word)
                if line:
                    print(f"impasto: {line}", file=sys.stderr)
            if args.seed_from is None:
                print(f"seed-from {seed_from}", flush=True)
        bar(event)

    try:
        with cancel_on_sigint("this batch") as token:
            result = api.interpolate(
                a, b, seed_from=seed_from, seed_to=args.seed_to, steps=args.steps, samples=args.samples,
                truncation=args.truncation, slerp=args.slerp, model=source, device=args.device,
                precision=args.precision, bn_stats=args.bn_stats, batch_size=args.batch_size, callback=on_event,
                cancel=token,
            )  # fmt: skip
    except Cancelled as exc:  # Ctrl-C: write the frames made so far, then exit 130
        bar.close()
        made = len(exc.partial.ts) if exc.partial is not None else 0
        print(f"impasto: stopped: {made} of {args.steps} frames made", file=sys.stderr)
        if made:
            try:
                print(_write(exc.partial, dest, args))
            except SavedElsewhere as moved:
                print(f"impasto: {moved}", file=sys.stderr)
        raise
    finally:
        bar.close()
    print(_write(result, dest, args))
    return 0


def _write(result: Any, dest: Path, args: argparse.Namespace) -> Path:  # noqa: ANN401 - api.InterpolateResult
    """An animation (a frame = the samples side by side) or a grid (a row per sample, a column per step), saved
    elsewhere with one line (SavedElsewhere) when ``dest`` cannot take it."""
    if dest.suffix.lower() in ANIMATION_EXTENSIONS:
        pictures = result.pictures()

        def save(p: Path) -> Path:
            return save_animation(pictures, p, fps=args.fps, bounce=args.bounce, loop=not args.no_loop)
    else:
        picture = result.grid()

        def save(p: Path) -> Path:
            return save_image(picture, p)

    return save_or_fallback(save, dest)
