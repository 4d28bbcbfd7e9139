"""The fast path's fused view of a VGG/NIN on the CPU (impasto.gatys.fastpath.FusedTaps): conv+ReLU as one oneDNN
call and ReLU moved after a max-pool must give the same activations, loss and image gradient as running the
layers one by one -- for taps anywhere (a ReLU before a pool, a conv output, a pool) and for both poolings."""

from __future__ import annotations

import dataclasses

import pytest
import tiny_weights as tw
import torch

from impasto.gatys import fastpath, optimize
from impasto.gatys.config import PaintConfig


@pytest.fixture(scope="module")
def weights(tmp_path_factory):  # noqa: ANN001, ANN201
    return tw.write(tw.vgg_state(), tmp_path_factory.mktemp("fused") / "vgg.pth")


CASES = [
    ("max", ("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),  # neural-style-pt's taps
    ("max", ("relu2_2",), ("relu1_2", "pool2", "conv3_1")),  # taps just before and after pools, and a conv
    ("avg", ("relu4_2",), ("relu1_1", "relu3_1", "relu5_1")),  # avg-pool: no reordering, fused conv+ReLU only
]


@pytest.mark.parametrize(("pooling", "content", "style"), CASES)
def test_fused_taps_equal_the_layer_by_layer_network(weights, pooling, content, style) -> None:  # noqa: ANN001
    cfg = PaintConfig(
        model_file=str(weights), image_size=64, fast=True, gpu="c", init="random", style_loss="gram", pooling=pooling,
        content_layers=content, style_layers=style, print_iter=0, save_iter=0,
    )  # fmt: skip
    images = tw.image(size=(64, 48), seed=0), tw.image(size=(48, 48), seed=1)
    problem = optimize.prepare(images[0], [images[1]], cfg.validate().resolve_choices({}))
    assert isinstance(problem.fast_net, fastpath.FusedTaps)
    plain = dataclasses.replace(problem, fast_net=fastpath.unfused(problem.fast_net))
    x = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(2)) * 50
    results = []
    for p in (problem, plain):
        img = x.clone().requires_grad_(True)
        loss, terms = optimize.evaluate(p, img)
        loss.backward()
        results.append((terms, img.grad))
    (terms_a, grad_a), (terms_b, grad_b) = results
    assert terms_a == terms_b
    assert torch.equal(grad_a, grad_b) and grad_a.abs().sum() > 0
    # and the activations themselves, tap by tap
    xin = x.to(problem.fast_dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fa = problem.fast_net.features(xin, problem.order)
        fb = plain.fast_net.features(xin, problem.order)
    assert list(fa) == list(fb) and all(torch.equal(fa[n], fb[n]) for n in fa)
