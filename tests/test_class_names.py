"""Everyday class names through impasto's WordNet index: resolve, one_hot_from_names, explain, ``impasto classes``.

The index (``impasto/data/wordnet_names.json``) is built by ``scripts/build_wordnet_index.py``. The last tests
rebuild entries from WordNet with NLTK, and compare with pytorch-pretrained-BigGAN's own lookup, when those are
installed; they are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from impasto.cli.main import main
from impasto.errors import UnknownModelError
from impasto.gan import classes as cls
from impasto.gan import one_hot_from_names

ROOT = Path(__file__).resolve().parent.parent
WORDNET_DIR = Path(os.environ.get("WORDNET_DIR", "/usr/share/wordnet"))

# Words that are not class names, with the class the reference's WordNet rule gives (hypernyms/hyponyms sorted by
# synset name). A change here is a change in behaviour: rebuild the index only on purpose.
EVERYDAY = {
    "dog": 253, "cat": 293, "car": 407, "bird": 7, "flower": 985, "hamburger": 933, "soap bubble": 971,
    "coffee": 967, "horse": 339, "sheep": 348, "duck": 97, "swan": 100, "owl": 24, "eagle": 22, "parrot": 87,
    "penguin": 145, "shark": 4, "dolphin": 148, "crab": 118, "lobster": 123, "butterfly": 326, "beetle": 302,
    "spider": 73, "frog": 32, "snake": 65, "crocodile": 49, "elephant": 386, "bear": 295, "kangaroo": 104,
    "fox": 279, "wolf": 272, "rabbit": 332, "camel": 354, "boat": 554, "ship": 724, "airplane": 404,
    "rocket": 657, "truck": 555, "bus": 654, "bicycle": 444, "bike": 444, "van": 675, "house": 498, "tower": 437,
    "bridge": 821, "tent": 672, "chair": 423, "table": 526, "bed": 564, "lamp": 470, "clock": 409, "mirror": 475,
    "piano": 579, "guitar": 402, "computer": 916, "telephone": 528, "camera": 732, "keyboard": 508, "pen": 418,
    "bottle": 440, "glass": 441, "bowl": 659, "knife": 499, "oven": 544, "hat": 439, "shoe": 630, "boot": 514,
    "dress": 578, "coat": 568, "sweater": 474, "glove": 658, "bag": 414, "watch": 531, "glasses": 837,
    "helmet": 715, "ball": 429, "toy": 843, "box": 478, "wheel": 479, "vegetable": 944, "fruit": 988,
    "cabbage": 936, "potato": 935, "sandwich": 934, "burger": 933, "soup": 925, "wine": 966, "mountain": 970,
    "reef": 973, "diver": 983,
}  # fmt: skip
PLURALS = {
    "dogs": 253, "cats": 293, "cars": 407, "birds": 7, "flowers": 985, "boxes": 478, "buses": 654, "horses": 339,
    "knives": 499, "wolves": 272, "foxes": 279, "dresses": 578, "mice": 673, "geese": 99, "soap bubbles": 971,
}  # fmt: skip
CLASS_NAMES = {"mushroom": 947, "pizza": 963, "hen": 8, "golden retriever": 207, "daisy": 985, "bubble": 971}
DOG_BREEDS = range(151, 269)  # 151 Chihuahua .. 268 Mexican hairless


@pytest.mark.parametrize(("name", "index"), sorted({**EVERYDAY, **PLURALS, **CLASS_NAMES}.items()))
def test_everyday_names_resolve(name: str, index: int) -> None:
    assert cls.resolve(name) == index
    assert cls.resolve(name.upper().replace(" ", "_")) == index  # any case, _ for spaces as in the reference


def test_fifty_plus_everyday_words() -> None:
    assert len(EVERYDAY) >= 50
    for name in EVERYDAY:
        assert cls.normalize(name) not in cls._name_index()  # really found through WordNet, not the class table
        assert cls.wordnet_lookup(name) is not None


def test_one_hot_from_names_uses_wordnet() -> None:
    y = one_hot_from_names(["soap bubble", "coffee", "mushroom", "dog"], batch_size=4)
    assert y.shape == (4, 1000) and y.dtype == np.float32 and y.sum() == 4
    assert list(y.argmax(1)) == [971, 967, 947, 253]
    y = one_hot_from_names("cat", batch_size=3)
    assert y.shape == (3, 1000) and (y.argmax(1) == 293).all()
    with pytest.raises(UnknownModelError):
        one_hot_from_names("xyzzyplugh")


def test_lookup_is_deterministic_across_processes() -> None:
    """Same answers whatever the hash seed (current NLTK's set order would change them)."""
    names = sorted(EVERYDAY)
    code = (
        "import json, sys; from impasto.gan.classes import resolve; "
        "print(json.dumps([resolve(n) for n in json.loads(sys.argv[1])]))"
    )
    runs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(names)], env=env, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout))
    assert runs[0] == runs[1] == [EVERYDAY[n] for n in names]


