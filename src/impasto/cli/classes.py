"""``impasto classes [QUERY]``: list the 1000 ImageNet classes BigGAN knows, or search them."""

from __future__ import annotations

import argparse

from .. import api
from ..errors import UnknownModelError


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", help="part of a name or synonym, a number 0-999 or a WordNet id")


def run(args: argparse.Namespace) -> int:
    from ..gan.classes import suggestions

    found = api.classes(args.query)
    if not found:
        near = suggestions(args.query or "")
        hint = f"; did you mean {', '.join(repr(c.name) + f' ({c.index})' for c in near)}?" if near else ""
        raise UnknownModelError(f"no ImageNet class matches {args.query!r}{hint}")
    for c in found:
        print(f"{c.index:4d}  {c.names[0]}" + (f"  ({', '.join(c.names[1:])})" if len(c.names) > 1 else ""))
    return 0
