"""The 1000 ImageNet (ILSVRC-2012) classes BigGAN is conditioned on: names, synonyms and search.

Shipped as package data (``impasto/data/imagenet_classes.json``: WordNet id and comma-separated synonyms per
class, in the standard index order). A class is named by its number (0-999), its WordNet id (``n07697313``) or any
of its names, case-insensitively; near misses get suggestions.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from importlib import resources

from ..errors import UnknownModelError

NUM_CLASSES = 1000


@dataclass(frozen=True)
class ImageNetClass:
    """One class: ``index`` in 0..999, WordNet id, and its names (the first is the common one)."""

    index: int
    wnid: str
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.names[0]

    def label(self) -> str:
        """``"933 cheeseburger"``-style one-line label."""
        return f"{self.index} {self.name}"


def normalize(text: str) -> str:
    """Lower case, ``_`` and ``-`` as spaces, single spaces: how names are compared."""
    return re.sub(r"\s+", " ", text.replace("_", " ").replace("-", " ")).strip().lower()


@functools.cache
def all_classes() -> tuple[ImageNetClass, ...]:
    """All 1000 classes in index order."""
    text = resources.files("impasto").joinpath("data/imagenet_classes.json").read_text(encoding="utf-8")
    rows = json.loads(text)["classes"]
    return tuple(ImageNetClass(i, wnid, tuple(names)) for i, (wnid, names) in enumerate(rows))


@functools.cache
def _name_index() -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for c in all_classes():
        for n in c.names:
            index.setdefault(normalize(n), []).append(c.index)
    return {k: tuple(dict.fromkeys(v)) for k, v in index.items()}


def suggestions(query: str, n: int = 5) -> list[ImageNetClass]:
    """Classes whose names are close to ``query`` (difflib ratio), best first."""
    q = normalize(query)
    names = list(_name_index())
    close = difflib.get_close_matches(q, names, n=n * 2, cutoff=0.6)
    out: list[ImageNetClass] = []
    for name in close:
        for idx in _name_index()[name]:
            c = all_classes()[idx]
            if c not in out:
                out.append(c)
    return out[:n]


def search(query: str | int | None = None) -> list[ImageNetClass]:
    """Classes matching ``query``: all for None/empty; the class for a number or WordNet id; otherwise every
    class with a name containing the query, exact name matches first, then prefix matches."""
    classes = all_classes()
    if query is None or (isinstance(query, str) and not query.strip()):
        return list(classes)
    if isinstance(query, int) or str(query).strip().isdigit():
        i = int(query)
        return [classes[i]] if 0 <= i < NUM_CLASSES else []
    q = normalize(str(query))
    if re.fullmatch(r"n\d{8}", q):
        return [c for c in classes if c.wnid == q]

    def rank(c: ImageNetClass) -> int:
        names = [normalize(n) for n in c.names]
        if q in names:
            return 0
        if any(n.startswith(q) for n in names):
            return 1
        if any(q in n.split(" ") for n in names) or any(n.startswith(q) for n in " ".join(names).split(" ")):
            return 2
        return 3

    hits = [c for c in classes if any(q in normalize(n) for n in c.names)]
    return sorted(hits, key=lambda c: (rank(c), c.index))


def _describe(c: ImageNetClass) -> str:
    return f"{c.index} ({', '.join(c.names[:2])}, WordNet {c.wnid})"


def resolve(spec: str | int) -> int:
    """The class index for a number, WordNet id or name; UnknownModelError (exit 2) with suggestions otherwise.

    An exact name shared by several classes (``crane``: the bird and the machine) is ambiguous and lists them;
    a fragment that occurs in exactly one class's names (``cheeseburg``) is accepted.
    """
    if isinstance(spec, bool):
        raise UnknownModelError(f"class must be a name or a number 0-{NUM_CLASSES - 1}; got {spec!r}")
    text = str(spec).strip()
    if isinstance(spec, int) or text.lstrip("-").isdigit():
        i = int(text)
        if not 0 <= i < NUM_CLASSES:
            raise UnknownModelError(f"class number {i} is out of range; ImageNet classes are 0-{NUM_CLASSES - 1}")
        return i
    if not text:
        raise UnknownModelError("class name is empty; give a name such as 'golden retriever' or a number 0-999")
    q = normalize(text)
    if re.fullmatch(r"n\d{8}", q):
        hit = [c.index for c in all_classes() if c.wnid == q]
        if hit:
            return hit[0]
    exact = _name_index().get(q, ())
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        primary = [i for i in exact if normalize(all_classes()[i].name) == q]
        if len(primary) == 1:
            return primary[0]
        options = "; ".join(_describe(all_classes()[i]) for i in exact)
        raise UnknownModelError(f"class name {text!r} is ambiguous: {options}; give the number instead")
    partial = search(q)
    if len(partial) == 1:
        return partial[0].index
    if partial:
        shown = "; ".join(_describe(c) for c in partial[:6])
        more = f" and {len(partial) - 6} more" if len(partial) > 6 else ""
        raise UnknownModelError(f"class {text!r} matches several classes: {shown}{more}; be more specific")
    near = suggestions(q)
    hint = f"; did you mean {', '.join(repr(c.name) + f' ({c.index})' for c in near)}?" if near else ""
    raise UnknownModelError(f"unknown ImageNet class {text!r}{hint} (search with 'impasto classes QUERY')")


def name_of(index: int) -> str:
    """The common name of class ``index``."""
    return all_classes()[index].name
