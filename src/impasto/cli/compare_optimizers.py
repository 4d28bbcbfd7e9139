"""``impasto compare-optimizers``: GD, Adadelta, RMSProp, Adam, Adagrad and L-BFGS on one painting loss.

Writes losses.csv, summary.json, loss_vs_iteration.png, loss_vs_time.png and results.png into -o DIR;
``--preset seed-study`` runs the six experiments of the original study into sub-folders with an index.html.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import api
from ..errors import ConfigError
from ..events import Event, Progress, Started
from ..media import atomic_write, save_image
from ..study import report
from ..study.presets import PRESETS
from ..study.records import OPTIMIZERS

OUTPUT_FILES = ("losses.csv", "summary.json", "loss_vs_iteration.png", "loss_vs_time.png", "results.png")

LR_HELP = (
    "learning rate(s) in 0-255 pixel units, as in the original study (impasto converts them to the network's "
    "input range): one number for all (default 10), or per optimiser like adam=1,gd=0.1; L-BFGS uses 1 unless named"
)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image")
    p.add_argument(
        "--optimizers",
        default=",".join(OPTIMIZERS),
        help=f"comma-separated, from {','.join(OPTIMIZERS)}; NAME@RATE pins a rate (default: all six)",
    )
    p.add_argument("--lr", default="10", help=LR_HELP)
    p.add_argument("--iterations", type=int, default=100, help="iterations per optimiser (default 100)")
    p.add_argument("--size", type=int, default=300, help="longest side in px (default 300)")
    p.add_argument("--model", help="registry weight set, e.g. vgg19.caffe (default: what impasto paint uses)")
    p.add_argument("--model-file", help="a VGG/NIN .pth file")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared starting image (default 0)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="run a predefined set of experiments into DIR")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the results (created)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in DIR")


def parse_lr(text: str) -> float | dict[str, float]:
    """``"10"`` -> 10.0; ``"adam=1,gd=0.1"`` -> {"adam": 1.0, "gd": 0.1}."""
    if "=" not in text:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"--lr must be a number or NAME=RATE pairs, got {text!r}") from None
    rates: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        try:
            rates[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--lr entry {part!r} is not NAME=RATE") from None
    return rates


def _prepare_dir(path: Path, names: tuple[str, ...], overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {path} exists and is not a folder")
    if not path.parent.exists():
        raise ConfigError(f"output folder's parent {path.parent} does not exist")
    taken = [n for n in names if (path / n).exists()]
    if taken and not overwrite:
        raise ConfigError(f"{path / taken[0]} already exists; pass --overwrite to replace the results in {path}")


def _bars(quiet: bool):  # noqa: ANN202 - a callback and a closer
    from tqdm import tqdm

    state: dict[str, tqdm] = {}

    def callback(event: Event) -> None:
        if quiet:
            return
        if isinstance(event, Started) and "optimizer" in event.info:
            if "bar" in state:
                state["bar"].close()
            state["bar"] = tqdm(total=event.total, desc=f"{event.info['optimizer']:<12}", file=sys.stderr, unit="it")
        elif isinstance(event, Progress) and "bar" in state:
            state["bar"].n = event.step
            state["bar"].set_postfix(loss=f"{event.losses.get('total', float('nan')):.4g}", refresh=False)
            state["bar"].refresh()

    def close() -> None:
        if "bar" in state:
            state.pop("bar").close()

    return callback, close


def _write(result, folder: Path) -> None:  # noqa: ANN001 - a StudyResult
    folder.mkdir(exist_ok=True)
    atomic_write(folder / "losses.csv", lambda t: t.write_text(report.losses_csv(result)))
    atomic_write(folder / "summary.json", lambda t: t.write_text(report.summary_json(result)))
    atomic_write(folder / "loss_vs_iteration.png", lambda t: t.write_bytes(report.loss_plot(result, "iteration")))
    atomic_write(folder / "loss_vs_time.png", lambda t: t.write_bytes(report.loss_plot(result, "wall_s")))
    save_image(report.results_grid(result), folder / "results.png")


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    lr = parse_lr(args.lr)
    optimizers = tuple(o.strip() for o in args.optimizers.split(",") if o.strip())
    common = {
        "model": args.model,
        "model_file": args.model_file,
        "seed": args.seed,
        "gpu": args.device,
    }
    if args.iterations < 1:
        raise ConfigError(f"--iterations must be at least 1, got {args.iterations}")
    callback, close = _bars(args.quiet)
    try:
        if args.preset is None:
            _prepare_dir(out, OUTPUT_FILES, args.overwrite)
            result = api.compare_optimizers(
                args.content,
                args.style,
                optimizers=optimizers,
                lr=lr,
                iterations=args.iterations,
                size=args.size,
                callback=callback,
                **common,
            )
            close()
            _write(result, out)
            print(out / "summary.json")
            return 0
        experiments = PRESETS[args.preset]
        _prepare_dir(out, ("index.html", *(e.folder for e in experiments)), args.overwrite)
        out.mkdir(exist_ok=True)
        pages = []
        for exp in experiments:
            result = api.compare_optimizers(
                args.content,
                args.style,
                optimizers=exp.optimizers,
                lr=exp.default_lr,
                iterations=exp.iterations,
                size=exp.size,
                callback=callback,
                **common,
            )
            close()
            _write(result, out / exp.folder)
            pages.append((exp.folder, exp.title, report.summary(result)))
            # the index is rewritten after every experiment, so a stopped run still has a page for what finished
            atomic_write(out / "index.html", lambda t, pages=pages: t.write_text(report.index_html(pages)))
            print(out / exp.folder / "summary.json", flush=True)
        print(out / "index.html")
        return 0
    finally:
        close()
