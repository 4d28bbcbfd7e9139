"""``impasto stylize``: fast style transfer (Magenta's networks offline, or learned linear transfer), any size, folders.

``--method magenta`` (the offline default) or ``--method linear`` (Li et al., CVPR 2019; ``--layer r41|r31``, needs
``impasto models download linear.r41`` or ``models import``). With no ``--method``, ``$IMPASTO_STYLIZE_METHOD``
decides when set, else linear once its weights are installed, else magenta.

A folder is streamed: each photo is read, rendered, written and forgotten before the next, so any number of photos
needs the memory of one. Every output is written atomically (a killed run leaves only ``.NAME.XXXX.part``
temporaries, never a torn image at an output's name). Ctrl-C stops after the image in hand: the finished files are
kept, one line says how many were written, and the exit code is 130. ``--resume`` then skips the outputs that exist
as complete images and makes the rest.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .. import api
from ..devices import keep_freed_memory
from ..errors import Cancelled, ConfigError, ImageError
from ..imaging import expand_inputs, load_image
from ..media import SavedElsewhere, save_image, save_or_fallback, stray_parts
from .common import (
    ProgressBar,
    add_device,
    add_overwrite,
    add_worker_options,
    cancel_on_sigint,
    float_list,
    open_executor_from_args,
    plan_outputs,
)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", nargs="+", help="photo(s) or folder(s) of photos")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--style", action="append", metavar="IMAGE", help="style image (repeat to blend several)")
    src.add_argument("--preset", metavar="N[:w],...", help="built-in style 0-25, or a blend like 3:0.5,12:0.5")
    p.add_argument("--style-weights", type=float_list, metavar="W,W", help="blend weights, one per --style")
    p.add_argument(
        "--method",
        choices=("magenta", "linear"),
        help="magenta (offline) or linear (Li et al. 2019, needs linear.r41/r31 installed); default: "
        "$IMPASTO_STYLIZE_METHOD, else linear once installed, else magenta",
    )
    p.add_argument(
        "--layer",
        choices=("r41", "r31"),
        default="r41",
        help="--method linear: transform relu4_1 (stronger style, default) or relu3_1 (finer, faster) features",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="output file (one content image)")
    p.add_argument("--out-dir", metavar="DIR", help="folder for outputs named CONTENT_stylized.png (created if new)")
    p.add_argument("--size", type=int, metavar="PX", help="longest side of the output (default: the input's)")
    p.add_argument(
        "--working-size",
        default=str(api.DEFAULT_WORKING_SIZE),
        metavar="PX|native",
        help="stroke size: the longest side the network paints at (default %(default)s); a larger output is "
        "upsampled from it guided by the photo, so strokes keep their look at any size (smaller: bigger strokes); "
        "'native' paints at the output size (fine, pin-sized strokes on big photos; tiled, any size)",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="0..1; magenta --style: moves the style vector toward the photo's own; linear: mixes the transformed "
        "features with the photo's before decoding; --preset: mixes pixels",
    )
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours (luminance transfer)")
    real = p.add_argument_group("photo-realistic transfer (linear + SPN filter + affine smoothing)")
    real.add_argument("--photoreal", action="store_true",
                      help="photo-realistic transfer: linear --layer transfer, the SPN filter and the local affine "
                      "smoothing (needs linear.r41 or linear.r31, and linear.spn)")  # fmt: skip
    real.add_argument("--content-mask", metavar="PNG",
                      help="the content's regions in pure colours (black, blue, green, light blue, red, purple, "
                      "yellow, white)")  # fmt: skip
    real.add_argument("--style-mask", metavar="PNG",
                      help="the style's regions in the same colours; each content region takes the same-coloured "
                      "style region's look (the whole style where it has none)")  # fmt: skip
    real.add_argument("--no-smooth", dest="smooth", action="store_false", help="skip the affine smoothing")
    add_device(p)
    add_overwrite(p)
    add_worker_options(p)  # a folder's photos spread over worker processes or a Ray cluster
    p.add_argument(
        "--resume",
        action="store_true",
        help="after an interrupted or killed run: keep the outputs that exist as complete images, make the rest",
    )


def _check_options(args: argparse.Namespace) -> None:
    if args.style_weights is not None and not args.style:
        raise ConfigError("--style-weights needs --style images")
    if args.resume and args.overwrite:
        raise ConfigError("--resume keeps existing outputs and --overwrite replaces them; give one of the two")
    if not 0.0 <= args.strength <= 1.0:
        raise ConfigError(f"--strength must be between 0 and 1, got {args.strength}")
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16 px, got {args.size}")
    _check_working_size(args)
    if not args.photoreal and (args.content_mask or args.style_mask or not args.smooth):
        raise ConfigError("--content-mask, --style-mask and --no-smooth go with --photoreal")
    if args.photoreal:
        if args.preset or len(args.style or ()) != 1 or args.style_weights is not None:
            raise ConfigError("--photoreal takes exactly one --style image")
        if args.method == "magenta":
            raise ConfigError("--photoreal is built on the linear method; drop --method magenta")
        if args.strength != 1.0 or args.preserve_color:
            raise ConfigError("--strength and --preserve-color do not apply to --photoreal")
        if (args.content_mask is None) != (args.style_mask is None):
            raise ConfigError("give both --content-mask and --style-mask, or neither")


def _check_working_size(args: argparse.Namespace) -> None:
    """``--working-size``: a number of px (at least 64) or ``native``; one line otherwise."""
    given = args.working_size
    try:
        args.working_size = api.parse_working_size(given)
    except ConfigError:
        raise ConfigError(f"--working-size takes a number of px or 'native', got {given!r}") from None
    if args.working_size is not None and args.working_size < 64:
        raise ConfigError(f"--working-size must be at least 64 px (or 'native'), got {args.working_size}")


class _Done(NamedTuple):
    input: Path
    image: Any


def _photoreal_each(args: argparse.Namespace, sources: list[Path], token: Any) -> Iterator[Any]:
    """``--photoreal``: one ``api.photoreal`` call per photo, streamed like ``api.stylize_each``."""
    bar = ProgressBar(args.quiet, unit="stage", desc="photoreal", announce="impasto stylize")
    try:
        for src in sources:
            image = api.photoreal(
                src, args.style[0], layer=args.layer, content_mask=args.content_mask, style_mask=args.style_mask,
                smooth=args.smooth, size=args.size, device=args.device, callback=bar, cancel=token,
            )  # fmt: skip
            yield _Done(src, image)
    finally:
        bar.close()


def _left_to_do(planned: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """``--resume``: the (input, output) pairs whose output is not there yet.

    An existing output must be a complete, readable image (impasto's writer never leaves anything else at an
    output's name); anything else there is the user's and is refused rather than replaced. The ``.part``
    temporaries a killed run left for these outputs are removed.
    """
    todo = []
    for src, dest in planned:
        if not dest.exists():
            todo.append((src, dest))
            continue
        try:
            load_image(dest)
        except ImageError:
            raise ConfigError(
                f"{dest} exists but is not a complete image, so --resume cannot keep it; move it away or use "
                "--overwrite"
            ) from None
    names = {dest.name for _, dest in planned}
    for folder in {dest.parent for _, dest in planned}:
        for part in stray_parts(folder):
            if part.name[1:].rsplit(".", 2)[0] in names:  # ".NAME.XXXXXXXX.part" -> NAME
                part.unlink(missing_ok=True)
    return todo


def _new_folders(out_dir: str | None) -> list[Path]:
    """The folders that ``--out-dir`` will create, outermost first (removed again if the command fails early)."""
    missing: list[Path] = []
    p = Path(out_dir) if out_dir else None
    while p is not None and not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing[::-1]


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    inputs = expand_inputs(args.content)
    if args.photoreal and (args.workers is not None or args.ray is not None):
        raise ConfigError("--photoreal runs in this process; drop --workers/--ray")
    if args.photoreal and args.content_mask and len(inputs) > 1:
        raise ConfigError("--content-mask describes one photo; give one content image with it")
    created = _new_folders(args.out_dir)
    with cancel_on_sigint("this image") as token:
        try:  # everything is checked (outputs, options, style images) before the first image is made
            outputs = plan_outputs(inputs, args.output, args.out_dir, "stylized", args.overwrite or args.resume)
            planned = list(zip(inputs, outputs, strict=True))
            todo = _left_to_do(planned) if args.resume else planned
            bar = ProgressBar(args.quiet or len(todo) <= 1, unit="img", desc="stylize", total=len(todo))
            if args.photoreal:
                api.photoreal_check(args.layer)  # missing weights: one line before any work
            images = _photoreal_each(args, [s for s, _ in todo], token) if args.photoreal else api.stylize_each(
                [src for src, _ in todo], styles=args.style or (), style_weights=args.style_weights,
                preset=args.preset, size=args.size, strength=args.strength, preserve_color=args.preserve_color,
                device=args.device, callback=bar, cancel=token, method=args.method, layer=args.layer,
                working_size=args.working_size,
            )  # fmt: skip
        except BaseException:
            _remove_empty(created)  # a command refused before any work leaves no trace
            raise
        if not todo:
            if not args.quiet:
                print(f"impasto: all {len(planned)} outputs already exist; nothing to do", file=sys.stderr)
            return 0
        if args.workers is not None or args.ray is not None:
            return _run_on_workers(args, todo, planned, token)
        keep_freed_memory()  # this process is about to render images: reuse big blocks (see devices)
        return _write_each(todo, images, kept=len(planned) - len(todo), bar=bar)


def _write_each(todo: list[tuple[Path, Path]], images: Iterator[Any], kept: int, bar: ProgressBar) -> int:
    """Save each image as it comes (atomically), print its path; Ctrl-C and a full disk end with one line."""
    written = 0
    try:
        for (_src, dest), done in zip(todo, images, strict=True):
            save_or_fallback(functools.partial(save_image, done.image), dest)
            del done  # hold no finished image while the next one is made
            print(dest, file=sys.stdout, flush=True)
            written += 1
    except Cancelled:
        bar.close()
        already = f" ({kept} were already there)" if kept else ""
        print(
            f"impasto: stopped; {written} of {len(todo)} images written{already}; run again with --resume to make "
            "the rest",
            file=sys.stderr,
        )
        return 130
    except SavedElsewhere as exc:
        raise SavedElsewhere(
            f"{exc}; {written} of {len(todo)} images were written before it (free some space, then run again with "
            "--resume)",
            exc.path,
        ) from None
    finally:
        bar.close()
    return 0


def _run_on_workers(args: argparse.Namespace, todo: list[tuple[Path, Path]], planned: list, token: Any) -> int:
    """``--workers``/``--ray``: one task per photo; each worker writes its outputs (atomically) itself.

    One progress bar for the job; each output's path is printed as it is finished (in the order they finish).
    Ctrl-C stops every worker at once: the finished outputs stay, the half-written temporaries are removed, one
    line says how many were written, exit code 130 (``--resume`` makes the rest). A worker that dies has its
    photo redone by a fresh worker.
    """
    # every option checked and the style images read before a worker starts
    tasks = api.stylize_tasks(
        todo, styles=args.style or (), style_weights=args.style_weights, preset=args.preset, size=args.size,
        strength=args.strength, preserve_color=args.preserve_color, device=args.device, method=args.method,
        layer=args.layer, working_size=args.working_size,
    )  # fmt: skip
    kept = len(planned) - len(todo)
    bar = ProgressBar(args.quiet, unit="img", desc="stylize", total=len(tasks))
    written = 0
    try:
        with open_executor_from_args(args) as executor:
            if not args.quiet:
                bar.write(f"impasto stylize: {len(tasks)} images on {executor.description}")
            for result in executor.run(tasks, callback=bar, cancel=token):
                print(result.key, file=sys.stdout, flush=True)
                written += 1
        _remove_parts([dest for _, dest in todo])  # a worker that died mid-write left its temporary behind
    except Cancelled:
        bar.close()
        _remove_parts([dest for _, dest in todo])
        already = f" ({kept} were already there)" if kept else ""
        print(
            f"impasto: stopped; {written} of {len(todo)} images written{already}; run again with --resume to make "
            "the rest",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
    return 0


def _remove_parts(outputs: list[Path]) -> None:
    """The ``.NAME.XXXX.part`` temporaries that stopped workers left for these outputs."""
    names = {dest.name for dest in outputs}
    for folder in {dest.parent for dest in outputs}:
        for part in stray_parts(folder):
            if part.name[1:].rsplit(".", 2)[0] in names:
                part.unlink(missing_ok=True)
