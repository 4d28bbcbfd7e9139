"""The 1000 ImageNet (ILSVRC-2012) classes BigGAN is conditioned on: names, synonyms, everyday words and search.

Shipped as package data (``impasto/data/imagenet_classes.json``: WordNet id and comma-separated synonyms per
class, in the standard index order). A class is named by its number (0-999), its WordNet id (``n07697313``) or any
of its names, case-insensitively; near misses get suggestions.

Everyday words that are not class names (``dog``, ``coffee``, ``soap bubble``) go through a WordNet index built
ahead of time (``impasto/data/wordnet_names.json``, by ``scripts/build_wordnet_index.py``; WordNet 3.0 licence in
``impasto/data/WORDNET_LICENSE``), so no NLTK or WordNet is needed at run time. It follows pytorch-pretrained-BigGAN's
``one_hot_from_names``: over the word's noun senses in WordNet's order, the first sense that is an ImageNet class,
else sense by sense the first ImageNet class among its direct hypernyms, then its direct hyponyms. The reference
takes those in NLTK's order, which current NLTK leaves to a set (it varies between runs); impasto sorts them by
synset name, as NLTK did when the reference was written, so ``dog`` is always 253 basenji. Each word also lists
the classes it covers (all ImageNet hyponyms of its senses: ``dog`` -> the dog breeds), which :func:`search` and
``impasto classes WORD`` show. Regular plurals (``dogs``, ``boxes``) are reduced as WordNet's morphy does;
irregular ones (``mice``) are in the index.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import re
import shlex
from dataclasses import dataclass
from importlib import resources

from ..errors import UnknownModelError

log = logging.getLogger(__name__)

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
def _normalized_names() -> tuple[tuple[str, ...], ...]:
    """Each class's names, normalised, by class index."""
    return tuple(tuple(normalize(n) for n in c.names) for c in all_classes())


@functools.cache
def _name_index() -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for c in all_classes():
        for n in c.names:
            index.setdefault(normalize(n), []).append(c.index)
    return {k: tuple(dict.fromkeys(v)) for k, v in index.items()}


@dataclass(frozen=True)
class WordNetMatch:
    """What the WordNet index says about a word.

    ``word`` is the index entry used (the query, or its singular for a regular plural); ``index`` the class the
    reference's rule picks, or None when the word only covers classes (``animal``); ``relation`` how it was found:
    ``"same"`` (a sense of the word is that class), ``"hypo"`` (the class is a kind of the word) or ``"hyper"``
    (the word is a kind of the class); ``covers`` every class under the word's senses, in index order.
    """

    word: str
    index: int | None
    relation: str
    covers: tuple[int, ...]


