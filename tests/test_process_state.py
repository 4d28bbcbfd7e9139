"""A library leaves the process as it found it: loading networks does not move the caller's global RNG."""

from __future__ import annotations

import tiny_weights as tw
import torch

from impasto.zoo import magenta_onnx, torch_formats


def test_loading_magenta_networks_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    magenta_onnx.load_predictor()
    magenta_onnx.load_transformer()
    assert torch.equal(before, torch.random.get_rng_state())


def test_building_a_vgg_leaves_the_global_rng_alone(tmp_path):  # noqa: ANN001
    path = tw.write(tw.vgg_state(), tmp_path / "vgg.pth")
    before = torch.random.get_rng_state()
    net = torch_formats.build_net(torch_formats.read_weights(path))
    assert torch.equal(before, torch.random.get_rng_state())
    assert net(torch.rand(1, 3, 64, 64)).isfinite().all()
