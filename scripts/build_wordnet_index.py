"""Build ``src/impasto/data/wordnet_names.json``: everyday words -> ImageNet classes, from WordNet 3.0.

impasto resolves a class name such as ``dog`` or ``soap bubble`` the way pytorch-pretrained-BigGAN's
``one_hot_from_names`` does, but without NLTK or WordNet at run time: this script runs the lookup once for every
WordNet noun and stores the answers as package data. Setup (Debian/Ubuntu)::

    apt-get update && apt-get install -y wordnet-base wordnet-sense-index   # WordNet 3.0 in /usr/share/wordnet
    .venv/bin/pip install nltk
    .venv/bin/python scripts/build_wordnet_index.py [--wordnet-dir /usr/share/wordnet]

NLTK's reader wants its files in one folder, including ``lexnames``, which Debian does not ship; the script copies
the database into a temporary folder (NLTK refuses symlinks that point outside its root) and writes ``lexnames``
there from the standard list of the 45 WordNet 3.0 lexicographer files.

The rule, for a word (lower case, spaces as ``_``; NLTK's ``wn.synsets`` also tries its base forms, so ``dogs``
finds ``dog``), over its noun senses in WordNet's order:

1. the first sense that is itself an ImageNet class (``'n%08d' % offset``);
2. else, sense by sense, the first ImageNet class among that sense's direct hypernyms, then its direct hyponyms.

That is the reference's rule. NLTK from 3.0 until recently returned hypernyms and hyponyms sorted by synset name
(``basenji.n.01`` before ``corgi.n.01``); current NLTK keeps them in a set, so the reference's answer for ``dog``
changes from run to run. impasto sorts them by synset name -- the answer the reference gave when it was written --
and so is deterministic.

Besides the chosen class, each word records the ImageNet classes it *covers*: those among the hyponyms, at any
depth, of any of its noun senses (``dog`` covers the dog breeds), plus the chosen class. ``impasto classes WORD``
lists them. Words that cover classes but get none by the rule (``animal``) are kept with no class, so impasto can
say so instead of "unknown class".

Licence: the index is derived from WordNet 3.0, Copyright 2006 by Princeton University, used under the WordNet 3.0
licence; its notice (``--license-out``, default ``src/impasto/data/WORDNET_LICENSE``) is written next to the index
and must ship with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from impasto.gan.classes import all_classes, normalize  # noqa: E402

log = logging.getLogger("build_wordnet_index")

FORMAT = 1
DEFAULT_WORDNET = Path("/usr/share/wordnet")
DEFAULT_OUT = ROOT / "src" / "impasto" / "data" / "wordnet_names.json"
DEFAULT_LICENSE_OUT = ROOT / "src" / "impasto" / "data" / "WORDNET_LICENSE"

# WordNet 3.0's lexicographer files in number order (lexnames(5WN)); NLTK reads them from a file ``lexnames``.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
_LEX_POS = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

WORDNET_LICENSE = """\
WordNet Release 3.0

impasto's wordnet_names.json is derived from the WordNet 3.0 database (lemma names, noun senses, hypernym and
hyponym pointers), used under the licence below.

