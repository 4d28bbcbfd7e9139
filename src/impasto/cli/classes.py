"""``impasto classes [QUERY]``: list the 1000 ImageNet classes BigGAN knows, or search them."""

from __future__ import annotations

import argparse
import sys

from .. import api
from ..errors import UnknownModelError


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="*",
                   help="part of a name or synonym, an everyday word (dog: the dog breeds), a number 0-999 or a "
                        "WordNet id; several words are one query (soap bubble)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    query = " ".join(args.query) if args.query else None
    found = api.classes(query)
    if not found:
        near = api.class_suggestions(query or "")
        hint = f"; did you mean {', '.join(repr(c.name) + f' ({c.index})' for c in near)}?" if near else ""
        raise UnknownModelError(f"no ImageNet class matches {query!r}{hint}")
    for c in found:
        print(f"{c.index:4d}  {c.names[0]}" + (f"  ({', '.join(c.names[1:])})" if len(c.names) > 1 else ""))
    note = api.class_coverage_note(query)
    if note:
        print(note, file=sys.stderr)
    return 0
