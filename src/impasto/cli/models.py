"""``impasto models list | info NAME | download NAME | import NAME FILE | verify [NAME] | path NAME``."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from .. import api
from ..errors import WeightsError


def add_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="every known weight set and whether it is installed")
    info = sub.add_parser("info", help="where a weight set comes from, its checksum, licence and contract")
    info.add_argument("name")
    dl = sub.add_parser("download", help="download a weight set into the cache (sha256-checked)")
    dl.add_argument("name")
    dl.add_argument("--url", action="append", help="download from this URL instead (a mirror); once per file")
    dl.add_argument("--force", action="store_true", help="download again even if a valid copy is cached")
    imp = sub.add_parser("import", help="copy a file (or folder) you already have into the cache, after checking it")
    imp.add_argument("name")
    imp.add_argument("file")
    imp.add_argument("--force", action="store_true", help="replace an installed copy")
    ver = sub.add_parser("verify", help="check installed files' checksums and formats")
    ver.add_argument("name", nargs="?")
    path = sub.add_parser("path", help="print the path of a weight set's file (its folder for multi-file sets)")
    path.add_argument("name")


def _fmt_size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def _list(out: TextIO) -> int:
    rows = [
        (s.name, s.record.kind, "installed" if s.installed else "missing", s.record.description)
        for s in api.models.list()
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'NAME':<{width}}  {'KIND':<20} {'STATUS':<10} DESCRIPTION", file=out)
    for name, kind, status, desc in rows:
        print(f"{name:<{width}}  {kind:<20} {status:<10} {desc}", file=out)
    paint_net, offline = api.models.paint_network()
    note = " (not VGG: the offline default; install vgg19.caffe for neural-style-pt's network)"
    print(f"paint uses: {paint_net}{note if offline else ''}", file=out)
    print(f"cache: {api.models.home()}", file=out)
    return 0


def _info(name: str, out: TextIO) -> int:
    status = api.models.info(name)
    ws = status.record
    print(f"name:          {ws.name}", file=out)
    print(f"kind:          {ws.kind}", file=out)
    print(f"description:   {ws.description}", file=out)
    for i, (url, fname) in enumerate(zip(ws.urls, ws.files, strict=True)):
        sha = ws.sha256[i] if i < len(ws.sha256) else None
        prefix = ws.sha256_prefix[i] if i < len(ws.sha256_prefix) else None
        size = ws.size[i] if i < len(ws.size) else None
        print(f"file:          {fname}", file=out)
        print(f"  source:      {url}", file=out)
        print(f"  sha256:      {sha or (f'starts with {prefix}' if prefix else 'not published')}", file=out)
        print(f"  size:        {_fmt_size(size)}", file=out)
    print(f"licence:       {ws.licence}", file=out)
    print(f"paper:         {ws.paper}", file=out)
    print(f"preprocessing: {ws.preprocessing}", file=out)
    print(f"format:        {ws.upstream_format}", file=out)
    print(f"status:        {'installed' if status.installed else 'missing'}", file=out)
    for p in status.paths:
        print(f"path:          {p}", file=out)
    return 0


def _verify(name: str | None, out: TextIO) -> int:
    results = api.models.verify(name)
    for r in results:
        print(f"ok      {r.name}" if r.ok else f"FAILED  {r.name}: {r.message}", file=out)
    if not results:
        print("no weight sets installed", file=out)
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise WeightsError(f"{len(failed)} of {len(results)} weight set(s) failed verification: {', '.join(failed)}")
    return 0


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.action == "list":
        return _list(out)
    if args.action == "info":
        return _info(args.name, out)
    if args.action == "verify":
        return _verify(args.name, out)
    if args.action == "path":
        print(api.models.path(args.name), file=out)
        return 0
    if args.action == "download":
        paths = api.models.download(args.name, urls=args.url, force=args.force, progress=not args.quiet)
    elif args.action == "import":
        paths = api.models.import_file(args.name, args.file, force=args.force)
    else:
        raise AssertionError(args.action)  # argparse restricts the choices
    for p in paths:
        print(p, file=out)
    return 0
