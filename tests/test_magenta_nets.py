"""The Magenta modules on random weights: shapes, sizes, named features, conditioning, errors. No files needed."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from impasto.devices import prepare_for_inference
from impasto.errors import ConfigError
from impasto.nets.magenta import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    PREDICTOR_LAYERS,
    MultiStyleTransformer,
    StylePredictor,
    StyleTransformer,
    conditional_instance_norm,
    reflect_pad,
    upsample2_reflect_pad1,
)


def _seeded(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter seeded random values (norm gammas near 1) so tests do not depend on init defaults."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.2 if p.dim() > 1 else 0.1))
            if name.endswith("gamma") or name.endswith("gamma.bias"):
                p.add_(1.0)
    return module.eval()


@pytest.fixture(scope="module")
def predictor() -> StylePredictor:
    return _seeded(StylePredictor())


def _image(n: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- instance norm ------------------------------------------------------------------------------------------------


def test_conditional_instance_norm_matches_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 7, 9, generator=gen) * 3 + 1
    gamma, beta = torch.randn(2, 5, generator=gen), torch.randn(2, 5, generator=gen)
    var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False, keepdim=True)
    want = gamma[:, :, None, None] * (x - mean) / torch.sqrt(var + 1e-5) + beta[:, :, None, None]
    torch.testing.assert_close(conditional_instance_norm(x, gamma, beta, 1e-5), want, atol=1e-5, rtol=1e-5)
    # channels_last in, same numbers out
    got_cl = conditional_instance_norm(x.contiguous(memory_format=torch.channels_last), gamma, beta, 1e-5)
    torch.testing.assert_close(got_cl, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_hand_written_pads_equal_the_stock_ops(channels_last: bool, dtype: torch.dtype) -> None:
    x = torch.randn(2, 5, 6, 9, generator=torch.Generator().manual_seed(1)).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for p in (1, 4):
        got = reflect_pad(x, p)
        assert torch.equal(got, F.pad(x, (p, p, p, p), mode="reflect"))
        assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    want = F.pad(F.interpolate(x, scale_factor=2.0, mode="nearest"), (1, 1, 1, 1), mode="reflect")
    got = upsample2_reflect_pad1(x)
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last


# --- predictor / feature network ----------------------------------------------------------------------------------


def test_predictor_vector_shape_and_layer_vocabulary(predictor: StylePredictor) -> None:
    assert predictor.layer_names == PREDICTOR_LAYERS
    assert set(DEFAULT_STYLE_LAYERS) <= set(PREDICTOR_LAYERS)
    assert set(DEFAULT_CONTENT_LAYERS) <= set(PREDICTOR_LAYERS)
    assert "block0_expand" not in PREDICTOR_LAYERS  # block 0 has no expansion conv
    with torch.no_grad():
        out = predictor(_image(2, 64, 80))
    assert out.shape == (2, 100)
    assert torch.isfinite(out).all()


def test_features_shapes_and_values_match_a_full_run(predictor: StylePredictor) -> None:
    x = _image(1, 64, 64)
    with torch.no_grad():
        everything = predictor.features(x, PREDICTOR_LAYERS)
        styles = predictor.features(x, DEFAULT_STYLE_LAYERS)
    assert set(styles) == set(DEFAULT_STYLE_LAYERS)
    shapes = {k: tuple(v.shape) for k, v in styles.items()}
    assert shapes == {
        "conv0": (1, 32, 32, 32),
        "block1_expand": (1, 96, 32, 32),
        "block3_expand": (1, 144, 16, 16),
        "block6_expand": (1, 192, 8, 8),
        "block11_expand": (1, 576, 4, 4),
    }
    for name, value in styles.items():  # stopping early changes nothing, and nothing was overwritten in place
        torch.testing.assert_close(value, everything[name], atol=0, rtol=0)
    # recompute the first tap by hand: TF "SAME" pads a 64-wide input by (0, 1) for a 3x3 stride-2 conv
    conv0 = F.relu6(predictor.conv0(F.pad(x, (0, 1, 0, 1))))
    torch.testing.assert_close(everything["conv0"], conv0)
    for name in ("conv0", "block6_expand", "block11_depthwise", "conv_last"):
        assert everything[name].min() >= 0 and everything[name].max() <= 6  # ReLU6 outputs
    assert (everything["block3_project"] < 0).any()  # projections are linear
    assert everything["pool"].shape == (1, 1280, 1, 1)


def test_features_run_only_as_deep_as_needed(predictor: StylePredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("ran deeper than the deepest requested layer")

    monkeypatch.setattr(predictor.blocks[7], "forward", boom)
    monkeypatch.setattr(predictor.blocks[7].expand, "forward", boom)
    monkeypatch.setattr(predictor.conv_last, "forward", boom)
    with torch.no_grad():
        out = predictor.features(_image(1, 48, 48), ["block6_project", "conv0"])
    assert set(out) == {"block6_project", "conv0"}


def test_features_carry_gradients_to_the_image(predictor: StylePredictor) -> None:
    x = _image(1, 40, 40).requires_grad_(True)
    feats = predictor.features(x, ["conv0", "block6_expand"])
    (feats["conv0"].square().mean() + feats["block6_expand"].mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_layer_lists_the_valid_ones(predictor: StylePredictor) -> None:
    with pytest.raises(ConfigError) as info:
        predictor.features(_image(1, 32, 32), ["conv0", "relu4_2"])
    message = str(info.value)
    assert "relu4_2" in message and "block6_expand" in message and "conv_last" in message


def test_predictor_odd_sizes_use_same_padding(predictor: StylePredictor) -> None:
    with torch.no_grad():
        feats = predictor.features(_image(1, 65, 33), ["conv0", "block3_depthwise"])
    assert feats["conv0"].shape[-2:] == (33, 17)  # ceil(65 / 2), ceil(33 / 2)
    assert feats["block3_depthwise"].shape[-2:] == (9, 5)


# --- transformers -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformer() -> StyleTransformer:
    return _seeded(StyleTransformer(), seed=3)


@pytest.mark.parametrize("size", [(37, 50), (64, 64), (9, 130), (8, 8)])
def test_transformer_keeps_any_size(transformer: StyleTransformer, size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = transformer(_image(1, *size), torch.randn(1, 100))
    assert out.shape == (1, 3, *size)
    assert out.min() >= 0 and out.max() <= 1


def test_transformer_conditions_per_sample(transformer: StyleTransformer) -> None:
    x = _image(2, 40, 44)
    styles = torch.randn(2, 100, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        both = transformer(x, styles)
        first = transformer(x[:1], styles[:1])
        second = transformer(x[1:], styles[1:])
        shared = transformer(x, styles[:1])  # (1, 100) broadcasts over the batch
    torch.testing.assert_close(both[:1], first)
    torch.testing.assert_close(both[1:], second)
    torch.testing.assert_close(shared[:1], first)
    assert (both[0] - transformer(x[:1], styles[1:])[0]).abs().max() > 1e-3  # the style vector matters


def test_transformer_rejects_bad_inputs(transformer: StyleTransformer) -> None:
    with pytest.raises(ConfigError, match="style vector"):
        transformer(_image(1, 32, 32), torch.randn(1, 99))
    with pytest.raises(ConfigError, match=">= 8"):
        transformer(_image(1, 5, 32), torch.randn(1, 100))
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        transformer(torch.rand(1, 4, 32, 32), torch.randn(1, 100))


def test_transformer_fast_paths_agree(transformer: StyleTransformer) -> None:
    x, style = _image(1, 48, 52), torch.randn(1, 100)
    with torch.no_grad():
        ref = transformer(x, style)
    fast_net = prepare_for_inference(copy.deepcopy(transformer), "cpu", fast=True)
    assert fast_net.expand[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fast = fast_net(x.contiguous(memory_format=torch.channels_last), style)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = fast_net(x.contiguous(memory_format=torch.channels_last), style).float()
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    assert (half - ref).abs().mean() < 2 / 255  # bf16 keeps the image close (measured ~0.003 on real weights)


def test_multistyle_blends_and_keeps_size() -> None:
    net = _seeded(MultiStyleTransformer(), seed=7)
    x = _image(2, 30, 45)
    weights = torch.zeros(2, 26)
    weights[0, 3], weights[1, 12] = 1.0, 1.0
    with torch.no_grad():
        both = net(x, weights)
        one = net(x[:1], weights[0])
        mixed = net(x[:1], (weights[0] + weights[1]) / 2)
    assert both.shape == (2, 3, 30, 45)
    torch.testing.assert_close(both[:1], one)
    assert (mixed - one).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="style weights"):
        net(x, torch.ones(25))
