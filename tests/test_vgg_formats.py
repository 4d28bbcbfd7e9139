"""Model files in neural-style-pt's / torchvision's formats: recognised from keys and shapes, checked, loaded."""

from __future__ import annotations

import shutil

import pytest
import tiny_weights as tw
import torch

from impasto.errors import ConfigError, WeightsError
from impasto.zoo import store, torch_formats
from impasto.zoo.registry import CAFFE_BGR, TORCH_RGB, UNIT_RGB


@pytest.fixture
def vgg19_file(tmp_path):  # noqa: ANN001, ANN201
    return tw.write(tw.vgg_state(), tmp_path / "any-name.pth")


def test_detects_vgg19_vgg16_nin_by_keys(tmp_path) -> None:  # noqa: ANN001
    assert torch_formats.detect_layout(tw.vgg_state())[0] == "vgg19"
    assert torch_formats.detect_layout(tw.vgg_state(tw.VGG16_BLOCKS))[0] == "vgg16"
    assert torch_formats.detect_layout(tw.nin_state()) == ("nin", (6, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 10))
    # the file name does not matter: a NIN saved under a VGG-ish name is still a NIN
    path = tw.write(tw.nin_state(), tmp_path / "vgg19-d01eb7cb.pth")
    source = torch_formats.open_feature_source(None, path)
    assert source.kind == "nin" and source.preprocessing == CAFFE_BGR and "relu12" in source.layer_names


def test_unknown_layout_is_a_clear_error(tmp_path) -> None:  # noqa: ANN001
    sd = tw.vgg_state()
    del sd["features.34.weight"], sd["features.34.bias"]
    path = tw.write(sd, tmp_path / "vgg19.pth")
    with pytest.raises(torch_formats.ModelLayoutError, match="cannot recognise") as err:
        torch_formats.read_weights(path)
    assert err.value.exit_code == 2
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="state dict"):
        torch_formats.read_weights(junk)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="state dict"):
        torch_formats.read_weights(tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not found"):
        torch_formats.read_weights(tmp_path / "missing.pth")


def test_every_shape_and_key_is_checked(tmp_path) -> None:  # noqa: ANN001
    sd = tw.vgg_state()
    sd["features.5.weight"] = torch.zeros(6, 5, 3, 3)  # in_channels should be 4
    with pytest.raises(WeightsError, match=r"features\.5\.weight \(conv2_1\)"):
        torch_formats.detect_layout(sd)
    sd = tw.vgg_state()
    sd["features.2.bias"] = torch.zeros(3)
    with pytest.raises(WeightsError, match=r"features\.2\.bias"):
        torch_formats.detect_layout(sd)
    sd = tw.vgg_state()
    sd["extra.thing"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="unexpected key 'extra.thing'"):
        torch_formats.detect_layout(sd)
    assert torch_formats.detect_layout(sd, disable_check=True)[0] == "vgg19"
    sd = tw.vgg_state(classifier=False)  # classifier keys are optional
    assert torch_formats.detect_layout(sd)[0] == "vgg19"


def test_loaded_net_uses_file_weights(vgg19_file) -> None:  # noqa: ANN001
    net, contract, name = torch_formats.load_feature_net(None, vgg19_file, "cpu", layers=["relu2_1", "conv1_2"])
    assert contract == CAFFE_BGR and "VGG-19" in name
    assert net.layer_names[-1] == "relu2_1"
    sd = tw.vgg_state()
    torch.testing.assert_close(net.convs["conv2_1"].weight, sd["features.5.weight"])
    torch.testing.assert_close(net.convs["conv1_2"].bias, sd["features.2.bias"])
    with pytest.raises(ConfigError, match="valid: conv1_1, relu1_1"):
        torch_formats.load_feature_net(None, vgg19_file, "cpu", layers=["relu6_1"])


def test_registry_names_fix_the_contract(vgg19_file, fresh_home) -> None:  # noqa: ANN001
    for name in ("vgg19.torch", "vgg19.caffe"):
        folder = store.weights_dir(name)
        folder.mkdir(parents=True)
        shutil.copy(vgg19_file, folder / _file(name))
    _, contract, display = torch_formats.load_feature_net("vgg19.torch", None, "cpu", layers=["relu1_1"])
    assert contract == TORCH_RGB and display.startswith("vgg19.torch")
    # the default is vgg19.caffe once installed
    assert torch_formats.resolve_model(None, None) == "vgg19.caffe"
    with pytest.raises(WeightsError, match="holds a VGG-19"):
        torch_formats.read_weights(vgg19_file, weight_set="nin.caffe")
    # a wrong-kind file fails the import check
    nin = tw.write(tw.nin_state(), fresh_home / "nin.pth")
    from impasto.zoo.registry import get

    with pytest.raises(WeightsError, match="holds a NIN"):
        torch_formats.check_weight_set(get("vgg19.caffe"), [nin])


def _file(name: str) -> str:
    from impasto.zoo.registry import get

    return get(name).files[0]


def test_offline_default_without_vgg(fresh_home) -> None:  # noqa: ANN001
    assert torch_formats.resolve_model(None, None) == "mobilenetv2.magenta"
    source = torch_formats.open_feature_source(None, None)
    assert source.kind == "mobilenetv2" and source.preprocessing == UNIT_RGB and "not VGG" in source.display
    assert set(source.default_style_layers) <= set(source.layer_names)
