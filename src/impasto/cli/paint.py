"""``impasto paint CONTENT --style S [--style S ...] -o OUT``: painting by optimisation.

Every option is generated from :class:`impasto.gatys.config.PaintConfig` (field ``style_weight`` ->
``--style-weight``). Intermediate images go beside OUT as ``OUT_<step>.EXT`` every ``--save-iter`` steps, like
neural-style-pt. Nothing is overwritten without ``--overwrite``; every output path is checked before any work.
Ctrl-C stops at the next step and saves the latest image to OUT.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..devices import keep_freed_memory
from ..errors import Cancelled
from ..events import Event, Finished, Preview, Progress, Started
from ..media import check_output_path, save_image

# Fields with their own CLI spelling (positional / special handling).
_SKIP = {"init_image"}


def _field_type(hint: Any) -> tuple[Callable[[str], Any] | None, bool, str]:
    """argparse ``type`` for a PaintConfig type hint, whether it is a bool flag, and a metavar."""
    if hint is bool:
        return None, True, ""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return str, False, "LIST"  # comma-separated; PaintConfig parses and checks the items
    if hint is int:
        return int, False, "N"
    if hint is float:
        return float, False, "X"
    return str, False, "VALUE"


def add_config_options(p: argparse.ArgumentParser, *, skip: set[str] = _SKIP) -> None:
    """One ``--kebab-case`` option per PaintConfig field (help and default from the field)."""
    from ..gatys.config import PaintConfig

    hints = typing.get_type_hints(PaintConfig)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(PaintConfig):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        group_name = "impasto extras" if f.name in _EXTRAS else "neural-style-pt options"
        group = groups.setdefault(group_name, p.add_argument_group(group_name))
        flag = "--" + f.name.replace("_", "-")
        kind, is_flag, metavar = _field_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        if is_flag:
            group.add_argument(flag, dest=f.name, action="store_true", default=None, help=help_text)
            continue
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        if default is not None:
            help_text = f"{help_text} (default: {shown})"
        extra = ["--device"] if f.name == "gpu" else []
        group.add_argument(flag, *extra, dest=f.name, type=kind, default=None, metavar=metavar, help=help_text)


_EXTRAS = {"scales", "scale_iterations", "fast", "checkpoint_every", "checkpoint_path", "resume"}


def config_from_args(args: argparse.Namespace, **base: Any):  # noqa: ANN201 - PaintConfig, imported lazily
    """A PaintConfig from the options given on the command line (the rest keep their defaults)."""
    from ..gatys.config import PaintConfig

    values = dict(base)
    for f in dataclasses.fields(PaintConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return PaintConfig(**values)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", metavar="CONTENT", help="the photo to paint")
    p.add_argument(
        "--style",
        "-s",
        action="append",
        required=True,
        metavar="STYLE",
        help="style image, folder of images or comma-separated list (repeat for several; see --style-blend-weights)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image (.png, .jpg, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT and its step images if they exist")
    p.add_argument("--init-image", dest="init_image", default=None, help="image to start from (implies --init image)")
    add_config_options(p)


def style_inputs(values: list[str]) -> list[str]:
    """``--style`` values: files or folders; a comma-separated list is split unless it names an existing path."""
    out: list[str] = []
    for value in values:
        out.extend([value] if Path(value).exists() or "," not in value else [v for v in value.split(",") if v])
    return out


def checkpoint_path(output: Path) -> Path:
    """Where ``--checkpoint-every``/``--resume`` keep the checkpoint unless ``--checkpoint-path`` says: ``OUT.ckpt``."""
    return output.with_name(output.name + ".ckpt")


def preview_path(output: Path, step: int) -> Path:
    """neural-style-pt's naming for the image at ``step``: ``out.png`` -> ``out_100.png``."""
    return output.with_name(f"{output.stem}_{step}{output.suffix}")


class SigintCancel:
    """While active, the first Ctrl-C cancels ``token`` (the run stops and keeps its image); a second one aborts."""

    def __init__(self, token: Any) -> None:
        self.token = token
        self._old: Any = None

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.token.cancelled:
            raise KeyboardInterrupt
        self.token.cancel()
        print("\nimpasto: stopping after this step (Ctrl-C again to abort)", file=sys.stderr)

    def __enter__(self) -> SigintCancel:
        try:
            self._old = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def progress_callback(
    quiet: bool,
    total_hint: int,
    on_preview: Callable[[Preview], None],
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[Callable[[Event], None], Callable[[], None]]:
    """A tqdm bar (stderr) driven by events; Preview events go to ``on_preview``."""
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def callback(event: Event) -> None:
        if isinstance(event, Started) and not quiet:
            if "model" in event.info and not state.get("announced"):  # which network paints ("..., not VGG")
                state["announced"] = True
                print(f"impasto paint: {event.info['model']} on {event.info.get('device')}", file=sys.stderr)
            state["bar"] = tqdm(total=event.total or total_hint, unit="step", file=sys.stderr, leave=False)
        elif isinstance(event, Progress):
            bar = state.get("bar")
            if bar is not None:
                bar.n = min(event.step, bar.total or event.step)
                bar.set_postfix({"loss": f"{event.losses.get('total', float('nan')):.4g}"}, refresh=False)
                bar.refresh()
            if on_progress is not None:
                on_progress(event)
        elif isinstance(event, Preview):
            on_preview(event)
        elif isinstance(event, Finished):
            close()

    def close() -> None:
        bar = state.pop("bar", None)
        if bar is not None:
            bar.close()

    return callback, close


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..events import CancelToken
    from ..gatys.optimize import save_steps, scale_plan

    base: dict[str, Any] = {}
    if args.init_image is not None:
        base.update(init="image", init_image=args.init_image)
    config = config_from_args(args, **base).validate()
    # A resumed run continues the one that wrote OUT and its step images: replacing them is the point.
    overwrite = args.overwrite or bool(config.resume)
    output = check_output_path(args.output, overwrite=overwrite)
    for step in save_steps(config):
        check_output_path(preview_path(output, step), overwrite=overwrite)
    if (config.checkpoint_every or config.resume) and not config.checkpoint_path:
        config = config.replace(checkpoint_path=str(checkpoint_path(output)))

    def on_preview(event: Preview) -> None:
        save_image(event.image, preview_path(output, event.step))

    keep_freed_memory()  # big activations are reused across steps instead of page-faulted in each time
    callback, close = progress_callback(args.quiet, sum(n for _, n in scale_plan(config)), on_preview)
    token = CancelToken()
    try:
        with SigintCancel(token):
            result = api.paint(args.content, style_inputs(args.style), config, callback=callback, cancel=token)
    except Cancelled as exc:
        close()
        if exc.partial is not None:
            save_image(exc.partial, output)
            print(f"impasto: interrupted; saved the latest image to {output}", file=sys.stderr)
            if config.checkpoint_every:
                print(f"impasto: run again with --resume to continue from {config.checkpoint_path}", file=sys.stderr)
        return 130
    finally:
        close()
    save_image(result.image, output)
    if not args.quiet:
        print(f"{output}  ({result.model}, {result.steps} steps, loss {result.final_loss:.4g}, {result.elapsed:.1f} s)")
    else:
        print(output)
    return 0
