"""Tiled inference equals the untiled networks (whole-image instance-norm statistics), for tiny random networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from impasto.fast import tiling
from impasto.nets.linear import Decoder, Encoder, StyleStats, Transform
from impasto.nets.magenta import MultiStyleConfig, MultiStyleTransformer, StyleTransformer, TransformerConfig


def _seeded(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module.eval()


def _photo(h: int, w: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([np.sin(xx / 7.0), np.cos(yy / 5.0), np.sin((xx + yy) / 11.0)], -1) * 90 + 128
    return np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)


def _tensor(photo: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(photo.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)


def _tiled(ops: list, photo: np.ndarray, tile: int) -> torch.Tensor:
    h, w = photo.shape[:2]
    out = torch.full((1, 3, h, w), float("nan"))
    seen: list[tuple[int, int, int, int]] = []

    def emit(box, t):  # noqa: ANN001, ANN202
        seen.append(box)
        out[:, :, box[0] : box[1], box[2] : box[3]] = t.float()

    tiling.run_tiled(ops, (h, w), tiling.photo_fetch(photo), emit, tile=tile)
    assert len(seen) > 1  # it really ran in tiles
    return out


@pytest.fixture(scope="module")
def transformer() -> StyleTransformer:
    cfg = TransformerConfig(style_dim=6, contract_channels=(4, 5, 6), residual_blocks=2, expand_channels=(5, 4))
    return _seeded(StyleTransformer(cfg))


@pytest.mark.parametrize("size, tile", [((61, 83), 20), ((61, 83), 37), ((64, 48), 24), ((45, 130), 50)])
def test_tiled_arbitrary_transformer_equals_untiled(transformer: StyleTransformer, size, tile) -> None:  # noqa: ANN001
    photo = _photo(*size)
    style = torch.randn(1, 6, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = transformer(_tensor(photo), style)
        got = _tiled(tiling.magenta_ops(transformer, style, size), photo, tile)
    assert got.shape == want.shape
    assert torch.isfinite(got).all()
    assert (got - want).abs().max() < 2e-5
    assert want.std() > 0.05  # a picture, not a constant (so the comparison could fail)


def test_per_tile_statistics_would_show_seams(transformer: StyleTransformer) -> None:
    """The test above could fail: normalising each tile by its own statistics is visibly different."""
    photo = _photo(64, 96)
    style = torch.randn(1, 6, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = transformer(_tensor(photo), style)
        left = transformer(_tensor(photo[:, :48].copy()), style)
    assert (left[..., :40] - want[..., :40]).abs().max() > 1e-2


@pytest.mark.parametrize("size, tile", [((61, 83), 20), ((40, 40), 16)])
def test_tiled_multistyle_equals_untiled(size, tile) -> None:  # noqa: ANN001
    net = _seeded(MultiStyleTransformer(MultiStyleConfig(num_styles=3, contract_channels=(4, 5, 6),
                                                        residual_blocks=2, expand_channels=(5, 4))))  # fmt: skip
    photo = _photo(*size, seed=4)
    weights = torch.tensor([0.2, 0.5, 0.3])
    with torch.inference_mode():
        want = net(_tensor(photo), weights)
        got = _tiled(tiling.multistyle_ops(net, weights, size), photo, tile)
    assert (got - want).abs().max() < 2e-5 and want.std() > 0.02


def _he(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] ** 2
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.01)
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.01)
                m.bias.copy_(torch.eye(32).reshape(-1))
    return module.eval()


@pytest.mark.parametrize("size, tile, strength", [((44, 60), 32, 1.0), ((40, 64), 40, 0.6)])
def test_tiled_linear_r31_equals_untiled(size, tile, strength) -> None:  # noqa: ANN001
    from impasto.fast.linear import _pad_to

    enc, dec, trans = _he(Encoder("r31"), 1), _he(Decoder("r31"), 2), _he(Transform("r31"), 3)
    photo = _photo(*size, seed=5)
    stats = trans.style(enc(_tensor(_photo(40, 40, seed=9))))
    with torch.inference_mode():
        x, h, w = _pad_to(_tensor(photo), 4)
        cF = enc(x)
        f = trans.transform(cF, StyleStats(stats.matrix, stats.mean))
        f = strength * f + (1 - strength) * cF
        want = dec(f)[..., :h, :w]
        ph, pw = x.shape[2] - h, x.shape[3] - w
        ops = tiling.linear_ops(enc, trans, dec, torch.float32, stats.matrix, stats.mean, strength,
                                (ph, pw, "reflect"), size)  # fmt: skip
        got = _tiled(ops, photo, tile)
    assert (got - want).abs().max() < 1e-4 * max(1.0, float(want.abs().max()))
    assert want.std() > 1e-3
