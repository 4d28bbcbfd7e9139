"""Learned linear style transfer: the reference's file formats, import from zip/folder/file, and `stylize --method
linear` end to end, on random full-size networks in the reference's exact formats (tests/linear_tiny.py)."""

from __future__ import annotations

import io
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import linear_tiny as lt
import numpy as np
import pytest
import tiny_weights as tw
import torch
from PIL import Image

from impasto import api
from impasto.cli.main import main
from impasto.errors import WeightsError
from impasto.fast.linear import LinearStylizer, default_method
from impasto.fast.magenta import StylizeOptions
from impasto.imaging import pil_to_tensor, rgb_to_ycbcr
from impasto.modelcache import ModelCache
from impasto.nets.linear import SPN, Decoder, Encoder, Transform
from impasto.zoo import linear_format, store

R41 = ("vgg_r41.pth", "dec_r41.pth", "r41.pth")
R31 = ("vgg_r31.pth", "dec_r31.pth", "r31.pth")
SIDE = 48  # style images at 48 px (the default, 256, is the reference's; here it would only cost time)


@pytest.fixture(scope="session")
def ref_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference's unzipped ``models/`` folder, every file, random weights."""
    return lt.write_all(tmp_path_factory.mktemp("linear") / "models")


@pytest.fixture(scope="session")
def ref_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``models.zip`` laid out like the reference's (r31 and r41 sets: all this suite imports from it)."""
    return lt.write_zip(tmp_path_factory.mktemp("linearzip") / "models.zip", files=R31 + R41)


def _install(folder: Path, layer: str = "r41") -> None:
    """Put a set's files straight into the cache (what an import does, without going through it)."""
    files = R41 if layer == "r41" else R31
    dest = store.weights_dir(f"linear.{layer}")
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dest / f).write_bytes((folder / f).read_bytes())


def _cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(list(argv))
    return code, buf.getvalue()


# --- the file formats ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", lt.FILES)
def test_every_reference_file_loads_with_its_keys_and_shapes(ref_files: Path, file: str) -> None:
    sd = torch.load(ref_files / file, weights_only=True)
    assert linear_format.identify(sd) == file
    module = linear_format.load_file(ref_files / file)  # recognised by its keys
    kind = SPN if file == "r41_spn.pth" else {"vgg": Encoder, "dec": Decoder}.get(file[:3], Transform)
    assert isinstance(module, kind)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == linear_format.reference_key_shapes(file)
    assert torch.equal(module.state_dict()[next(iter(sd))], sd[next(iter(sd))])


def test_reference_key_names() -> None:  # spot checks against libs/models.py, Matrix.py and SPN.py
    assert set(linear_format.reference_key_shapes("vgg_r41.pth")) == {
        f"conv{i}.{p}" for i in range(1, 11) for p in ("weight", "bias")
    }
    assert linear_format.reference_key_shapes("dec_r31.pth")["conv7.weight"] == (128, 256, 3, 3)
    r41 = linear_format.reference_key_shapes("r41.pth")
    assert r41["snet.convs.4.weight"] == (32, 128, 3, 3) and r41["cnet.fc.weight"] == (1024, 1024)
    assert r41["compress.weight"] == (32, 512, 1, 1) and r41["unzip.weight"] == (512, 32, 1, 1)
    spn = linear_format.reference_key_shapes("r41_spn.pth")
    assert spn["decoder.layer2.0.weight"] == (128, 128, 3, 3) and spn["decoder.layer7.weight"] == (384, 32, 3, 3)
    assert len(linear_format.reference_key_shapes("vgg_r51.pth")) == 28


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda sd: sd.pop("snet.fc.weight"), ["'snet.fc.weight' is missing"]),
        (lambda sd: sd.__setitem__("extra.weight", torch.zeros(1)), ["unexpected key 'extra.weight'"]),
        (lambda sd: sd.__setitem__("compress.weight", torch.zeros(16, 512, 1, 1)), ["'compress.weight'", "[32, 512"]),
    ],
)
def test_a_wrong_or_missing_key_gives_one_line_naming_it(ref_files: Path, tmp_path: Path, change, words) -> None:  # noqa: ANN001
    sd = torch.load(ref_files / "r41.pth", weights_only=True)
    change(sd)
    torch.save(sd, tmp_path / "r41.pth")
    with pytest.raises(WeightsError) as err:
        linear_format.load_file(tmp_path / "r41.pth", "r41.pth")
    assert "\n" not in str(err.value) and "r41.pth" in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_an_encoder_given_as_a_decoder_is_named(ref_files: Path) -> None:
    with pytest.raises(WeightsError, match="its keys are those of vgg_r41.pth"):
        linear_format.load_file(ref_files / "vgg_r41.pth", "dec_r41.pth")


# --- import through the CLI ---------------------------------------------------------------------------------------


