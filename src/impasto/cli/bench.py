"""``impasto bench``: the benchmark suite on this machine -- stylise, paint exact vs fast, BigGAN, workers scaling.

Writes the figures as JSON (``-o``, default ``bench.json``, written atomically) and prints a table, so two machines
can be compared. Sections use the installed weights, or random weights of the real architecture's size where none
are installed (the JSON and the table say which). Ctrl-C stops: the sections finished so far are written (with
``"complete": false``) and the command exits 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import api
from ..errors import Cancelled
from ..events import Event, Progress
from ..media import check_output_path, write_text
from .common import ProgressBar, add_device, add_overwrite, cancel_on_sigint

SECTIONS = "stylize,paint,biggan,workers"  # impasto.bench.SECTIONS (the CLI sees only the api)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes and counts: about a minute on a laptop CPU")
    p.add_argument("--only", metavar="SECTIONS", help=f"comma list of sections to run (default: all of {SECTIONS})")
    p.add_argument("-o", "--output", metavar="FILE", default="bench.json", help="JSON file (default: bench.json)")
    add_device(p)
    add_overwrite(p)


def _write(path: Path, report: dict, complete: bool) -> None:
    write_text(path, json.dumps({**report, "complete": complete}, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    sections = api.bench_sections(args.only)  # a bad name: one line, exit 2, before any work
    out = check_output_path(args.output, overwrite=args.overwrite, allowed=(".json",))
    bar = ProgressBar(args.quiet, unit="section", desc="bench", total=len(sections))

    def on_event(event: Event) -> None:
        bar(event)
        if isinstance(event, Progress) and not args.quiet:  # a section finished: say so on its own line
            bar.write(f"bench: {event.info['section']} done ({event.step}/{event.total}, {event.elapsed:.0f} s)")

    try:
        with cancel_on_sigint("this measurement") as token:
            report = api.bench(sections, quick=args.quick, device=args.device, callback=on_event, cancel=token)
    except Cancelled as exc:
        bar.close()
        partial = exc.partial if isinstance(exc.partial, dict) else {"sections": {}}
        done = list(partial.get("sections", {}))
        if done:
            _write(out, partial, complete=False)
            for line in api.bench_table(partial):
                print(line)
            print(f"impasto: stopped; the finished sections ({', '.join(done)}) written to {out}", file=sys.stderr)
        else:
            print(f"impasto: stopped before the first section finished; nothing written to {out}", file=sys.stderr)
        return 130
    finally:
        bar.close()
    _write(out, report, complete=True)
    for line in api.bench_table(report):
        print(line)
    print(out)
    return 0
