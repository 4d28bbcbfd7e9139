"""``impasto video IN -o OUT``: stylise a video or a folder of frames with any fast method.

IN and OUT are each a video file (mp4, mov, webm, gif; IN also mkv, avi, m4v) or a folder of frames (PNG/JPEG,
sorted by name; an output folder gets ``frame_000001.png`` ...). The frame rate, the frame count and the audio track
are kept. Frames are kept in ``OUT.frames/`` as they are made: Ctrl-C encodes those into a playable partial video
(audio cut to match) and exits 130; after Ctrl-C or a kill, ``--resume`` renders only the missing frames.

With ``--workers N`` or ``--ray [ADDRESS]`` the frames are split into chunks of ``--chunk-frames`` (default: about
four per worker), one task each; the chunk files go to ``OUT.chunks/`` (on a Ray cluster: a folder every node can
read and write) and are stitched in order at the end, frame rate and audio kept; ``--resume`` skips the finished
chunks.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from .. import api
from ..devices import keep_freed_memory
from ..errors import Cancelled, ConfigError
from .common import (
    ProgressBar,
    add_device,
    add_overwrite,
    add_worker_options,
    cancel_on_sigint,
    float_list,
    open_executor_from_args,
)

DEFAULT_ALPHA = 0.7  # impasto.fast.video.DEFAULT_ALPHA (not imported: the CLI sees only the api)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="video file (mp4, mov, webm, gif, mkv, ...) or folder of frames")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="video file (mp4, mov, webm, gif) or folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--style", action="append", metavar="IMAGE", help="style image (repeat to blend several)")
    src.add_argument("--preset", metavar="N[:w],...", help="built-in Magenta style 0-25, or a blend like 3:0.5,12:0.5")
    p.add_argument("--style-weights", type=float_list, metavar="W,W", help="blend weights, one per --style")
    p.add_argument(
        "--method",
        choices=("magenta", "linear"),
        help="magenta (offline default) or linear (Li et al. 2019; needs its weights); default: as for stylize",
    )
    p.add_argument("--layer", choices=("r41", "r31"), default="r41", help="linear method's layer (default: r41)")
    p.add_argument("--size", type=int, metavar="PX", help="longest side of the stylised frames (default: the input's)")
    p.add_argument("--strength", type=float, default=1.0, help="0..1, as for stylize (default: 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep each frame's colours (luminance transfer)")
    p.add_argument(
        "--stabilize",
        action="store_true",
        help="reduce flicker: blend each frame with the previous result warped by optical flow where the content is "
        "consistent (needs OpenCV: pip install 'impasto[video]')",
    )
    p.add_argument(
        "--stabilize-alpha",
        type=float,
        metavar="A",
        help=f"0..1 (below 1): how much of the previous result to keep where consistent (default: {DEFAULT_ALPHA})",
    )
    p.add_argument("--fps", type=float, help="frame rate of a folder of frames (default: 25; a video keeps its own)")
    p.add_argument("--keep-frames", action="store_true", help="keep the stylised frames in OUT.frames/ after encoding")
    p.add_argument(
        "--resume",
        action="store_true",
        help="after Ctrl-C, a crash or a kill: reuse the frames in OUT.frames/ (same settings) and make the rest",
    )
    p.add_argument(
        "--chunk-frames", type=int, metavar="N",
        help="with --workers/--ray: frames per task (default: about four chunks per worker, 8 to 240 frames)",
    )  # fmt: skip
    add_worker_options(p)
    add_device(p)
    add_overwrite(p)


def _check_options(args: argparse.Namespace) -> None:
    if args.style_weights is not None and not args.style:
        raise ConfigError("--style-weights needs --style images")
    if not 0.0 <= args.strength <= 1.0:
        raise ConfigError(f"--strength must be between 0 and 1, got {args.strength}")
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16 px, got {args.size}")
    if args.stabilize_alpha is not None and not args.stabilize:
        raise ConfigError("--stabilize-alpha needs --stabilize")
    if args.stabilize_alpha is not None and not 0.0 <= args.stabilize_alpha < 1.0:
        raise ConfigError(f"--stabilize-alpha must be at least 0 and below 1, got {args.stabilize_alpha}")
    if args.fps is not None and not args.fps > 0:
        raise ConfigError(f"--fps must be above 0, got {args.fps}")
    if args.chunk_frames is not None and args.workers is None and args.ray is None:
        raise ConfigError("--chunk-frames needs --workers N or --ray")
    if args.chunk_frames is not None and args.chunk_frames < 1:
        raise ConfigError(f"--chunk-frames must be at least 1, got {args.chunk_frames}")


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    bar = ProgressBar(args.quiet, unit="frame", desc="video", announce="video")
    keep_freed_memory()  # this process renders many same-size frames: reuse big blocks (see devices)
    try:
        with cancel_on_sigint("this frame") as token, contextlib.ExitStack() as stack:
            executor = None
            if args.workers is not None or args.ray is not None:
                executor = stack.enter_context(open_executor_from_args(args))
            result = api.video(
                args.input, args.output, styles=args.style or (), style_weights=args.style_weights,
                preset=args.preset, method=args.method, layer=args.layer, size=args.size, strength=args.strength,
                preserve_color=args.preserve_color, stabilize=args.stabilize, stabilize_alpha=args.stabilize_alpha,
                fps=args.fps, resume=args.resume, overwrite=args.overwrite, keep_frames=args.keep_frames,
                device=args.device, callback=bar, cancel=token, executor=executor, chunk_frames=args.chunk_frames,
            )  # fmt: skip
    except Cancelled as exc:
        bar.close()
        part = exc.partial
        total = getattr(part, "total", 0)
        done = getattr(part, "frames", 0)
        if not done:
            print(f"impasto: stopped before the first frame was finished; nothing written to {args.output}",
                  file=sys.stderr)  # fmt: skip
        elif getattr(part, "info", {}).get("frames_folder") == str(args.output):
            print(f"impasto: stopped; {done} of {total} frames written to {args.output}; run again with --resume to "
                  "make the rest", file=sys.stderr)  # fmt: skip
        else:
            print(f"impasto: stopped; partial video of {done} of {total} frames written to {args.output}; run again "
                  "with --resume to make the rest", file=sys.stderr)  # fmt: skip
        return 130
    finally:
        bar.close()
    if not args.quiet:
        for note in result.info.get("notes", ()):
            print(f"impasto: note: {note}", file=sys.stderr)
    print(result.output)
    return 0
