"""``impasto sweep CONTENT -s STYLE --grid "style_weight=1e2,1e3 seed=0,1" -o DIR``: every combination, ranked.

The grid names PaintConfig fields (as ``impasto paint``'s options, ``-`` or ``_``), each with comma-separated
values read with the field's type; a list value (layers, scales) joins its items with ``+``:
``--grid "style_layers=relu1_1+relu2_1,relu3_1+relu4_1 seed=0,1"``. Every other ``impasto paint`` option fixes a
setting for all entries. Each entry is painted to ``DIR/<settings>.png`` with its settings and scores in
``DIR/<settings>.png.json``; DIR also gets results.json, results.csv (ranked by ``--rank-by``), contact-sheet.jpg and
index.html (open it in a browser: images and a sortable table, nothing fetched from the network).

Files: DIR must be new or empty; ``--resume`` keeps the entries already finished there (made with the same
settings and images; others are refused) and paints the rest -- after Ctrl-C or a kill; ``--overwrite`` paints
every entry again. Every file is written atomically. Ctrl-C stops the running entry, keeps the finished ones,
writes the results for them (marked incomplete) and exits 130.

``--workers N`` spreads the entries over N local worker processes, ``--ray [ADDRESS]`` over a Ray cluster (DIR and
the images must then be at paths every node can read and write).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..errors import Cancelled, ConfigError
from .common import ProgressBar, add_worker_options, cancel_on_sigint, open_executor_from_args
from .paint import add_config_options, config_from_args, style_inputs

# paint options that make no sense for a sweep: it saves no step images and resumes entry by entry
_NOT_IN_SWEEP = {"init_image", "checkpoint_every", "checkpoint_path", "resume", "save_iter", "save_all_scales",
                 "print_iter"}  # fmt: skip
STOPPING = "the running entry's next step"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", metavar="CONTENT", help="the photo to paint")
    p.add_argument(
        "--style", "-s", action="append", required=True, metavar="STYLE",
        help="style image, folder or comma-separated list (repeat for several)",
    )  # fmt: skip
    p.add_argument(
        "--grid", "-g", action="append", required=True, metavar="GRID",
        help="the settings to vary: 'NAME=V1,V2 NAME=V3,V4' (PaintConfig fields as impasto paint's options; a "
        "list value joins its items with +, e.g. style_layers=relu1_1+relu2_1,relu3_1); repeatable",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the entries and results")
    ranks = api.sweep_ranks()
    p.add_argument(
        "--rank-by", default=ranks[0], metavar="SCORE",
        help=f"order of the results and contact sheet: {', '.join(ranks)} (default {ranks[0]}: the mean of the "
        "SSIM rank and the style-W2 rank; ssim/psnr higher is better, the rest lower)",
    )  # fmt: skip
    p.add_argument(
        "--resume",
        dest="resume_sweep",
        action="store_true",
        help="keep the entries already finished in DIR, paint the rest",
    )
    p.add_argument("--overwrite", action="store_true", help="paint every entry again, replacing its files in DIR")
    p.add_argument("--init-image", dest="init_image", default=None, help="image to start from (implies --init image)")
    add_config_options(p, skip=_NOT_IN_SWEEP)
    add_worker_options(p)


def _executor_device(gpu: str | None) -> str:
    """The paint ``--gpu`` spelling as the executor's device: auto, cpu or cuda:N."""
    text = (gpu or "auto").strip().lower()
    if text in ("c", "cpu"):
        return "cpu"
    if text.isdigit():
        return f"cuda:{text}"
    return text if text in ("auto", "cuda") or text.startswith("cuda:") else "auto"


def _entry_line(record: dict, done: int, total: int) -> str:
    scores = record.get("scores") or {}
    content, style = scores.get("content") or {}, scores.get("style") or {}
    label = " ".join(f"{k}={v}" for k, v in record.get("labels", {}).items())
    parts = []
    if "ssim" in content:
        parts.append(f"SSIM {content['ssim']:.3f}")
    if "w2" in style:
        parts.append(f"W2 {style['w2']:.4g}")
    if "color_swd" in style:
        parts.append(f"colour {style['color_swd']:.4g}")
    return f"impasto sweep: {done}/{total} {label}: {', '.join(parts)} ({record.get('seconds', 0):.1f} s)"


def run(args: argparse.Namespace) -> int:
    if args.rank_by not in api.sweep_ranks():
        raise ConfigError(f"--rank-by {args.rank_by!r} is not a score; choose one of {', '.join(api.sweep_ranks())}")
    base: dict[str, Any] = {}
    if args.init_image is not None:
        base.update(init="image", init_image=args.init_image)
    config = config_from_args(args, **base)
    folder = Path(args.output)
    plan = api.sweep_plan(args.content, style_inputs(args.style), args.grid, folder, config)
    both = [a.name for a in plan.axes if getattr(args, a.name, None) is not None]
    if both:
        flag = "--" + both[0].replace("_", "-")
        raise ConfigError(f"{both[0]} is in the grid and also fixed by {flag}; give it in one place")
    done = api.sweep_check(plan, resume=args.resume_sweep, overwrite=args.overwrite)
    total = len(plan.entries)
    kept = sum(r is not None for r in done)
    bar = ProgressBar(args.quiet, unit="entry", desc="impasto sweep")
    if not args.quiet:
        what = f"{total} entries" + (f" ({kept} finished earlier, kept)" if kept else "")
        bar.write(f"impasto sweep: {what} into {folder}")

    def on_entry(record: dict, finished: int, entries: int) -> None:
        if not args.quiet:
            bar.write(_entry_line(record, finished, entries))

    use_workers = args.workers is not None or args.ray is not None
    if use_workers:
        args.device = _executor_device(config.gpu)
    try:
        with cancel_on_sigint(STOPPING) as token:
            if use_workers:
                with open_executor_from_args(args) as executor:
                    if not args.quiet:
                        bar.write(f"impasto sweep: running on {executor.description}")
                    result = api.sweep(plan, done, rank_by=args.rank_by, executor=executor, callback=bar,
                                       cancel=token, on_entry=on_entry)  # fmt: skip
            else:
                result = api.sweep(plan, done, rank_by=args.rank_by, callback=bar, cancel=token, on_entry=on_entry)
    except Cancelled as exc:
        bar.close()
        partial = exc.partial
        finished = sum(r["status"] == "finished" for r in partial.rows) if partial is not None else kept
        print(
            f"impasto: interrupted; {finished} of {total} entries finished in {folder}, results written for them "
            "(marked incomplete); run again with --resume to paint the rest",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
    if not args.quiet and result.rows and result.rows[0]["rank"] is not None:
        best = result.rows[0]
        label = " ".join(f"{k}={v}" for k, v in best["labels"].items())
        print(f"impasto sweep: best by {args.rank_by}: {label} ({best['output']})", file=sys.stderr)
    print(folder / "index.html")
    return 0
