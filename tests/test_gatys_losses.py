"""Losses against hand-computed formulas (neural-style-pt's normalisations), preprocessing exactness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from impasto.gatys import losses as L
from impasto.gatys.preprocess import deprocess, neural_style_size, preprocess, truncate_to_8bit
from impasto.zoo.registry import CAFFE_BGR, TORCH_RGB, UNIT_RGB


def test_gram_is_normalised_by_chw() -> None:
    f = torch.randn(1, 3, 4, 5)
    flat = f[0].reshape(3, 20).double()
    expected = (flat @ flat.T) / (3 * 4 * 5)
    torch.testing.assert_close(L.gram_matrix(f).double(), expected, rtol=1e-6, atol=1e-6)
    assert L.gram_matrix(f.to(torch.bfloat16)).dtype == torch.float32


def test_content_style_tv_formulas() -> None:
    f, p = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    assert L.content_loss(f, p, 5.0).item() == pytest.approx(5.0 * ((f - p) ** 2).mean().item(), rel=1e-6)
    g, a = torch.randn(4, 4), torch.randn(4, 4)
    assert L.style_loss(g, a, 100.0).item() == pytest.approx(100.0 * ((g - a) ** 2).mean().item(), rel=1e-6)
    x = torch.randn(1, 3, 5, 6)
    x_np = x.numpy()
    tv = np.abs(np.diff(x_np, axis=2)).sum() + np.abs(np.diff(x_np, axis=3)).sum()
    assert L.tv_loss(x, 1e-3).item() == pytest.approx(1e-3 * tv, rel=1e-5)


def test_normalize_gradients_matches_neural_style_pt_code() -> None:
    # The code scales the gradient reaching each layer loss by w^2 * w/(|w|+1e-8) instead of w; the value is w*L.
    f0, p = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    for w in (5.0, 0.01):
        plain = f0.clone().requires_grad_(True)
        L.content_loss(plain, p, w).backward()
        scaled = f0.clone().requires_grad_(True)
        loss = L.content_loss(scaled, p, w, normalize_gradients=True)
        assert loss.item() == pytest.approx(L.content_loss(f0, p, w).item(), rel=1e-6)
        loss.backward()
        factor = w * w * (w / (w + 1e-8))
        torch.testing.assert_close(scaled.grad, plain.grad / w * factor, rtol=1e-5, atol=1e-8)


def test_normalize_weights_and_blend() -> None:
    assert L.normalized_weight(5.0, (1, 64, 32, 40)) == 5.0 / 64
    assert L.normalized_weight(5.0, (1, 8, 32, 40)) == 5.0 / 40  # max of all dims, as neural-style-pt does
    assert L.normalized_weight(100.0, (16, 16)) == 100.0 / 16
    a, b = torch.randn(3, 3), torch.randn(3, 3)
    torch.testing.assert_close(L.blend_grams([a, b], [0.3, 0.7]), 0.3 * a + 0.7 * b)


def test_caffe_preprocess_is_bit_exact_and_inverts() -> None:
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (1, 3, 5, 7), dtype=np.uint8)
    x01 = torch.from_numpy(u8.astype(np.float32) / np.float32(255.0))
    # neural-style-pt: ToTensor (u8 / 255) * 255, RGB->BGR, minus mean (torchvision Normalize in float32)
    ref = torch.from_numpy(u8).float().div(255) * 255
    ref = ref[:, [2, 1, 0]] - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert torch.equal(preprocess(x01, CAFFE_BGR), ref)
    for contract in (CAFFE_BGR, TORCH_RGB, UNIT_RGB):
        torch.testing.assert_close(deprocess(preprocess(x01, contract), contract), x01, atol=2e-6, rtol=0)
    assert torch.equal(truncate_to_8bit(torch.tensor([0.0, 0.999, 1.0, 0.5])) * 255, torch.tensor([0.0, 254, 255, 127]))


def test_neural_style_sizing() -> None:
    assert neural_style_size((600, 450), 512) == (512, 384)
    assert neural_style_size((450, 600), 32) == (24, 32)
    assert neural_style_size((333, 1000), 100) == (int(100 / 1000 * 333), 100)
