"""The exact tiled loss pass and gradient checkpointing (impasto.gatys.tiled) against the untiled loss."""

from __future__ import annotations

import dataclasses

import pytest
import tiny_weights as tw
import torch

from impasto.errors import ConfigError
from impasto.events import Started
from impasto.gatys import tiled
from impasto.gatys.config import PaintConfig
from impasto.gatys.optimize import evaluate, paint, prepare
from impasto.nets import magenta


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("tiled")
    return {
        "vgg19": tw.write(tw.vgg_state(widths=(6, 8, 8, 10, 10)), d / "vgg19-d01eb7cb.pth"),
        "vgg16": tw.write(tw.vgg_state(tw.VGG16_BLOCKS, widths=(6, 8, 8, 10, 10), seed=1), d / "vgg16-00b39a1b.pth"),
        "nin": tw.write(tw.nin_state(), d / "nin_imagenet.pth"),
    }


def _config(weights, **extra) -> PaintConfig:  # noqa: ANN001
    base = dict(model_file=str(weights), image_size=100, num_iterations=3, print_iter=0, save_iter=0, seed=2, gpu="c")
    return PaintConfig(**{**base, **extra})


def _images(n_styles: int = 1):  # noqa: ANN202
    content = tw.image(size=(100, 70), seed=0)  # 100x70: no tile side below divides both sides
    return content, [tw.image(size=(60, 60), seed=1 + i) for i in range(n_styles)]


def _loss_and_grad(problem, img: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:  # noqa: ANN001
    x = img.detach().clone().requires_grad_(True)
    loss, record = evaluate(problem, x)
    loss.backward()
    return record, x.grad.detach().clone()


def _noise(problem) -> torch.Tensor:  # noqa: ANN001
    gen = torch.Generator().manual_seed(5)
    return problem.init + 20 * torch.randn(problem.init.shape, generator=gen)  # a non-trivial image


def _assert_close(a: tuple[dict[str, float], torch.Tensor], b: tuple[dict[str, float], torch.Tensor]) -> None:
    ra, ga = a
    rb, gb = b
    assert ra.keys() == rb.keys()
    for k in ra:
        assert ra[k] == pytest.approx(rb[k], rel=2e-5, abs=1e-9), k
    scale = gb.abs().max().item()
    assert scale > 0
    assert (ga - gb).abs().max().item() <= 2e-4 * scale


@pytest.mark.parametrize("tile", [64, 80, 96, 1000])
@pytest.mark.parametrize("style_loss", ["gram", "w2"])
def test_tiled_loss_and_gradient_equal_untiled_vgg19(files, tile: int, style_loss: str) -> None:
    content, styles = _images()
    problem = prepare(content, styles, _config(files["vgg19"], style_loss=style_loss))
    img = _noise(problem)
    plain = _loss_and_grad(problem, img)
    tiles = tiled.tile_grid(*img.shape[-2:], tile, tiled.geometry(problem.net, problem.order))
    if tile < 100:
        assert len(tiles) > 1  # really tiled
    _assert_close(_loss_and_grad(dataclasses.replace(problem, tile_size=tile), img), plain)


@pytest.mark.parametrize("net", ["vgg16", "nin"])
def test_tiled_equals_untiled_other_networks(files, net: str) -> None:
    content, styles = _images()
    extra = {"image_size": 140} if net == "nin" else {}
    problem = prepare(content, styles, _config(files[net], **extra))
    img = _noise(problem)
    geo = tiled.geometry(problem.net, problem.order)
    assert len(tiled.tile_grid(*img.shape[-2:], 64, geo)) > 1
    _assert_close(_loss_and_grad(dataclasses.replace(problem, tile_size=64), img), _loss_and_grad(problem, img))


def test_tiled_multiple_styles_normalize_gradients_and_weights(files) -> None:
    content, styles = _images(2)
    cfg = _config(files["vgg19"], normalize_gradients=True, normalize_weights=True, style_blend_weights=(3, 1))
    problem = prepare(content, styles, cfg)
    img = _noise(problem)
    _assert_close(_loss_and_grad(dataclasses.replace(problem, tile_size=64), img), _loss_and_grad(problem, img))


def test_tiled_fast_path_matches_its_untiled_fast_path(files) -> None:
    content, styles = _images()
    problem = prepare(content, styles, _config(files["vgg19"], fast=True))
    img = _noise(problem)
    (ra, ga), (rb, gb) = _loss_and_grad(dataclasses.replace(problem, tile_size=64), img), _loss_and_grad(problem, img)
    # the fast path's bf16 network: the same loss, to bf16's resolution (fused Gram in bf16 untiled, fp32 tiled)
    assert ra["total"] == pytest.approx(rb["total"], rel=2e-2)
    assert torch.nn.functional.cosine_similarity(ga.flatten(), gb.flatten(), dim=0) > 0.99


def test_checkpointed_equals_plain(files) -> None:
    content, styles = _images()
    problem = prepare(content, styles, _config(files["vgg19"], style_layers=("relu1_1", "relu3_1", "relu5_1")))
    img = _noise(problem)
    ra, ga = _loss_and_grad(dataclasses.replace(problem, checkpointing=True), img)
    rb, gb = _loss_and_grad(problem, img)
    assert ra == rb
    assert torch.equal(ga, gb)
    # and checkpointed per tile
    _assert_close(_loss_and_grad(dataclasses.replace(problem, checkpointing=True, tile_size=64), img), (rb, gb))


def _tiny_predictor() -> magenta.StylePredictor:
    cfg = magenta.PredictorConfig(
        stem_channels=4, stages=((1, 4, 1, 1), (2, 6, 2, 2), (2, 6, 2, 2), (2, 8, 2, 2)), last_channels=8
    )
    torch.manual_seed(0)  # a test-only network: the global RNG is fine here (nothing else runs in this process)
    net = magenta.StylePredictor(cfg)
    return net.requires_grad_(False).eval()


@pytest.mark.parametrize("size", [(70, 100), (67, 93)])
def test_mobilenet_tiled_features_equal_untiled(size: tuple[int, int]) -> None:
    """TensorFlow "SAME" padding depends on the size's parity: crops keep the image's parity modulo the stride."""
    net = _tiny_predictor()
    names = ["conv0", "block1_expand", "block3_depthwise", "block5_project"]
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    whole = net.features(x, names)
    pieces = tiled.tiled_features(net, x, names, 16)
    assert len(tiled.tile_grid(*size, 16, tiled.geometry(net, names))) > 4
    for n in names:
        assert pieces[n].shape == whole[n].shape
        torch.testing.assert_close(pieces[n], whole[n], rtol=1e-5, atol=1e-5)


def test_mobilenet_checkpointed_steps_equal_features() -> None:
    net = _tiny_predictor()
    names = ["conv0", "block2_expand", "block4_project", "conv_last"]
    x = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(2), requires_grad=True)
    whole = net.features(x, names)
    got = dict(tiled.iter_features(net, x, names, checkpointed=True))
    for n in names:
        assert torch.equal(got[n], whole[n])
    sum(v.pow(2).sum() for v in got.values()).backward()
    g1 = x.grad.clone()
    x.grad = None
    sum(v.pow(2).sum() for v in whole.values()).backward()
    torch.testing.assert_close(g1, x.grad)


