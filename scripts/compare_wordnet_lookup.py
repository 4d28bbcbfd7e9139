"""Compare impasto's class-name lookup with pytorch-pretrained-BigGAN's ``one_hot_from_names`` (NLTK + WordNet).

The reference is not a dependency and none of its code is in impasto: this script imports its
``pytorch_pretrained_biggan/utils.py`` from a checkout given on the command line (it needs numpy, scipy and nltk)
and runs it against the WordNet 3.0 files (Debian: ``apt-get install wordnet-base wordnet-sense-index``)::

    git clone https://github.com/huggingface/pytorch-pretrained-BigGAN /tmp/ppb
    .venv/bin/pip install nltk scipy
    .venv/bin/python scripts/compare_wordnet_lookup.py --reference /tmp/ppb [--sample 0] [--json out.json]

Names compared: about 300 everyday words (some plural) and a sample of WordNet noun lemmas (``--sample 0``: all of
them). For each it records the reference's class (None when it returns None or fails its assertion, which it does
for a word with noun senses but no class), impasto's WordNet index (``wordnet_lookup``) and impasto's full
``resolve`` (class names first, then the index, then unique fragments). Disagreements are sorted into reasons:

* ``order``: both answers are ImageNet classes in the same list of hypernyms or hyponyms, whose order current
  NLTK leaves to a set (impasto sorts by synset name, as NLTK did when the reference was written);
* ``plural``: a regular plural that impasto reduces to one singular where NLTK pools several;
* ``hyphen``: impasto reads ``-`` as a space, so ``pica-pica`` gets the entry of the lemma ``pica_pica``;
* ``class name``: impasto matched the name in its class table before WordNet (``crane`` is ambiguous there);
* ``fragment``: the reference found nothing and impasto accepted a fragment of one class's names (``number``: a
  lemma such as ``16`` that impasto reads as a class number);
* ``other``: anything else (printed in full).

The run is repeated with NLTK's hypernyms()/hyponyms() patched to return sorted lists (NLTK's old behaviour), where
the index should agree everywhere. Exit status 0; 1 when an ``other`` disagreement is found.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import build_wordnet_index as bwi  # noqa: E402

from impasto.errors import UnknownModelError  # noqa: E402
from impasto.gan import classes as impasto_classes_module  # noqa: E402
from impasto.gan.classes import normalize, resolve, wordnet_lookup  # noqa: E402

EVERYDAY = """
dog cat car bird flower hamburger soap_bubble coffee mushroom puppy kitten horse cow pig sheep goat chicken duck
goose swan owl eagle hawk parrot penguin pelican flamingo ostrich peacock hummingbird fish shark whale dolphin
seal octopus squid crab lobster shrimp jellyfish starfish snail slug worm butterfly moth bee wasp ant beetle
spider scorpion fly mosquito dragonfly grasshopper cricket frog toad turtle tortoise lizard snake crocodile
alligator dinosaur elephant giraffe zebra lion tiger leopard cheetah bear panda koala kangaroo monkey ape gorilla
chimpanzee orangutan fox wolf deer moose rabbit hare squirrel mouse rat hamster hedgehog bat camel llama hippo
rhinoceros buffalo bison otter beaver raccoon skunk badger boat ship yacht canoe submarine airplane plane
helicopter rocket train truck bus bicycle bike motorcycle scooter tractor tank taxi van ambulance jeep
wagon sled skateboard house castle church tower bridge lighthouse barn tent palace mosque temple library
restaurant bakery school shop fountain dam fence wall door window roof stairs chair table bed sofa couch desk
lamp clock mirror piano guitar violin drum trumpet flute harp accordion banjo saxophone computer laptop phone
telephone television radio camera keyboard screen printer book pen pencil paper bottle cup mug glass bowl
plate spoon fork knife pot pan kettle teapot oven stove refrigerator toaster microwave umbrella hat cap shoe
boot sock shirt dress skirt coat jacket sweater scarf glove tie belt bag backpack purse wallet watch ring
necklace glasses sunglasses mask helmet ball balloon kite toy doll teddy_bear puzzle robot candle key lock
hammer saw screwdriver shovel axe broom bucket basket box barrel chest ladder rope chain wheel tire engine
apple banana orange lemon strawberry pineapple grape cherry peach pear fig pomegranate melon watermelon
vegetable fruit broccoli cauliflower cabbage cucumber pepper potato corn carrot onion garlic tomato pumpkin
squash bread cake pie pizza sandwich burger hotdog cheese egg soup salad pasta spaghetti ice_cream chocolate
candy cookie donut pretzel bagel wine beer tea juice milk water tree forest mountain hill volcano beach sea
ocean lake river waterfall cliff valley desert island reef cave sky cloud rainbow sun moon star snow
person man woman baby child boy girl soldier doctor diver bride player scuba_diver
dogs cats cars birds flowers boxes buses mice geese horses trees churches knives wolves matches dresses foxes
""".split()


def load_reference(path: Path) -> ModuleType:
    """The reference's ``utils`` module, imported from a checkout (or the file itself) without its package."""
    utils = path if path.suffix == ".py" else path / "pytorch_pretrained_biggan" / "utils.py"
    if not utils.is_file():
        raise SystemExit(f"no pytorch_pretrained_biggan/utils.py in {path}: not a pytorch-pretrained-BigGAN checkout")
    spec = importlib.util.spec_from_file_location("ppb_reference_utils", utils)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_class(ref: ModuleType, name: str) -> int | None:
    """The reference's class for one name: argmax of its one-hot row, None when it finds none."""
    try:
        y = ref.one_hot_from_names(name, batch_size=1)
    except AssertionError:  # noun senses but no class: it builds an empty batch
        return None
    return None if y is None else int(y.argmax(1)[0])