This software and database is being provided to you, the LICENSEE, by
Princeton University under the following license.  By obtaining, using
and/or copying this software and database, you agree that you have
read, understood, and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and
database and its documentation for any purpose and without fee or
royalty is hereby granted, provided that you agree to comply with
the following copyright notice and statements, including the disclaimer,
and that the same appear on ALL copies of the software, database and
documentation, including modifications that you make for internal
use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR
IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-
ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE
OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT
INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR
OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in
advertising or publicity pertaining to distribution of the software
and/or database.  Title to copyright in this software, database and
any associated documentation shall at all times remain with
Princeton University and LICENSEE agrees to preserve same.
"""

RULE = (
    "pytorch-pretrained-BigGAN's one_hot_from_names over WordNet 3.0 noun senses in WordNet order: the first sense "
    "that is an ImageNet class ('same'), else per sense the first ImageNet class among its direct hypernyms "
    "('hyper': the word is a kind of the class), then its direct hyponyms ('hypo': the class is a kind of the word), "
    "each list sorted by synset name. 'covers': ImageNet classes among all hyponyms of all noun senses, plus the "
    "chosen class."
)


def nltk_data_root(wordnet_dir: Path, work: Path) -> Path:
    """Lay out ``work`` as an NLTK data folder (``corpora/wordnet``) holding a copy of ``wordnet_dir``.

    Returns ``work``, also put first on ``nltk.data.path`` so that ``from nltk.corpus import wordnet`` finds it
    and NLTK's path checks accept it.
    """
    import nltk

    target = work / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    needed = ["data.noun", "index.noun", "noun.exc"]
    missing = [n for n in needed if not (wordnet_dir / n).is_file()]
    if missing:
        raise SystemExit(
            f"{wordnet_dir} has no {', '.join(missing)}: install WordNet 3.0 "
            "(apt-get install wordnet-base wordnet-sense-index) or pass --wordnet-dir"
        )
    for f in wordnet_dir.iterdir():
        if f.is_file():
            shutil.copyfile(f, target / f.name)
    if not (target / "lexnames").is_file():
        rows = (f"{i:02d}\t{name}\t{_LEX_POS[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))
        (target / "lexnames").write_text("".join(rows), encoding="ascii")
    if str(work) not in nltk.data.path:
        nltk.data.path.insert(0, str(work))
    return work


def open_wordnet(wordnet_dir: Path, work: Path) -> Any:
    """An NLTK ``WordNetCorpusReader`` over the WordNet 3.0 files in ``wordnet_dir`` (copied under ``work``)."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = nltk_data_root(wordnet_dir, work) / "corpora" / "wordnet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": we need English only
        wn = WordNetCorpusReader(str(root), None)
    if wn.get_version() != "3.0":
        raise SystemExit(f"{wordnet_dir} holds WordNet {wn.get_version()}; ImageNet's ids are WordNet 3.0 offsets")
    return wn


def imagenet_offsets() -> dict[int, int]:
    """WordNet noun offset -> ImageNet class index, from impasto's class table."""
    return {int(c.wnid[1:]): c.index for c in all_classes()}


def noun_senses(wn: Any, word: str) -> list[Any]:
    """The reference's ``wn.synsets(name)`` restricted to nouns (base forms included)."""
    return [s for s in wn.synsets(word.replace(" ", "_")) if s.pos() == "n"]


def by_name(synsets: Iterable[Any]) -> list[Any]:
    """Synsets sorted by name: the order NLTK's ``hypernyms()``/``hyponyms()`` used to return."""
    return sorted(synsets, key=lambda s: s.name())


def lookup(senses: list[Any], imagenet: dict[int, int]) -> tuple[int | None, str]:
    """(class, how) by the rule in the module docstring; (None, "") when it finds nothing."""
    for s in senses:
        if s.offset() in imagenet:
            return imagenet[s.offset()], "same"
    for s in senses:
        for how, related in (("hyper", s.hypernyms()), ("hypo", s.hyponyms())):
            for r in by_name(related):
                if r.offset() in imagenet:
                    return imagenet[r.offset()], how
    return None, ""


def covered(senses: list[Any], imagenet: dict[int, int], cache: dict[int, frozenset[int]]) -> frozenset[int]:
    """ImageNet classes among the senses and all their hyponyms (instance hyponyms too), at any depth."""

    def below(s: Any) -> frozenset[int]:
        key = s.offset()
        if key not in cache:
            cache[key] = frozenset()  # WordNet's noun hierarchy has no cycles; this only guards against one
            found = {imagenet[key]} if key in imagenet else set()
            for h in s.hyponyms() + s.instance_hyponyms():
                found |= below(h)
            cache[key] = frozenset(found)
        return cache[key]

    out: frozenset[int] = frozenset()
    for s in senses:
        out |= below(s)
    return out


