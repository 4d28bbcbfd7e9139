"""VGG/NIN architectures: neural-style-pt's layer names, partial building, frozen weights, safe taps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from impasto.errors import ConfigError
from impasto.nets.nin import NIN
from impasto.nets.vgg import VGG, VGG16_CHANNELS, VGG19_CHANNELS

# neural-style-pt's CaffeLoader dictionaries, written out.
NS_VGG19_C = "conv1_1 conv1_2 conv2_1 conv2_2 conv3_1 conv3_2 conv3_3 conv3_4 conv4_1 conv4_2 conv4_3 conv4_4 conv5_1 conv5_2 conv5_3 conv5_4".split()  # noqa: E501
NS_VGG16_C = (
    "conv1_1 conv1_2 conv2_1 conv2_2 conv3_1 conv3_2 conv3_3 conv4_1 conv4_2 conv4_3 conv5_1 conv5_2 conv5_3".split()
)
NS_NIN_C = "conv1 cccp1 cccp2 conv2 cccp3 cccp4 conv3 cccp5 cccp6 conv4-1024 cccp7-1024 cccp8-1024".split()
NS_NIN_R = "relu0 relu1 relu2 relu3 relu5 relu6 relu7 relu8 relu9 relu10 relu11 relu12".split()

TINY19 = (4, 4, "P", 6, 6, "P", 8, 8, 8, 8, "P", 8, 8, 8, 8, "P", 8, 8, 8, 8, "P")
TINY_NIN = (6, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 10)


def test_vgg19_names_match_neural_style_pt() -> None:
    net = VGG(VGG19_CHANNELS)
    names = net.layer_names
    assert [n for n in names if n.startswith("conv")] == NS_VGG19_C
    assert [n for n in names if n.startswith("relu")] == [c.replace("conv", "relu") for c in NS_VGG19_C]
    assert [n for n in names if n.startswith("pool")] == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")


def test_vgg16_and_nin_names() -> None:
    assert [n for n in VGG(VGG16_CHANNELS).layer_names if n.startswith("conv")] == NS_VGG16_C
    nin = NIN()
    assert [n for n in nin.layer_names if n.startswith(("conv", "cccp"))] == NS_NIN_C
    assert [n for n in nin.layer_names if n.startswith("relu")] == NS_NIN_R
    assert nin.layer_names[6] == "pool1" and nin.layer_names[-1] == "pool4"


def test_built_only_up_to_and_frozen() -> None:
    net = VGG(TINY19, upto="relu2_1")
    assert net.layer_names[-1] == "relu2_1"
    assert list(net.convs) == ["conv1_1", "conv1_2", "conv2_1"]
    assert all(not p.requires_grad for p in net.parameters())
    assert not net.training
    with pytest.raises(ConfigError, match="beyond"):
        net.features(torch.rand(1, 3, 16, 16), ["relu3_1"])


def test_unknown_layer_lists_valid_names() -> None:
    net = VGG(TINY19)
    with pytest.raises(ConfigError) as err:
        net.features(torch.rand(1, 3, 16, 16), ["relu4_2", "relu9_9"])
    assert "relu9_9" in str(err.value) and "relu5_4" in str(err.value) and "conv1_1" in str(err.value)
    with pytest.raises(ConfigError, match="cccp1"):
        NIN(TINY_NIN).features(torch.rand(1, 3, 64, 64), ["relu4"])  # NIN has no relu4


def test_conv_tap_is_not_overwritten_by_inplace_relu() -> None:
    torch.manual_seed(0)
    net = VGG(TINY19, upto="relu2_1")
    x = torch.randn(1, 3, 16, 16)
    taps = net.features(x, ["conv1_1", "relu1_1", "conv2_1", "relu2_1"])
    ref = F.conv2d(x, net.convs["conv1_1"].weight, net.convs["conv1_1"].bias, padding=1)
    torch.testing.assert_close(taps["conv1_1"], ref)
    assert (taps["conv1_1"] < 0).any()  # the pre-ReLU values survived
    torch.testing.assert_close(taps["relu1_1"], ref.clamp(min=0))
    assert (taps["conv2_1"] < 0).any()
    # gradients flow through a conv tap without in-place errors
    xg = x.clone().requires_grad_(True)
    out = net.features(xg, ["conv1_2", "relu2_1"])
    (out["conv1_2"].square().sum() + out["relu2_1"].sum()).backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_pooling_avg_and_nin_shapes() -> None:
    x = torch.randn(1, 3, 16, 16)
    a = VGG(TINY19, pooling="avg", upto="pool1").features(x, ["pool1"])["pool1"]
    assert a.shape == (1, 4, 8, 8)
    nin = NIN(TINY_NIN, pooling="avg")
    out = nin.features(torch.randn(1, 3, 64, 64), ["relu0", "pool1", "relu12"])
    assert out["relu0"].shape == (1, 6, 14, 14) and out["pool1"].shape == (1, 6, 7, 7)
    with pytest.raises(ConfigError, match="pooling"):
        VGG(TINY19, pooling="median")