def impasto_classes(name: str) -> tuple[int | None, int | None]:
    """(the WordNet index's class, ``resolve``'s class) for one name; None for none."""
    match = wordnet_lookup(name)
    try:
        full: int | None = resolve(name)
    except UnknownModelError:
        full = None
    return (match.index if match else None), full


def candidate_block(wn: Any, name: str, imagenet: dict[int, int]) -> set[int]:
    """ImageNet classes the reference may pick for ``name`` depending on NLTK's order (its first non-empty list)."""
    senses = bwi.noun_senses(wn, name)
    direct = [imagenet[s.offset()] for s in senses if s.offset() in imagenet]
    if direct:
        return {direct[0]}
    for s in senses:
        for related in (s.hypernyms(), s.hyponyms()):
            block = {imagenet[r.offset()] for r in related if r.offset() in imagenet}
            if block:
                return block
    return set()


_LEMMAS: dict[int, set[str]] = {}


def noun_lemma(wn: Any, name: str) -> bool:
    """Whether ``name`` is itself a WordNet noun (not only an inflected form of one)."""
    if id(wn) not in _LEMMAS:
        _LEMMAS[id(wn)] = {normalize(x) for x in wn.all_lemma_names(pos="n")}
    return normalize(name) in _LEMMAS[id(wn)]


@contextlib.contextmanager
def sorted_relations() -> Iterator[None]:
    """Patch NLTK's Synset.hypernyms/hyponyms to return lists sorted by synset name (NLTK 3.0-3.8 behaviour)."""
    from nltk.corpus.reader.wordnet import Synset

    saved = Synset.hypernyms, Synset.hyponyms
    Synset.hypernyms = lambda self: sorted(saved[0](self), key=lambda s: s.name())  # type: ignore[method-assign]
    Synset.hyponyms = lambda self: sorted(saved[1](self), key=lambda s: s.name())  # type: ignore[method-assign]
    try:
        yield
    finally:
        Synset.hypernyms, Synset.hyponyms = saved  # type: ignore[method-assign]


def reason(wn: Any, reference: ModuleType, name: str, ref: int | None, index: int | None, full: int | None) -> str:
    """Why impasto's ``resolve`` and the reference differ for ``name`` (see the module docstring)."""
    block = candidate_block(wn, name, bwi.imagenet_offsets())
    if ref is not None and index is not None and full == index and {ref, index} <= block:
        return "order"
    if "-" in name and index == full and reference_class(reference, name.replace("-", "_")) == index:
        return "hyphen"
    if ref is None and index is None and full is not None:
        return "number" if name.strip().isdigit() else "fragment"
    if full != index and index == ref:
        return "class name"
    if wordnet_lookup(name) is not None and not noun_lemma(wn, name):
        return "plural"
    return "other"


def compare(wn: Any, ref: ModuleType, names: list[str]) -> dict[str, Any]:
    """Agreement counts over ``names`` and the disagreements with their reasons."""
    imagenet = bwi.imagenet_offsets()
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    order_sensitive = 0
    for name in names:
        r = reference_class(ref, name)
        index, full = impasto_classes(name)
        counts["names"] += 1
        counts["reference finds a class"] += r is not None
        counts["index agrees"] += index == r
        counts["resolve agrees"] += full == r
        if len(candidate_block(wn, name, imagenet)) > 1:
            order_sensitive += 1
        if full != r:
            why = reason(wn, ref, name, r, index, full)
            reasons[why] += 1
            examples.setdefault(why, [])
            if why == "other" or len(examples[why]) < 8:
                examples[why].append(f"{name}: reference {r}, index {index}, resolve {full}")
    return {
        **counts,
        "order-sensitive (several candidates in the list the reference takes first)": order_sensitive,
        "disagreements by reason": dict(reasons),
        "examples": examples,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, required=True, help="pytorch-pretrained-BigGAN checkout or its utils.py")
    ap.add_argument("--wordnet-dir", type=Path, default=bwi.DEFAULT_WORDNET, help="WordNet 3.0 dict folder")
    ap.add_argument("--sample", type=int, default=5000, help="WordNet noun lemmas to sample (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="seed for the sample")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--names", nargs="+", help="compare only these names")
    args = ap.parse_args(argv)
    # difflib suggestions only word resolve's error message and cost ~8 ms a miss: skip them here
    impasto_classes_module.suggestions = lambda query, n=5: []  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="impasto-wordnet-") as work:
        wn = bwi.open_wordnet(args.wordnet_dir, Path(work))  # also puts the copy on nltk.data.path for the reference
        ref = load_reference(args.reference)
        ref_table = {f"n{offset:08d}": i for offset, i in ref.IMAGENET.items()}
        ours = {f"n{offset:08d}": i for offset, i in bwi.imagenet_offsets().items()}
        if ref_table != ours:
            raise SystemExit("the reference's ImageNet table differs from impasto's imagenet_classes.json")
        lemmas = sorted(wn.all_lemma_names(pos="n"))
        sample = lemmas if args.sample <= 0 else random.Random(args.seed).sample(lemmas, min(args.sample, len(lemmas)))
        report: dict[str, Any] = {}
        runs = [("given", args.names)] if args.names else [("everyday", EVERYDAY), ("wordnet", sample)]
        for label, names in runs:
            report[label] = compare(wn, ref, names)
            with sorted_relations():
                report[label + ", NLTK order sorted by name"] = compare(wn, ref, names)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    others = sum(r["disagreements by reason"].get("other", 0) for r in report.values())
    return 1 if others else 0


if __name__ == "__main__":
    raise SystemExit(main())
