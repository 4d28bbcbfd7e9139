"""``impasto interpolate --from NAME --to NAME [--seed-from A --seed-to B] --steps 10 -o out.gif|out.mp4|grid.png``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .. import api
from ..errors import Cancelled, ConfigError
from ..media import ANIMATION_EXTENSIONS, STILL_EXTENSIONS, check_output_path, save_animation, save_image
from .common import ProgressBar, cancel_on_sigint
from .generate import add_model_options, model_source


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_class", required=True, metavar="NAME|N", help="start class")
    p.add_argument("--to", dest="to_class", required=True, metavar="NAME|N", help="end class")
    p.add_argument("--seed-from", type=int, help="noise seed at the start (default: fresh, printed)")
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
    from ..gan.classes import resolve
    a, b = resolve(args.from_class), resolve(args.to_class)
    dest = check_output_path(args.output, overwrite=args.overwrite, allowed=ANIMATION_EXTENSIONS + STILL_EXTENSIONS)
    if not args.fps > 0:
        raise ConfigError(f"--fps must be positive; got {args.fps:g}")
    bar = ProgressBar(args.quiet, unit="batch", desc="interpolate")
    try:
        with cancel_on_sigint("this batch") as token:
            result = api.interpolate(
                a, b, seed_from=args.seed_from, seed_to=args.seed_to, steps=args.steps, samples=args.samples,
                truncation=args.truncation, slerp=args.slerp, model=model_source(args), device=args.device,
                precision=args.precision, bn_stats=args.bn_stats, batch_size=args.batch_size, callback=bar,
                cancel=token,
            )  # fmt: skip
    except Cancelled as exc:  # Ctrl-C: write the frames made so far, then exit 130
        if exc.partial is not None and exc.partial.frames.shape[0]:
            _write(exc.partial.frames, dest, args)
            print(dest)
        raise
    finally:
        bar.close()
    _write(result.frames, dest, args)
    if not args.quiet and args.seed_from is None:
        print(f"seed-from {result.seed_from}")
    print(dest)
    return 0


def _write(frames: torch.Tensor, dest: Path, args: argparse.Namespace) -> None:
    """frames (steps, samples, 3, H, W) in [-1, 1] -> an animation (a frame = the samples side by side) or a
    grid (a row per sample, a column per step)."""
    from ..gan.export import grid_of

    if dest.suffix.lower() in ANIMATION_EXTENSIONS:
        pictures = [grid_of(f, ncol=f.shape[0]) for f in frames]  # one frame: the samples side by side
        save_animation(pictures, dest, fps=args.fps, bounce=args.bounce, loop=not args.no_loop)
    else:
        grid = frames.transpose(0, 1).reshape(-1, *frames.shape[2:])  # (samples*steps, 3, H, W): a row per sample
        save_image(grid_of(torch.as_tensor(grid), ncol=frames.shape[0]), dest)