def test_wordnet_lookup_details() -> None:
    dog = cls.wordnet_lookup("Dog")
    assert dog is not None and (dog.word, dog.index, dog.relation) == ("dog", 253, "hypo")
    assert set(DOG_BREEDS) <= set(dog.covers) and len(dog.covers) == len(DOG_BREEDS)
    assert list(dog.covers) == sorted(dog.covers)
    assert cls.wordnet_lookup("dogs") == dog  # a regular plural reduces to the singular
    bubble = cls.wordnet_lookup("soap-bubble")
    assert bubble is not None and (bubble.index, bubble.relation, bubble.covers) == (971, "hyper", (971,))
    animal = cls.wordnet_lookup("animal")
    assert animal is not None and animal.index is None and len(animal.covers) == 398  # ImageNet's 0..397
    assert cls.wordnet_lookup("xyzzyplugh") is None and cls.wordnet_lookup("") is None


def test_explain_messages() -> None:
    assert cls.explain("dog") == (
        '"dog" is not an ImageNet class name; using 253 basenji (WordNet: a kind of dog); '
        "list its siblings with: impasto classes dog"
    )
    assert cls.explain("soap bubble") == (
        '"soap bubble" is not an ImageNet class name; using 971 bubble (WordNet: soap bubble is a kind of bubble)'
    )
    assert cls.explain("mice") == (
        '"mice" is not an ImageNet class name; using 673 mouse (WordNet: one sense of mice, n03793489)'
    )
    assert "impasto classes dogs" in cls.explain("dogs")
    assert cls.explain("cheeseburg") == (
        '"cheeseburg" is not an ImageNet class name; using 933 cheeseburger (part of its name "cheeseburger")'
    )
    for quiet in ("golden retriever", "Golden_Retriever", "207", 207, "n02099601", "", "xyzzyplugh", "animal"):
        assert cls.explain(quiet) is None


def test_words_that_cover_classes_but_pick_none() -> None:
    with pytest.raises(UnknownModelError, match="398 ImageNet classes.*impasto classes animal"):
        cls.resolve("animal")
    with pytest.raises(UnknownModelError, match="948 Granny Smith"):
        cls.resolve("apple")


def test_class_table_still_comes_first() -> None:
    assert cls.resolve("tank suit") == 639 and cls.resolve(933) == 933 and cls.resolve("n07697313") == 933
    with pytest.raises(UnknownModelError, match="ambiguous.*134.*517"):
        cls.resolve("crane")  # WordNet's first sense would be 517; the class table calls it ambiguous
    with pytest.raises(UnknownModelError, match="did you mean 'cheeseburger'"):
        cls.resolve("cheesburger")


def test_search_lists_what_a_word_covers() -> None:
    found = [c.index for c in cls.search("dog")]
    assert found[: len(DOG_BREEDS)] == list(DOG_BREEDS)  # the breeds first, then classes whose names say "dog"
    assert {934, 537} <= set(found)  # hotdog, dogsled
    assert [c.index for c in cls.search("retriever")] == [205, 206, 207, 208, 209]
    assert cls.search("cheeseburger")[0].index == 933


