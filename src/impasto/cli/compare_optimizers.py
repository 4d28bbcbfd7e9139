"""``impasto compare-optimizers``: GD, Adadelta, RMSProp, Adam, Adagrad and L-BFGS on one painting loss.

Writes losses.csv, summary.json, loss_vs_iteration.png, loss_vs_time.png, results.png and records.json into
-o DIR; ``--preset seed-study`` runs the six experiments of the original study into sub-folders with an index.html.

Failure paths: every file is written atomically (a killed run leaves the old file or the new one, never a torn
one). records.json is rewritten as each optimiser finishes, so ``--resume`` after Ctrl-C or a kill runs only the
optimisers not saved there (with the same settings; other settings are refused). Ctrl-C stops the running
optimiser at its next step and writes what ran, marked incomplete, then exits 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..errors import Cancelled, ConfigError
from ..media import check_writable, write_bytes, write_text
from .common import ProgressBar, add_worker_options, cancel_on_sigint, open_executor_from_args

LR_HELP = (
    "learning rate(s) in 0-255 pixel units, as in the original study (impasto converts them to the network's "
    "input range): one number for all (default 10), or per optimiser like adam=1,gd=0.1; L-BFGS uses 1 unless named"
)
STOPPING = "the current optimiser's next step"


def add_parser(p: argparse.ArgumentParser) -> None:
    names = api.study_optimizers()
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image")
    p.add_argument(
        "--optimizers",
        default=",".join(names),
        help=f"comma-separated, from {','.join(names)}; NAME@RATE pins a rate (default: all six)",
    )
    p.add_argument("--lr", default="10", help=LR_HELP)
    p.add_argument("--iterations", type=int, default=100, help="iterations per optimiser (default 100)")
    p.add_argument("--size", type=int, default=300, help="longest side in px (default 300)")
    p.add_argument("--model", help="registry weight set, e.g. vgg19.caffe (default: what impasto paint uses)")
    p.add_argument("--model-file", help="a VGG/NIN .pth file")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared starting image (default 0)")
    p.add_argument("--preset", choices=sorted(api.study_presets()), help="run a predefined set of experiments into DIR")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the results (created)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in DIR")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped or killed study in DIR: optimisers saved in DIR/records.json are not run again "
        "(the settings must be the same)",
    )
    p.add_argument(
        "--no-score", dest="score", action="store_false",
        help="skip the quality scores of each optimiser's final image (in summary.json and index.html)",
    )  # fmt: skip
    add_worker_options(p)  # one task per optimiser


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


def _check_output(path: Path, folders: list[Path], overwrite: bool, resume: bool, index: bool = False) -> None:
    """Before any work: ``path`` is (or can become) a writable folder, and results already in ``folders`` (and
    ``path/index.html`` with ``index``) are replaced only with --overwrite, or continued with --resume (which needs
    their records.json)."""
    if overwrite and resume:
        raise ConfigError("give --overwrite (start afresh) or --resume (continue), not both")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {path} exists and is not a folder")
    if not path.exists() and not path.parent.is_dir():
        raise ConfigError(f"output folder's parent {path.parent} does not exist")
    check_writable(path if path.exists() else path.parent)
    names = api.study_output_names()
    records = names[-1]
    for folder in folders:
        taken = [n for n in names if (folder / n).exists()]
        if not taken or overwrite:
            continue
        if not resume:
            raise ConfigError(
                f"{folder / taken[0]} already exists; pass --overwrite to replace the results in {folder} "
                "or --resume to continue them"
            )
        if records not in taken:
            raise ConfigError(f"--resume: {folder} has results but no {records} to resume from; pass --overwrite")
    if index and not overwrite and not resume and (path / "index.html").exists():
        raise ConfigError(f"{path / 'index.html'} already exists; pass --overwrite to replace the results in {path}")


def _write(result: Any, folder: Path) -> None:  # noqa: ANN401 - a StudyResult
    """Every file of ``result`` into ``folder``, each atomically."""
    folder.mkdir(exist_ok=True)
    for name, data in api.study_files(result).items():
        write_bytes(folder / name, data)


def _saver(folder: Path, bar: ProgressBar, quiet: bool):  # noqa: ANN202 - the on_run hook
    """Save records.json as each optimiser finishes (so a killed study resumes) and say so on stderr."""

    def on_run(run: Any, so_far: Any) -> None:  # noqa: ANN401 - a Run, a StudyResult
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / api.study_output_names()[-1], api.study_records_json(so_far))
        if not quiet:
            how = f"diverged ({run.reason})" if run.diverged else f"final loss {run.final_loss:.4g}"
            bar.write(f"impasto: {run.optimizer} finished: {len(run.records)} iterations, {how}, {run.seconds:.1f} s")

    return on_run


def _ran_anything(result: Any) -> bool:  # noqa: ANN401 - a StudyResult
    return any(r.records for r in result.runs)


def _stopped_line(result: Any, folder: Path) -> str:  # noqa: ANN401 - a StudyResult
    finished = [r.optimizer for r in result.runs if r.status == "finished"]
    stopped = [f"{r.optimizer} (stopped at iteration {len(r.records)})" for r in result.runs if r.status == "stopped"]
    what = ", ".join(finished + stopped) or "nothing"
    return f"impasto: interrupted; wrote {what} to {folder}, marked incomplete; run again with --resume to finish"


def _study_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"model": args.model, "model_file": args.model_file, "seed": args.seed, "gpu": args.device,
            "score": args.score, "executor": getattr(args, "executor", None)}  # fmt: skip


def _single(args: argparse.Namespace, out: Path, bar: ProgressBar, token: Any) -> int:  # noqa: ANN401
    optimizers = tuple(o.strip() for o in args.optimizers.split(",") if o.strip())
    saved = api.load_study_records(out) if args.resume else None
    try:
        result = api.compare_optimizers(
            args.content, args.style, optimizers=optimizers, lr=parse_lr(args.lr), iterations=args.iterations,
            size=args.size, callback=bar, cancel=token, resume=saved, on_run=_saver(out, bar, args.quiet),
            **_study_args(args),
        )  # fmt: skip
    except Cancelled as exc:
        bar.close()
        partial = exc.partial
        if partial is None or not _ran_anything(partial):
            print("impasto: interrupted before any optimiser ran; nothing written", file=sys.stderr)
            return 130
        _write(partial, out)
        print(_stopped_line(partial, out), file=sys.stderr)
        print(out / "summary.json")
        return 130
    bar.close()
    _write(result, out)
    if result.info.get("resumed") and not args.quiet:
        print(f"impasto: kept {', '.join(result.info['resumed'])} from {out}/records.json (not run again)",
              file=sys.stderr)  # fmt: skip
    print(out / "summary.json")
    return 0


def _preset(args: argparse.Namespace, out: Path, bar: ProgressBar, token: Any) -> int:  # noqa: ANN401
    experiments = api.study_presets()[args.preset]
    pages: list[tuple[str, str, Any]] = [(e.folder, e.title, None) for e in experiments]
    for n, exp in enumerate(experiments):
        folder = out / exp.folder
        saved = api.load_study_records(folder) if args.resume else None
        try:
            result = api.compare_optimizers(
                args.content, args.style, optimizers=exp.optimizers, lr=exp.default_lr, iterations=exp.iterations,
                size=exp.size, callback=bar, cancel=token, resume=saved, on_run=_saver(folder, bar, args.quiet),
                **_study_args(args),
            )  # fmt: skip
        except Cancelled as exc:
            bar.close()
            partial = exc.partial
            if partial is not None and _ran_anything(partial):
                _write(partial, folder)
                pages[n] = (exp.folder, exp.title, partial)
                print(_stopped_line(partial, folder), file=sys.stderr)
            elif n:
                kept = ", ".join(e.folder for e in experiments[:n])
                print(f"impasto: interrupted; {kept} finished in {out}; the rest did not run", file=sys.stderr)
            else:
                print("impasto: interrupted before any optimiser ran; nothing written", file=sys.stderr)
            if n or pages[n][2] is not None:  # the index marks the stopped experiment and the ones not run
                write_text(out / "index.html", api.study_index_html(pages))
                print(out / "index.html")
            return 130
        bar.close()
        _write(result, folder)
        pages[n] = (exp.folder, exp.title, result)
        # the index is rewritten after every experiment, so a stopped or killed run has a page for what finished
        write_text(out / "index.html", api.study_index_html(pages))
        print(folder / "summary.json", flush=True)
    print(out / "index.html")
    return 0


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if args.iterations < 1:
        raise ConfigError(f"--iterations must be at least 1, got {args.iterations}")
    if args.preset is None:
        parse_lr(args.lr)  # a bad --lr is reported before anything else
        _check_output(out, [out], args.overwrite, args.resume)
    else:
        folders = [out / e.folder for e in api.study_presets()[args.preset]]
        _check_output(out, folders, args.overwrite, args.resume, index=True)
    if args.workers is None and args.ray is None:
        args.executor = None
        with ProgressBar(args.quiet, unit="it", label_key="optimizer") as bar, cancel_on_sigint(STOPPING) as token:
            if args.preset is None:
                return _single(args, out, bar, token)
            return _preset(args, out, bar, token)
    with open_executor_from_args(args) as executor:  # one task per optimiser: the bar counts optimisers
        args.executor = executor
        if not args.quiet:
            print(f"impasto compare-optimizers: running on {executor.description}", file=sys.stderr)
        with ProgressBar(args.quiet, unit="optimizer") as bar, cancel_on_sigint(STOPPING) as token:
            if args.preset is None:
                return _single(args, out, bar, token)
            return _preset(args, out, bar, token)