def test_global_pool_refuses_tiling() -> None:
    with pytest.raises(ConfigError, match="pool"):
        tiled.geometry(_tiny_predictor(), ["pool"])


def test_paint_with_tiles_equals_paint_without(files) -> None:
    """A few L-BFGS steps with the tiled pass follow the untiled run (the optimiser sees the same loss/gradient)."""
    content, styles = _images()
    cfg = _config(files["vgg19"], num_iterations=4, tile_size=-1)
    plain = paint(content, styles, cfg)
    events: list = []
    tiled_run = paint(content, styles, cfg.replace(tile_size=64), callback=events.append)
    started = [e for e in events if isinstance(e, Started)]
    assert "tiles 64 px" in started[0].info["memory_plan"]
    for a, b in zip(plain.losses, tiled_run.losses, strict=True):
        assert a["total"] == pytest.approx(b["total"], rel=1e-3)
    assert (plain.image - tiled_run.image).abs().max().item() < 1e-3


@pytest.mark.parametrize("style_loss", ["gram", "w2"])
def test_tiled_targets_equal_untiled(files, style_loss: str) -> None:
    content, styles = _images(2)
    cfg = _config(files["vgg19"], style_loss=style_loss, style_blend_weights=(1, 2))
    plain = prepare(content, styles, cfg.replace(tile_size=-1))
    tiled_problem = prepare(content, styles, cfg.replace(tile_size=64))
    assert tiled_problem.tile_size == 64 and plain.tile_size == 0

    def close(a: torch.Tensor, b: torch.Tensor) -> None:  # float tolerance relative to the tensor's scale
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 5e-5 * b.abs().max().item()

    for n in plain.content_targets:
        close(tiled_problem.content_targets[n], plain.content_targets[n])
    for n in plain.style_targets:
        close(tiled_problem.style_targets[n], plain.style_targets[n])
    for n in plain.style_stats:
        close(tiled_problem.style_stats[n].mean, plain.style_stats[n].mean)