def test_classes_command_lists_dog_breeds(capsys) -> None:
    assert main(["classes", "dog"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) >= len(DOG_BREEDS)
    assert [int(line.split()[0]) for line in lines[: len(DOG_BREEDS)]] == list(DOG_BREEDS)
    assert any("207  golden retriever" in line for line in lines)
    assert 'WordNet: "dog" covers 118 ImageNet classes; --class dog gives 253 basenji' in captured.err
    assert main(["classes", "soap", "bubble"]) == 0  # several words are one query
    assert capsys.readouterr().out.split() == ["971", "bubble"]


def test_index_is_small_well_formed_and_licensed() -> None:
    data = resources.files("impasto").joinpath("data")
    raw = data.joinpath("wordnet_names.json").read_bytes()
    assert len(raw) < 1_000_000
    doc = json.loads(raw)
    assert doc["format"] == 1 and "WORDNET_LICENSE" in doc["license"]
    groups = doc["groups"]
    for name, (index, how, group) in doc["names"].items():
        assert name == cls.normalize(name)
        assert how in ("same", "hyper", "hypo", "")
        cover = groups[group]
        assert cover == sorted(set(cover)) and all(0 <= i < 1000 for i in cover)
        assert (index is None and how == "" and cover) or (index in cover and how)
    notice = data.joinpath("WORDNET_LICENSE").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice


# --- with NLTK and WordNet 3.0 installed: rebuild entries, and compare with the reference if it is given ---------


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):  # noqa: ANN001, ANN201
    pytest.importorskip("nltk", reason="nltk is not installed (pip install nltk) to check the index against WordNet")
    if not (WORDNET_DIR / "data.noun").is_file():
        pytest.skip(f"WordNet 3.0 is not in {WORDNET_DIR} (apt-get install wordnet-base wordnet-sense-index)")
    bwi = _script("build_wordnet_index")
    return bwi, bwi.open_wordnet(WORDNET_DIR, tmp_path_factory.mktemp("nltk-data"))


def test_index_matches_wordnet_sample(wordnet) -> None:  # noqa: ANN001
    import random

    bwi, wn = wordnet
    imagenet = bwi.imagenet_offsets()
    lemmas = sorted(wn.all_lemma_names(pos="n"))
    sample = random.Random(0).sample(lemmas, 2000) + [n.replace(" ", "_") for n in EVERYDAY]
    names, groups = cls._wordnet_index()
    for raw in sample:
        senses = bwi.noun_senses(wn, raw)
        index, how = bwi.lookup(senses, imagenet)
        cover = bwi.covered(senses, imagenet, {}) | ({index} if index is not None else set())
        entry = names.get(cls.normalize(raw))
        if index is None and not cover:
            assert entry is None or "-" in raw or "_" in raw, raw  # only a normalisation twin may have one
            continue
        assert entry is not None, raw
        if "-" not in raw:  # "x-y" and "x_y" share a key; the index keeps the spelled-with-spaces one
            assert (entry[0], entry[1], groups[entry[2]]) == (index, how, tuple(sorted(cover))), raw


def test_agrees_with_reference_when_order_is_fixed(wordnet) -> None:  # noqa: ANN001
    reference = os.environ.get("IMPASTO_BIGGAN_REFERENCE")
    if not reference:
        pytest.skip("set IMPASTO_BIGGAN_REFERENCE to a pytorch-pretrained-BigGAN checkout to compare with it")
    pytest.importorskip("scipy", reason="the reference's utils module imports scipy")
    import random

    bwi, wn = wordnet
    cmp = _script("compare_wordnet_lookup")
    ref = cmp.load_reference(Path(reference))
    lemmas = sorted(wn.all_lemma_names(pos="n"))
    names = random.Random(1).sample(lemmas, 500) + list(EVERYDAY) + list(PLURALS)
    with cmp.sorted_relations():  # NLTK's old sorted order: the reference is then deterministic
        report = cmp.compare(wn, ref, names)
    hyphen = report["disagreements by reason"].get("hyphen", 0)  # pica-pica shares pica_pica's entry
    assert report["names"] - report["index agrees"] <= hyphen, report["examples"]
    assert report["disagreements by reason"].get("other", 0) == 0, report["examples"]