def exception_forms(wordnet_dir: Path) -> list[str]:
    """Irregular noun forms from ``noun.exc`` (``mice``, ``geese``), which ``wn.synsets`` maps to base forms."""
    forms = []
    for line in (wordnet_dir / "noun.exc").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            forms.append(parts[0])
    return forms


def build(wn: Any, wordnet_dir: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The index document and some counts."""
    imagenet = imagenet_offsets()
    cache: dict[int, frozenset[int]] = {}
    lemmas = sorted(wn.all_lemma_names(pos="n"))
    extra = sorted(set(exception_forms(wordnet_dir)) - set(lemmas))
    entries: dict[str, tuple[str, int | None, str, tuple[int, ...]]] = {}
    stats = {"noun lemmas": len(lemmas), "exception forms": len(extra), "collisions": 0}
    for raw in lemmas + extra:
        senses = noun_senses(wn, raw)
        if not senses:
            continue
        index, how = lookup(senses, imagenet)
        cover = covered(senses, imagenet, cache)
        if index is not None:
            cover |= {index}
        if index is None and not cover:
            continue
        key = normalize(raw)
        new = (raw, index, how, tuple(sorted(cover)))
        if key in entries:
            stats["collisions"] += 1
            old = entries[key]
            # "t-shirt" and "t_shirt" normalise alike: keep the form a query typed with spaces reaches in NLTK
            if old[0].replace("_", " ") == key or new[0].replace("_", " ") != key:
                continue
        entries[key] = new

    groups: dict[tuple[int, ...], int] = {}
    names: dict[str, list[Any]] = {}
    for key in sorted(entries):
        _, index, how, cover = entries[key]
        group = groups.setdefault(cover, len(groups))
        names[key] = [index, how, group]
    stats["names"] = len(names)
    stats["names with a class"] = sum(1 for v in names.values() if v[0] is not None)
    stats["groups"] = len(groups)
    doc = {
        "format": FORMAT,
        "source": "WordNet 3.0 (Princeton University), built by scripts/build_wordnet_index.py",
        "license": "WordNet 3.0 licence: see WORDNET_LICENSE beside this file",
        "rule": RULE,
        "fields": "names: word -> [class index or null, how ('same'|'hyper'|'hypo'|''), covers group]",
        "groups": [list(g) for g in groups],
        "names": names,
    }
    return doc, stats


def dump(doc: dict[str, Any]) -> str:
    """``doc`` as JSON with one group and one name per line (small, and a rebuild diffs line by line)."""

    def compact(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    parts = []
    for key, value in doc.items():
        if key == "groups":
            parts.append('"groups":[\n' + ",\n".join(compact(g) for g in value) + "\n]")
        elif key == "names":
            parts.append('"names":{\n' + ",\n".join(f"{compact(k)}:{compact(v)}" for k, v in value.items()) + "\n}")
        else:
            parts.append(f"{compact(key)}:{compact(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wordnet-dir", type=Path, default=DEFAULT_WORDNET, help="WordNet 3.0 dict folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="index to write (JSON)")
    ap.add_argument("--license-out", type=Path, default=DEFAULT_LICENSE_OUT, help="licence notice to write")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="impasto-wordnet-") as work:
        wn = open_wordnet(args.wordnet_dir, Path(work))
        doc, stats = build(wn, args.wordnet_dir)
    text = dump(doc)
    args.out.write_text(text, encoding="utf-8")
    args.license_out.write_text(WORDNET_LICENSE, encoding="utf-8")
    log.info("%s", ", ".join(f"{k}: {v}" for k, v in stats.items()))
    log.info("wrote %s (%d bytes) and %s", args.out, len(text.encode()), args.license_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
