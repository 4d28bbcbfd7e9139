"""``impasto paint CONTENT --style S [--style S ...] -o OUT``: painting by optimisation.

Every option is generated from :class:`impasto.api.PaintConfig` (field ``style_weight`` -> ``--style-weight``).
Intermediate images go beside OUT as ``OUT_<step>.EXT`` every ``--save-iter`` steps, like neural-style-pt.

What happens to files:

* Nothing is replaced without ``--overwrite``. ``--resume`` replaces OUT and its step images only when there is a
  checkpoint of the same run to continue (they are that run's); with no checkpoint it is a fresh run and refuses
  like any other. Every output path, the checkpoint's folder included, is checked (exists, writable) before the
  work starts.
* Ctrl-C stops at the next step and saves the latest image to OUT -- but only when this run took a step: a
  Ctrl-C before the first step leaves OUT exactly as it was (and says so). Exit code 130.
* Every file is written atomically, so ``kill -9`` never leaves a torn file at an output name (only ``.*.part``
  temporaries); with ``--checkpoint-every N``, ``--resume`` continues from the last checkpoint (and removes the
  temporaries the killed run left beside its own files).
* If OUT cannot be written at the end (disk full), the result is saved next to the checkpoint or in the temporary
  folder, one line says where, and the exit code is 1. A step image that cannot be written is skipped (one line).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..devices import keep_freed_memory
from ..errors import Cancelled, ConfigError
from ..events import Event, Preview, Started
from ..media import (
    SavedElsewhere,
    check_output_path,
    ensure_folder,
    is_unwritable,
    save_image,
    save_or_fallback,
    stray_parts,
)
from .common import ProgressBar, cancel_on_sigint
from .records import write_paint_record

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
    from ..api import PaintConfig

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
        group.add_argument(flag, *extra, dest=f.name, type=kind or str, default=None, metavar=metavar, help=help_text)


_EXTRAS = {
    "scales",
    "scale_iterations",
    "fast",
    "checkpoint_every",
    "checkpoint_path",
    "resume",
    "style_loss",
    "average",
    "average_decay",
    "save_all_scales",
    "max_memory",
    "tile_size",
    "network_checkpointing",
    "lbfgs_history_dtype",
}


def config_from_args(args: argparse.Namespace, **base: Any):  # noqa: ANN201 - PaintConfig, imported lazily
    """A PaintConfig from the options given on the command line (the rest keep their defaults)."""
    from ..api import PaintConfig

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
    p.add_argument("--no-score", dest="score", action="store_false",
                   help="skip the quality scores (kept with the settings in OUT.json, e.g. out.png.json)")  # fmt: skip
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


def seeded_determinism(seed: int) -> None:
    """For a seeded run, ask cuDNN for deterministic algorithms, as neural-style-pt does.

    This is process-wide state, which is why the command (which owns the process) sets it and the library does
    not; it only matters on CUDA (the CPU kernels are deterministic).
    """
    import torch

    if seed >= 0 and torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True


class StepImages:
    """Saves each Preview to ``path_of(step)``; a step image that cannot be written is skipped with one line."""

    def __init__(
        self,
        path_of: Callable[[int], Path | None],
        bar: ProgressBar,
        picture: Callable[[Preview], Any] = lambda e: e.image,
        icc_profile: bytes | None = None,
    ) -> None:
        self.path_of, self.bar, self.picture, self.icc_profile = path_of, bar, picture, icc_profile
        self.failed = False

    def __call__(self, event: Preview) -> None:
        path = self.path_of(event.step)
        if path is None:
            return
        try:
            save_image(self.picture(event), path, icc_profile=self.icc_profile)
        except OSError as exc:
            if not is_unwritable(exc):
                raise
            if not self.failed:
                self.failed = True
                self.bar.write(f"impasto: could not write step image {path} ({exc.strerror}); painting on")


def save_result(image: Any, output: Path, near: Sequence[str | None], icc_profile: bytes | None = None) -> Path:
    """Write the result to ``output``; if it cannot take it (disk full), save near the checkpoint or in the temp
    folder and raise SavedElsewhere (one line, exit code 1)."""
    return save_or_fallback(lambda p: save_image(image, p, icc_profile=icc_profile), output, near=near)


def cancelled(exc: Cancelled, output: Path, save: Callable[[Any, Path], Path], resume_hint: str | None) -> int:
    """After Ctrl-C: save the partial image when the run took a step, else leave OUT alone; one line; 130."""
    if exc.partial is None:
        kept = f"{output} left as it was" if output.exists() else "nothing saved"
        print(f"impasto: interrupted before the first step; {kept}", file=sys.stderr)
        return 130
    try:
        saved = save(exc.partial, output)
    except SavedElsewhere as elsewhere:
        print(f"impasto: interrupted; {elsewhere}", file=sys.stderr)
        return 130
    hint = f" (run again with --resume to continue from {resume_hint})" if resume_hint else ""
    print(f"impasto: interrupted; saved the latest image to {saved}{hint}", file=sys.stderr)
    return 130


def _check_outputs(output: Path, preview_steps: tuple[int, ...], config: Any, overwrite: bool,
                   resumed_at: int | None) -> Path:  # fmt: skip
    """Every path the run will write, checked before the work (exists only with leave, folder writable)."""
    replace = overwrite or resumed_at is not None
    if config.resume and resumed_at is None and not overwrite and output.exists():
        raise ConfigError(
            f"{output} already exists and there is no checkpoint at {config.checkpoint_path} to resume; "
            "pass --overwrite to start over and replace it"
        )
    output = check_output_path(output, overwrite=replace)
    for step in preview_steps:
        check_output_path(preview_path(output, step), overwrite=replace)
    if config.checkpoint_path:
        ckpt = Path(config.checkpoint_path)
        if ckpt.is_dir():
            raise ConfigError(f"checkpoint path {ckpt} is a folder; give a file name")
        if ckpt.exists() and not config.resume and not overwrite:
            raise ConfigError(
                f"{ckpt} already exists (the checkpoint of an earlier run); pass --resume to continue it or "
                "--overwrite to start over"
            )
        ensure_folder(ckpt.parent if str(ckpt.parent) else Path("."), what="checkpoint folder")
    return output


def _remove_stray_parts(output: Path, preview_steps: tuple[int, ...], ckpt: str | None) -> None:
    """Delete the temporaries a killed writer of THIS run's files left (``.out.png.XXXX.part``), before resuming."""
    mine = [output, *(preview_path(output, t) for t in preview_steps), *([Path(ckpt)] if ckpt else [])]
    for target in mine:
        for part in stray_parts(target.parent if str(target.parent) else Path(".")):
            if part.name.startswith(f".{target.name}.") and part.name.count(".") == target.name.count(".") + 3:
                part.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    from .. import api

    base: dict[str, Any] = {}
    if args.init_image is not None:
        base.update(init="image", init_image=args.init_image)
    config = config_from_args(args, **base).validate()
    output = Path(args.output)
    if (config.checkpoint_every or config.resume) and not config.checkpoint_path:
        config = config.replace(checkpoint_path=str(checkpoint_path(output)))
    styles = style_inputs(args.style)
    plan = api.paint_plan(config)
    resumed_at = api.paint_resume_point(args.content, styles, config) if config.resume else None
    output = _check_outputs(output, plan.preview_steps, config, args.overwrite, resumed_at)
    if resumed_at is not None:
        _remove_stray_parts(output, plan.preview_steps, config.checkpoint_path)
    near = [str(Path(config.checkpoint_path).parent)] if config.checkpoint_path else []

    bar = ProgressBar(args.quiet, total=plan.total, loss_key="total", announce="impasto paint")
    step_images = StepImages(lambda step: preview_path(output, step), bar)

    def callback(event: Event) -> None:
        if isinstance(event, Preview):
            step_images(event)
            return
        bar(event)
        if isinstance(event, Started) and "memory_plan" in event.info and not args.quiet:
            bar.write(f"impasto paint: {event.info['memory_plan']}")  # once: the first scale's Started only
        if isinstance(event, Started) and "resumed_at" in event.info and not args.quiet:
            bar.write(f"impasto paint: resuming at step {event.info['resumed_at']} of {event.total}")

    keep_freed_memory()  # big activations are reused across steps instead of page-faulted in each time
    seeded_determinism(config.seed)
    try:
        with cancel_on_sigint() as token:
            result = api.paint(args.content, styles, config, callback=callback, cancel=token, score=args.score)
    except Cancelled as exc:
        bar.close()
        hint = config.checkpoint_path if config.checkpoint_every else None
        return cancelled(exc, output, lambda img, dest: save_result(img, dest, near), hint)
    finally:
        bar.close()
    saved = save_result(result.image, output, near)
    write_paint_record(result, saved, quiet=args.quiet)  # OUT.json: settings and scores
    if not args.quiet:
        print(f"{saved}  ({result.model}, {result.steps} steps, loss {result.final_loss:.4g}, {result.elapsed:.1f} s)")
    else:
        print(saved)
    return 0
