"""``impasto train linear|spn``: train your own transformation module or SPN filter (the reference's Train.py and
TrainSPN.py, losses and schedule unchanged).

Files beside ``-o OUT`` (e.g. ``model.pth``):

* ``OUT`` -- the trained module, ``torch.save`` of its state dict with the reference's keys (loads into the
  reference; ``impasto models import linear.r41 OUT`` installs it as the set's ``r41.pth``), written at the end
  and on Ctrl-C;
* ``OUT.ckpt`` -- the checkpoint (weights, Adam's state, the step; every ``--checkpoint-every`` steps and on
  Ctrl-C), which ``--resume`` continues bit for bit;
* ``<stem>.losses.jsonl`` -- one JSON line per step (step, loss terms, lr, elapsed), appended and flushed as the
  run goes; a resumed run drops the lines past its checkpoint and carries on;
* ``<stem>_preview_<step>.png`` -- every ``--preview-every`` steps: content | style | result of a fixed pair.

Nothing is replaced without ``--overwrite`` (``--resume`` replaces the files of the run it continues). Ctrl-C stops
after the step in hand, saves the checkpoint and OUT, and exits 130; every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from ..errors import Cancelled, ConfigError
from ..events import Event, Preview, Progress, Started
from ..media import check_output_path, is_unwritable, save_image, stray_parts, write_text
from .common import ProgressBar, add_device, add_overwrite, cancel_on_sigint, float_list

WEIGHT_EXTENSIONS = (".pth", ".pt")


def _common(p: argparse.ArgumentParser, *, lr: float) -> None:
    p.add_argument("--content-dir", required=True, metavar="DIR", help="folder of photos (the reference: MS-COCO)")
    p.add_argument("--steps", type=int, required=True, metavar="N", help="training steps (the reference: 100000)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pth", help="where the trained weights go")
    p.add_argument("--layer", default="r41", help="r41 or r31 (default: r41)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per step (default: 8)")
    p.add_argument("--lr", type=float, default=lr, metavar="X", help=f"Adam's learning rate (default: {lr:g})")
    p.add_argument("--crop-size", type=int, default=256, metavar="PX", help="training crop, multiple of 8 (256)")
    p.add_argument(
        "--image-size", type=int, default=None, metavar="PX",
        help="shorter side before cropping (default: the crop size, as the reference's loader does)",
    )  # fmt: skip
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--seed", type=int, default=0, help="seed of the image order, crops and initial weights (0)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K", help="save OUT.ckpt every K steps")
    p.add_argument("--preview-every", type=int, default=0, metavar="K", help="save a preview image every K steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt (the same settings and images)")
    p.add_argument("--vgg", metavar="PATH", help="the encoder file vgg_<layer>.pth (default: the installed one)")
    p.add_argument("--decoder", metavar="PATH", help="the decoder file dec_<layer>.pth (default: the installed one)")
    add_device(p)
    add_overwrite(p)


_FILES = """files beside OUT (e.g. model.pth):
  OUT                      the trained weights (the reference's format), at the end and on Ctrl-C
  OUT.ckpt                 checkpoint every --checkpoint-every K steps and on Ctrl-C; --resume continues it
  STEM.losses.jsonl        one JSON line of losses per step
  STEM_preview_STEP.png    every --preview-every K steps: content | style | result of a fixed pair
nothing is replaced without --overwrite; Ctrl-C saves OUT and OUT.ckpt and exits 130"""


def add_parser(p: argparse.ArgumentParser) -> None:
    from .main import Parser

    sub = p.add_subparsers(dest="kind", metavar="KIND", required=True, parser_class=Parser)
    raw = argparse.RawDescriptionHelpFormatter
    lin = sub.add_parser(
        "linear", help="a transformation module (Train.py)", epilog=_FILES, formatter_class=raw,
        description="Train a linear transformation module with the reference's losses and schedule (Train.py).",
    )  # fmt: skip
    lin.add_argument("--style-dir", required=True, metavar="DIR", help="folder of paintings (the reference: WikiArt)")
    _common(lin, lr=1e-4)
    lin.add_argument("--style-weight", type=float, default=0.02, metavar="X", help="style loss weight (0.02)")
    lin.add_argument("--content-weight", type=float, default=1.0, metavar="X", help="content loss weight (1)")
    lin.add_argument(
        "--style-layer-weights", type=float_list, metavar="W,W,W,W",
        help="weights of the style layers r11,r21,r31,r41 (default: 1 each, as the reference)",
    )  # fmt: skip
    lin.add_argument("--loss-net", metavar="PATH", help="the loss network vgg_r51.pth (default: the installed one)")
    spn = sub.add_parser(
        "spn", help="the SPN filter of the photo-realistic path (TrainSPN.py)", epilog=_FILES, formatter_class=raw,
        description="Train the SPN filter of the photo-realistic path (TrainSPN.py's loss and schedule).",
    )  # fmt: skip
    _common(spn, lr=1e-3)


def losses_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.losses.jsonl")


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.name + ".ckpt")


def preview_path(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}_preview_{step}.png")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = dict(
        layer=args.layer, steps=args.steps, batch_size=args.batch_size, lr=args.lr, crop_size=args.crop_size,
        image_size=args.image_size, flip=not args.no_flip, seed=args.seed, checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every, device=args.device,
    )  # fmt: skip
    if args.kind == "linear":
        opts.update(style_weight=args.style_weight, content_weight=args.content_weight)
        if args.style_layer_weights is not None:
            opts["style_layer_weights"] = tuple(args.style_layer_weights)
    return opts


def _check_outputs(output: Path, overwrite: bool, resume: bool, resumed_at: int | None) -> Path:
    """Every file the run writes, checked before the work."""
    replace = overwrite or resumed_at is not None
    ckpt, log = checkpoint_path(output), losses_path(output)
    if resume and resumed_at is None and not overwrite and output.exists():
        raise ConfigError(
            f"{output} already exists and there is no checkpoint at {ckpt} to resume; pass --overwrite to start over"
        )
    output = check_output_path(output, overwrite=replace, allowed=WEIGHT_EXTENSIONS)
    check_output_path(log, overwrite=replace, allowed=(".jsonl",))
    if ckpt.exists() and not resume and not overwrite:
        raise ConfigError(f"{ckpt} already exists (the checkpoint of an earlier run); pass --resume to continue it "
                          "or --overwrite to start over")  # fmt: skip
    if not replace:
        old = sorted(output.parent.glob(f"{output.stem}_preview_*.png"))
        if old:
            raise ConfigError(f"{old[0]} already exists (a preview of an earlier run); pass --overwrite to replace it")
    return output


class LossLog:
    """The JSON-lines log: one line per step, appended and flushed; a resumed run keeps the lines up to its step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: IO[str] | None = None

    def start(self, resumed_at: int) -> None:
        kept: list[str] = []
        if resumed_at and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    step = int(json.loads(line)["step"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill
                if step <= resumed_at:
                    kept.append(line + "\n")
        write_text(self.path, "".join(kept))
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run, closed in close()

    def write(self, event: Progress) -> None:
        if self.fh is None:
            return
        record = {"step": event.step, **event.losses, **event.info, "elapsed": round(event.elapsed, 3)}
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _remove_stray_parts(output: Path) -> None:
    """The temporaries a killed writer of this run's files left (``.model.pth.XXXX.part``), before resuming."""
    names = (output.name, checkpoint_path(output).name, losses_path(output).name)
    for part in stray_parts(output.parent if str(output.parent) else Path(".")):
        if any(part.name.startswith(f".{n}.") for n in names) or part.name.startswith(f".{output.stem}_preview_"):
            part.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    from .. import api

    kind = args.kind
    config = api.train_config(kind, **_options(args))
    output = Path(args.output)
    ckpt = checkpoint_path(output)
    resumed_at = api.train_resume_point(ckpt, kind) if args.resume and ckpt.exists() else None
    output = _check_outputs(output, args.overwrite, args.resume, resumed_at)
    if resumed_at is not None:
        _remove_stray_parts(output)
    bar = ProgressBar(args.quiet, total=config.steps, announce=f"impasto train {kind}")
    log = LossLog(losses_path(output))
    preview_failed = False

    def callback(event: Event) -> None:
        nonlocal preview_failed
        if isinstance(event, Preview):
            try:
                save_image(event.image, preview_path(output, event.step))
            except OSError as exc:
                if not is_unwritable(exc):
                    raise
                if not preview_failed:
                    preview_failed = True
                    bar.write(f"impasto: could not write preview {preview_path(output, event.step)}; training on")
            return
        bar(event)
        if isinstance(event, Started):
            at = int(event.info.get("resumed_at", 0))
            if at and not args.quiet:
                bar.write(f"impasto train {kind}: resuming at step {at} of {event.total}")
            log.start(at)
        elif isinstance(event, Progress):
            log.write(event)

    nets: dict[str, Any] = {"vgg": args.vgg, "decoder": args.decoder}
    if kind == "linear":
        nets["loss_net"] = args.loss_net
    try:
        with cancel_on_sigint("this training step") as token:
            if kind == "linear":
                result = api.train_linear(
                    args.content_dir, args.style_dir, config, checkpoint=ckpt, resume=args.resume,  # type: ignore[arg-type]
                    callback=callback, cancel=token, **nets,
                )  # fmt: skip
            else:
                result = api.train_spn(
                    args.content_dir, config, checkpoint=ckpt, resume=args.resume, callback=callback,  # type: ignore[arg-type]
                    cancel=token, **nets,
                )  # fmt: skip
    except Cancelled as exc:
        bar.close()
        log.close()
        if exc.partial is None:
            kept = f"{output} left as it was" if output.exists() else "nothing saved"
            print(f"impasto: interrupted before the first step; {kept}", file=sys.stderr)
            return 130
        api.save_trained(exc.partial, output)
        print(
            f"impasto: interrupted at step {exc.partial.step}; saved the weights to {output} and a checkpoint to "
            f"{ckpt} (run again with --resume to continue)",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
        log.close()
    api.save_trained(result, output)
    name = f"linear.{result.layer}" if kind == "linear" else "linear.spn"
    if args.quiet:
        print(output)
    else:
        loss = result.losses.get("loss", float("nan"))
        print(f"{output}  ({kind} {result.layer}, {result.step} steps, loss {loss:.4g}, {result.elapsed:.1f} s)")
        print(
            f"install it with: impasto models import {name} {output} (--force replaces an installed one)",
            file=sys.stderr,
        )
    return 0
