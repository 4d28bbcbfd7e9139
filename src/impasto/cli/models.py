"""``impasto models list | info NAME | download NAME | import NAME FILE | verify [NAME] | path NAME``."""

from __future__ import annotations

import argparse
import sys

from ..errors import WeightsError
from ..zoo import registry, store


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


def _status(name: str) -> str:
    return "installed" if store.is_installed(name) else "missing"


def _fmt_size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.action == "list":
        rows = [(n, ws.kind, _status(n), ws.description) for n, ws in sorted(registry.REGISTRY.items())]
        width = max(len(r[0]) for r in rows)
        print(f"{'NAME':<{width}}  {'KIND':<20} {'STATUS':<10} DESCRIPTION", file=out)
        for name, kind, status, desc in rows:
            print(f"{name:<{width}}  {kind:<20} {status:<10} {desc}", file=out)
        from ..zoo.torch_formats import OFFLINE_DEFAULT, resolve_model

        paint_net = resolve_model(None, None)
        note = " (not VGG: the offline default; install vgg19.caffe for neural-style-pt's network)"
        print(f"paint uses: {paint_net}{note if paint_net == OFFLINE_DEFAULT else ''}", file=out)
        print(f"cache: {store.home()}", file=out)
        return 0
    ws = registry.get(args.name) if getattr(args, "name", None) else None
    if args.action == "info":
        assert ws is not None
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
        print(f"status:        {_status(ws.name)}", file=out)
        if store.is_installed(ws.name):
            for p in store.files_for(ws):
                print(f"path:          {p}", file=out)
        return 0
    if args.action == "path":
        assert ws is not None
        paths = store.files_for(ws)
        print(paths[0] if len(paths) == 1 else paths[0].parent, file=out)
        return 0
    if args.action == "download":
        assert ws is not None
        urls = tuple(args.url) if args.url else None
        paths = store.download(ws.name, urls=urls, force=args.force, progress=not args.quiet)
        for p in paths:
            print(p, file=out)
        return 0
    if args.action == "import":
        assert ws is not None
        paths = store.import_files(ws.name, args.file, force=args.force)
        for p in paths:
            print(p, file=out)
        return 0
    if args.action == "verify":
        names = [args.name] if args.name else [n for n in sorted(registry.REGISTRY) if store.is_installed(n)]
        if args.name and not store.is_installed(args.name):
            raise WeightsError(store.missing_message(registry.get(args.name)))
        failed = 0
        for name in names:
            try:
                store.verify(name)
                print(f"ok      {name}", file=out)
            except WeightsError as exc:
                failed += 1
                print(f"FAILED  {name}: {exc}", file=out)
        if not names:
            print("no weight sets installed", file=out)
        return 1 if failed else 0
    raise AssertionError(args.action)  # argparse restricts the choices
