"""The fast path's fused view of a VGG/NIN on the CPU (impasto.gatys.fastpath.FusedTaps): conv+ReLU as one oneDNN
call and ReLU moved after a max-pool must give the same activations and loss as running the layers one by one --
for taps anywhere (a ReLU before a pool, a conv output, a pool) and for both poolings -- and its hand-written
backward (the network and every tap loss as one node, FusedTaps.tap_losses) the gradient autograd gets through the
layer-by-layer network: to bf16 rounding on the fast path, to fp32 rounding on an fp32 copy."""

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
    # the tap losses' gradients join the one from above in an fp32-accumulated addmm_ (one bf16 rounding) where
    # autograd adds two bf16 tensors: equal to bf16 rounding
    assert grad_a.abs().sum() > 0
    assert (grad_a - grad_b).norm() <= 1e-2 * grad_b.norm()
    # and the activations themselves, tap by tap
    xin = x.to(problem.fast_dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fa = problem.fast_net.features(xin, problem.order)
        fb = plain.fast_net.features(xin, problem.order)
    assert list(fa) == list(fb) and all(torch.equal(fa[n], fb[n]) for n in fa)


@pytest.fixture(scope="module")
def wide_weights(tmp_path_factory):  # noqa: ANN001, ANN201
    """64 channels everywhere: the widths at which the fast path packs its convolution weights (_Convs)."""
    return tw.write(tw.vgg_state(widths=(64,) * 5), tmp_path_factory.mktemp("fused") / "vgg.pth")


@pytest.fixture(scope="module")
def nin_weights(tmp_path_factory):  # noqa: ANN001, ANN201
    """NIN: a stride-4 11x11 convolution (convolution_backward, not the transposed convolution) and 1x1 ones."""
    return tw.write(tw.nin_state(), tmp_path_factory.mktemp("fused") / "nin_imagenet.pth")


FP32_CASES = [("weights", *case) for case in CASES] + [
    ("wide_weights", *CASES[0]),
    ("wide_weights", *CASES[1]),
    ("nin_weights", "max", ("relu7",), ("relu0", "relu3", "relu7")),
]


@pytest.mark.parametrize(("net", "pooling", "content", "style"), FP32_CASES)
@pytest.mark.parametrize(
    ("normalize_gradients", "photo"),
    [(False, (64, 48)), (True, (64, 48)), (False, (61, 45))],  # 64x47: odd sizes before every pool (a last row dropped)
)
def test_hand_written_backward_equals_autograd_in_fp32(
    request, net, pooling, content, style, normalize_gradients, photo
) -> None:  # noqa: ANN001, E501
    weights = request.getfixturevalue(net)
    cfg = PaintConfig(
        model_file=str(weights), image_size=64, fast=True, gpu="c", init="random", style_loss="gram", pooling=pooling,
        content_layers=content, style_layers=style, normalize_gradients=normalize_gradients, print_iter=0,
        save_iter=0,
    )  # fmt: skip
    images = tw.image(size=photo, seed=0), tw.image(size=(48, 48), seed=1)
    problem = optimize.prepare(images[0], [images[1]], cfg.validate().resolve_choices({}))
    net32 = fastpath.unfused(problem.fast_net).float()  # the same layers in fp32 (channels_last kept)
    fused = dataclasses.replace(problem, fast_net=fastpath.FusedTaps(net32), fast_dtype=torch.float32)
    plain = dataclasses.replace(problem, fast_net=net32, fast_dtype=torch.float32)
    x = torch.randn(problem.init.shape, generator=torch.Generator().manual_seed(3)) * 50
    results = []
    for p in (fused, plain):
        img = x.clone().requires_grad_(True)
        loss, terms = optimize.evaluate(p, img)
        loss.backward()
        results.append((terms, img.grad))
    (terms_a, grad_a), (terms_b, grad_b) = results
    assert terms_a.keys() == terms_b.keys()
    assert all(abs(terms_a[k] - terms_b[k]) <= 1e-5 * abs(terms_b[k]) for k in terms_a)
    assert grad_b.abs().sum() > 0
    assert (grad_a - grad_b).norm() <= 1e-5 * grad_b.norm()


def test_a_program_fuses_only_where_nothing_is_tapped_between(weights) -> None:  # noqa: ANN001
    source = fastpath.fast_network(
        optimize._open_network(PaintConfig(model_file=str(weights), gpu="c").validate(), None).net,  # noqa: SLF001
        torch.device("cpu"),
    )[0]
    assert isinstance(source, fastpath.FusedTaps)
    steps = source.program({"relu1_1", "conv2_1", "pool2"})
    assert [(s.op, s.name) for s in steps] == [
        ("convrelu", "relu1_1"), ("convpoolrelu", "pool1"), ("conv", "conv2_1"), ("relu", "relu2_1"),
        ("convpoolrelu", "pool2"),
    ]  # fmt: skip