# WordNet's "morphy" detachment rules for nouns, in NLTK's order (irregular plurals are entries of the index).
_NOUN_SUFFIXES = (
    ("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
    ("men", "man"), ("ies", "y"),
)  # fmt: skip


@functools.cache
def _wordnet_index() -> tuple[dict[str, tuple[int | None, str, int]], tuple[tuple[int, ...], ...]]:
    text = resources.files("impasto").joinpath("data/wordnet_names.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    if doc.get("format") != 1:
        raise RuntimeError(f"impasto/data/wordnet_names.json has format {doc.get('format')!r}; expected 1")
    groups = tuple(tuple(g) for g in doc["groups"])
    names = {k: (v[0], v[1], v[2]) for k, v in doc["names"].items()}
    return names, groups


def wordnet_lookup(query: str) -> WordNetMatch | None:
    """The WordNet index's entry for ``query`` (any case, ``_``/``-`` as spaces), or None if it has none.

    A word not in the index is tried as a regular plural (``dogs`` -> ``dog``); when several singulars exist, the
    first that is itself an ImageNet class wins, else the first with a class, else the first covering classes
    (NLTK pools their senses; this gives the same answer unless two singulars pick different classes).
    """
    names, groups = _wordnet_index()
    q = normalize(query)
    if not q:
        return None
    if q in names:
        found = [q]
    else:
        forms = [q[: -len(old)] + new for old, new in _NOUN_SUFFIXES if q.endswith(old) and len(q) > len(old)]
        found = list(dict.fromkeys(f for f in forms if f in names))
        if not found:
            return None
    best = (
        next((w for w in found if names[w][1] == "same"), None)
        or next((w for w in found if names[w][0] is not None), None)
        or found[0]
    )
    index, relation, group = names[best]
    return WordNetMatch(best, index, relation, groups[group])


def explain(query: str | int) -> str | None:
    """One line saying which class a word that is not a class name becomes, or None when there is nothing to say.

    None for numbers, WordNet ids, class names and words impasto does not know. For example::

        "dog" is not an ImageNet class name; using 253 basenji (WordNet: a kind of dog); list its siblings with:
        impasto classes dog
    """
    if isinstance(query, int) or not str(query).strip():
        return None
    text = str(query).strip()
    q = normalize(text)
    if q.lstrip("-").isdigit() or re.fullmatch(r"n\d{8}", q) or q in _name_index():
        return None
    match = wordnet_lookup(q)
    if match is None or match.index is None:
        fragment = [] if match is not None else _fragment_matches(q)
        if len(fragment) != 1:
            return None
        c = fragment[0]
        name = next(n for n, m in zip(c.names, _normalized_names()[c.index], strict=True) if q in m)
        return f'"{text}" is not an ImageNet class name; using {c.label()} (part of its name "{name}")'
    c = all_classes()[match.index]
    if match.relation == "same":
        why = f"WordNet: one sense of {match.word}, {c.wnid}"
    elif match.relation == "hypo":
        why = f"WordNet: a kind of {match.word}"
    else:
        why = f"WordNet: {match.word} is a kind of {c.name}"
    line = f'"{text}" is not an ImageNet class name; using {c.label()} ({why})'
    if len(match.covers) > 1:
        line += f"; list its siblings with: impasto classes {shlex.quote(text)}"
    return line


def coverage_note(query: str | int | None) -> str | None:
    """One line about the classes a WordNet word covers (for ``impasto classes WORD``), or None.

    For example ``WordNet: "dog" covers 118 ImageNet classes; --class dog gives 253 basenji``.
    """
    if query is None or isinstance(query, int) or not str(query).strip():
        return None
    text = str(query).strip()
    match = wordnet_lookup(text)
    if match is None or normalize(text) in _name_index():
        return None
    n = len(match.covers)
    plural = "es" if n != 1 else ""
    covers = f'WordNet: "{text}" covers {n} ImageNet class{plural}'
    if match.index is None:
        return f"{covers}; none is picked for --class {shlex.quote(text)}, so give one of them"
    return f"{covers}; --class {shlex.quote(text)} gives {all_classes()[match.index].label()}"


def _fragment_matches(q: str) -> list[ImageNetClass]:
    """Classes with a name containing the normalised query ``q``, in index order."""
    return [c for c in all_classes() if any(q in n for n in _normalized_names()[c.index])]


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
    class with a name containing the query and every class the query covers as a WordNet word (``dog``: the dog
    breeds). Exact name matches come first, then the WordNet classes, then prefix matches, then the rest."""
    classes = all_classes()
    if query is None or (isinstance(query, str) and not query.strip()):
        return list(classes)
    if isinstance(query, int) or str(query).strip().isdigit():
        i = int(query)
        return [classes[i]] if 0 <= i < NUM_CLASSES else []
    q = normalize(str(query))
    if re.fullmatch(r"n\d{8}", q):
        return [c for c in classes if c.wnid == q]

    match = wordnet_lookup(q)
    wordnet = set(match.covers) if match is not None else set()

    def rank(c: ImageNetClass) -> int:
        names = _normalized_names()[c.index]
        if q in names:
            return 0
        if c.index in wordnet:
            return 1
        if any(n.startswith(q) for n in names):
            return 2
        if any(q in n.split(" ") for n in names) or any(n.startswith(q) for n in " ".join(names).split(" ")):
            return 3
        return 4

    fragment = {c.index for c in _fragment_matches(q)}
    hits = [c for c in classes if c.index in wordnet or c.index in fragment]
    return sorted(hits, key=lambda c: (rank(c), c.index))


def _describe(c: ImageNetClass) -> str:
    return f"{c.index} ({', '.join(c.names[:2])}, WordNet {c.wnid})"


def resolve(spec: str | int) -> int:
    """The class index for a number, WordNet id or name; UnknownModelError (exit 2) with suggestions otherwise.

    In order: a number, a WordNet id, a class name or synonym (one shared by several classes, ``crane``: the bird
    and the machine, is ambiguous and lists them), an everyday word through the WordNet index (``dog`` -> 253, see
    the module docstring and :func:`explain`), then a fragment that occurs in exactly one class's names
    (``cheeseburg``).
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
    match = wordnet_lookup(q)
    if match is not None and match.index is not None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", explain(text))
        return match.index
    if match is not None:  # a WordNet word for some classes, none picked: a fragment would be a worse guess
        if len(match.covers) <= 3:
            listed = ", ".join(all_classes()[i].label() for i in match.covers)
            raise UnknownModelError(f"{text!r} is a WordNet word covering {listed} but not a class; give one of them")
        raise UnknownModelError(
            f"{text!r} is a WordNet word covering {len(match.covers)} ImageNet classes but not a class; "
            f"pick one from: impasto classes {shlex.quote(text)}"
        )
    partial = _fragment_matches(q)
    if len(partial) == 1:
        return partial[0].index
    partial = search(q)
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