def test_import_models_zip_then_stylize_uses_it(fresh_home, ref_zip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    code, out = _cli("models", "import", "linear.r41", str(ref_zip))
    assert code == 0 and out.count("\n") == 3
    assert store.is_installed("linear.r41") and not store.is_installed("linear.r31")
    tw.image(tmp_path / "photo.png", size=(40, 28))
    tw.image(tmp_path / "style.png", size=(48, 48), seed=2)
    code, out = _cli("-q", "stylize", str(tmp_path / "photo.png"), "--style", str(tmp_path / "style.png"),
                     "--method", "linear", "-o", str(tmp_path / "out.png"))  # fmt: skip
    assert code == 0, out
    assert Image.open(tmp_path / "out.png").size == (40, 28)
    assert _cli("models", "verify", "linear.r41")[0] == 0
    assert _cli("models", "import", "linear.r41", str(ref_zip))[0] == 1  # installed: needs --force


def test_import_the_unzipped_folder_and_its_parent(fresh_home, ref_files: Path) -> None:  # noqa: ANN001
    assert _cli("models", "import", "linear.r31", str(ref_files))[0] == 0
    assert _cli("models", "import", "linear.r41", str(ref_files.parent))[0] == 0  # holds models/
    assert store.is_installed("linear.r31") and store.is_installed("linear.r41")


def test_import_single_files(fresh_home, ref_files: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert _cli("models", "import", "linear.spn", str(ref_files / "r41_spn.pth"))[0] == 0
    assert _cli("models", "import", "linear.vgg_r51", str(ref_files / "vgg_r51.pth"))[0] == 0
    capsys.readouterr()
    # one member of a three-file set, before the others are there: refused, naming what is missing
    assert _cli("models", "import", "linear.r41", str(ref_files / "r41.pth"))[0] == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vgg_r41.pth, dec_r41.pth are not installed" in err
    # ... and once they are: a transformation module you trained replaces the installed one (found by its keys)
    assert _cli("models", "import", "linear.r41", str(ref_files))[0] == 0
    mine = tmp_path / "my_model.pth"
    torch.save(lt.state("r41.pth", seed=9), mine)
    assert _cli("models", "import", "linear.r41", str(mine), "--force")[0] == 0
    installed = torch.load(store.weights_dir("linear.r41") / "r41.pth", weights_only=True)
    assert torch.equal(installed["unzip.weight"], lt.state("r41.pth", seed=9)["unzip.weight"])
    capsys.readouterr()
    assert _cli("models", "import", "linear.r41", str(ref_files / "dec_r31.pth"), "--force")[0] == 1
    assert "it is dec_r31.pth" in capsys.readouterr().err


def test_a_zip_without_the_files_is_refused_in_one_line(fresh_home, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("models/readme.txt", "nothing")
    assert _cli("models", "import", "linear.r41", str(tmp_path / "other.zip"))[0] == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks vgg_r41.pth, dec_r41.pth, r41.pth" in err
    assert not store.weights_dir("linear.r41").exists() or not any(store.weights_dir("linear.r41").iterdir())


# --- offline, without the weights ------------------------------------------------------------------------------


def test_without_weights_linear_says_how_to_get_them(fresh_home, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    tw.image(tmp_path / "photo.png")
    tw.image(tmp_path / "style.png", seed=1)
    code, _ = _cli("stylize", str(tmp_path / "photo.png"), "--style", str(tmp_path / "style.png"),
                   "--method", "linear", "-o", str(tmp_path / "out.png"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "impasto models download linear.r41" in err and "impasto models import linear.r41" in err
    assert not (tmp_path / "out.png").exists()


def test_default_method(fresh_home, ref_files: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("IMPASTO_STYLIZE_METHOD", raising=False)
    assert api.stylize_method(None) == "magenta"  # offline default
    monkeypatch.setenv("IMPASTO_STYLIZE_METHOD", "linear")
    assert api.stylize_method(None) == "linear" and api.stylize_method(None, preset=True) == "magenta"
    monkeypatch.setenv("IMPASTO_STYLIZE_METHOD", "fancy")
    with pytest.raises(Exception, match="IMPASTO_STYLIZE_METHOD"):
        api.stylize_method(None)
    monkeypatch.delenv("IMPASTO_STYLIZE_METHOD")
    _install(ref_files, "r41")
    assert default_method(None) == "linear" and default_method(None, layer="r31") == "magenta"
    assert api.stylize_method("magenta") == "magenta"


# --- rendering ---------------------------------------------------------------------------------------------------


@pytest.fixture
def stylizer(fresh_home, ref_files: Path) -> LinearStylizer:  # noqa: ANN001
    _install(ref_files, "r41")
    _install(ref_files, "r31")
    return LinearStylizer("r41", device="cpu", fast=False, models=ModelCache(), style_side=SIDE)


@pytest.mark.parametrize("size", [(33, 17), (64, 40), (20, 70), (8, 8)])
@pytest.mark.parametrize("layer", ["r41", "r31"])
def test_any_size_and_aspect_comes_back_at_its_size(stylizer: LinearStylizer, size, layer: str) -> None:  # noqa: ANN001
    st = LinearStylizer(layer, device="cpu", models=stylizer.models, style_side=SIDE)
    style = st.prepare_style([tw.image(size=(40, 56), seed=4)])
    out = st.stylize(tw.image(size=size), style, StylizeOptions())
    assert out.size == size and out.mode == "RGB"


def test_two_styles_blend_between_the_two(stylizer: LinearStylizer) -> None:
    a, b = tw.image(size=(48, 48), seed=1), tw.image(size=(40, 64), seed=2)
    sa, sb = stylizer.prepare_style([a]), stylizer.prepare_style([b])
    mix = stylizer.prepare_style([a, b], [1.0, 3.0])
    assert torch.allclose(mix.matrix, 0.25 * sa.matrix + 0.75 * sb.matrix, atol=1e-6)
    assert torch.allclose(stylizer.prepare_style([a, b], [1, 0]).mean, sa.mean)
    x = pil_to_tensor(tw.image(size=(48, 32)))
    ya, yb, ym = (stylizer.render(x, s) for s in (sa, sb, mix))
    d_ab = (ya - yb).abs().mean()
    assert d_ab > 1e-3  # the two styles differ
    assert (ym - yb).abs().mean() < (ym - ya).abs().mean()  # weighted towards b


def test_strength_zero_is_the_decoded_photo(stylizer: LinearStylizer) -> None:
    x = pil_to_tensor(tw.image(size=(48, 32)))
    style = stylizer.prepare_style([tw.image(size=(48, 48), seed=5)])
    enc, dec, _ = stylizer.networks()
    with torch.inference_mode():
        decoded = dec(enc(x)).clamp(0, 1)
    out0 = stylizer.render(x, style, StylizeOptions(strength=0.0))
    out1 = stylizer.render(x, style, StylizeOptions(strength=1.0))
    assert (out0 - decoded).abs().max() < 1e-5
    assert (out1 - decoded).abs().mean() > 10 * (out0 - decoded).abs().mean() + 1e-3


def test_preserve_color_keeps_the_photos_chroma(stylizer: LinearStylizer) -> None:
    x = pil_to_tensor(tw.image(size=(48, 32), seed=3))
    style = stylizer.prepare_style([tw.image(size=(48, 48), seed=6)])
    plain = stylizer.render(x, style)
    kept = stylizer.render(x, style, StylizeOptions(preserve_color=True))
    chroma = lambda t: rgb_to_ycbcr(t)[:, 1:]  # noqa: E731
    assert (chroma(kept) - chroma(x)).abs().mean() < 0.02 < (chroma(plain) - chroma(x)).abs().mean()
    assert (rgb_to_ycbcr(kept)[:, :1] - rgb_to_ycbcr(plain)[:, :1]).abs().mean() < 0.02


def test_render_is_batched_and_matches_one_by_one(stylizer: LinearStylizer) -> None:
    frames = torch.stack([pil_to_tensor(tw.image(size=(40, 24), seed=s))[0] for s in range(3)])
    style = stylizer.prepare_style([tw.image(size=(48, 48), seed=7)])
    batch = stylizer.render(frames, style)
    assert batch.shape == frames.shape and 0 <= batch.min() <= batch.max() <= 1
    assert torch.allclose(batch[1:2], stylizer.render(frames[1:2], style), atol=1e-5)


def test_api_stylize_each_with_linear_and_a_preset_is_refused(stylizer: LinearStylizer) -> None:
    photos = [tw.image(size=(40, 30)), tw.image(size=(24, 50), seed=1)]
    done = list(api.stylize_each(photos, styles=[tw.image(seed=2)], method="linear", layer="r31", device="cpu"))
    assert [d.image.size for d in done] == [(40, 30), (24, 50)]
    with pytest.raises(Exception, match="--preset is Magenta.s"):
        api.stylize(photos[0], preset="3", method="linear")


def test_fast_recipe_stays_close_to_fp32(stylizer: LinearStylizer) -> None:
    fast = LinearStylizer("r41", device="cpu", fast=True, models=stylizer.models, style_side=SIDE)
    img, sty = tw.image(size=(64, 48), seed=8), tw.image(size=(64, 64), seed=9)
    a = np.asarray(stylizer.stylize(img, stylizer.prepare_style([sty]), StylizeOptions()), dtype=np.int16)
    b = np.asarray(fast.stylize(img, fast.prepare_style([sty]), StylizeOptions()), dtype=np.int16)
    assert np.abs(a - b).mean() < 1.0
