"""BigGAN-deep network and the reference checkpoint format: loading, strictness, numerics, truncation."""

from __future__ import annotations

import json

import biggan_tiny as bt
import pytest
import torch

from impasto.errors import ConfigError, UnknownModelError, WeightsError
from impasto.nets.biggan import PUBLISHED_CONFIGS, BigGANConfig, Precision, stat_weights
from impasto.zoo import biggan_format as bf
from impasto.zoo import registry


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("biggan") / "tiny"
    sd = bt.reference_state_dict(seed=3)
    bt.write_dir(folder, sd=sd)
    return folder, sd


def inputs(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 128, generator=g).clamp(-2, 2)
    y = torch.zeros(n, 1000)
    y[torch.arange(n), torch.tensor([933, 207, 8][:n])] = 1.0
    y[-1] = 0.5 * y[-1] + 0.5 * torch.softmax(torch.randn(1000, generator=g), 0)  # a mixed class vector
    return z, y


@pytest.mark.parametrize("t", [1.0, 0.4, 0.405, 0.14, 0.58, 0.07])
def test_matches_plain_reference_math(tiny, t: float) -> None:
    folder, sd = tiny
    model = bf.load_biggan_dir(folder)
    z, y = inputs()
    with torch.inference_mode():
        ours = model(z * t, y, t)
    expected = bt.plain_forward(sd, bt.TINY, z * t, y, t)
    assert expected.std() > 0.2  # the outputs use tanh's range, so the comparison means something
    assert ours.shape == (3, 3, 16, 16) and ours.dtype == torch.float32
    assert (ours - expected).abs().max() < 2e-5


def test_channels_last_and_grad_paths_agree(tiny) -> None:
    folder, _ = tiny
    base = bf.load_biggan_dir(folder)
    cl = bf.load_biggan_dir(folder, Precision(channels_last=True))
    z, y = inputs()
    with torch.inference_mode():
        a, b = base(z, y, 0.5), cl(z, y, 0.5)
    with torch.no_grad():
        torch.set_grad_enabled(True)  # autograd on: the uncached, differentiable path
        c = base(z, y, 0.5)
    assert (a - b).abs().max() < 1e-5 and (a - c).abs().max() < 1e-5


def test_bf16_stays_close(tiny) -> None:
    folder, _ = tiny
    z, y = inputs()
    with torch.inference_mode():
        a = bf.load_biggan_dir(folder)(z, y, 0.5)
        b = bf.load_biggan_dir(folder, Precision(dtype=torch.bfloat16))(z, y, 0.5)
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().mean() < 0.05


def test_prepared_weights_follow_parameter_edits(tiny) -> None:
    model = bf.load_biggan_dir(tiny[0])
    z, y = inputs()
    with torch.inference_mode():
        before = model(z, y, 0.5)
    with torch.no_grad():
        model.generator.layers[0].conv_1.weight.mul_(0.5)  # an upsampling block's cached phase kernels
    with torch.inference_mode():
        after = model(z, y, 0.5)
    assert (before - after).abs().max() > 1e-3


def test_truncation_selects_statistics_and_range_is_checked(tiny) -> None:
    model = bf.load_biggan_dir(tiny[0])
    z, y = inputs()
    with torch.inference_mode():
        a, b = model(z, y, 0.2), model(z, y, 0.8)  # same z: only the BN statistics differ
        assert (a - b).abs().max() > 1e-3
        for bad in (0.0, -0.1, 1.01):
            with pytest.raises(ConfigError, match="truncation"):
                model(z, y, bad)
        model(z, y, 1.0)


def test_stat_weights_reference_rule_and_linear() -> None:
    (i0, w0), (i1, w1) = stat_weights(0.405, 51)
    assert (i0, i1) == (20, 21) and w0 == pytest.approx(0.25) and w1 == pytest.approx(0.75)  # reference: reversed
    (j0, v0), (j1, v1) = stat_weights(0.405, 51, "linear")
    assert (j0, j1) == (20, 21) and v0 == pytest.approx(0.75) and v1 == pytest.approx(0.25)
    assert stat_weights(0.4, 51) == ((20, 1.0),)
    (k0, u0), (k1, u1) = stat_weights(0.14, 51)  # float rounding: the reference uses 0.16's statistics
    assert (k0, k1) == (7, 8) and u1 == pytest.approx(1.0)
    assert stat_weights(0.14, 51, "linear") == ((7, 1.0),)
    assert stat_weights(1.0, 51) == ((50, 1.0),)


def test_missing_unexpected_and_misshaped_keys_are_named(tiny, tmp_path) -> None:
    _, sd = tiny
    broken = dict(sd)
    del broken["generator.layers.1.conv_2.weight_v"]
    broken["generator.extra.weight"] = torch.zeros(1)
    broken["generator.gen_z.bias"] = torch.zeros(5)
    folder = bt.write_dir(tmp_path / "broken", sd=broken)
    with pytest.raises(WeightsError) as exc:
        bf.check_biggan_dir(folder)
    msg = str(exc.value)
    assert "generator.layers.1.conv_2.weight_v" in msg and "generator.extra.weight" in msg
    assert "generator.gen_z.bias [5]" in msg and "\n" not in msg
    with pytest.raises(WeightsError):
        bf.load_biggan_dir(folder)


def test_folder_problems(tmp_path, tiny) -> None:
    with pytest.raises(WeightsError, match="lacks pytorch_model.bin"):
        bf.check_biggan_dir(_only_config(tmp_path))
    bad_cfg = dict(bt.TINY, colour="blue")
    folder = bt.write_dir(tmp_path / "b", cfg=bad_cfg, sd=tiny[1])
    with pytest.raises(WeightsError, match="unknown field"):
        bf.check_biggan_dir(folder)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text(json.dumps(bt.TINY))
    (tmp_path / "c" / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch state dict"):
        bf.check_biggan_dir(tmp_path / "c")
    assert bf.check_biggan_dir(tiny[0]) == BigGANConfig.from_dict(bt.TINY)


def _only_config(tmp_path):  # noqa: ANN001, ANN202
    d = tmp_path / "only-config"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(bt.TINY))
    return d


def test_registry_entries_and_missing_weights_message(fresh_home) -> None:
    for res in (128, 256, 512):
        ws = registry.get(f"biggan-deep.{res}")
        assert ws.kind == "biggan-deep" and ws.files == ("config.json", "pytorch_model.bin")
        assert ws.urls[1].endswith(f"biggan-deep-{res}-pytorch_model.bin") and ws.urls[0].endswith("config.json")
    with pytest.raises(WeightsError, match="impasto models download biggan-deep.256"):
        bf.load("biggan-deep-256")  # the reference's spelling is accepted
    with pytest.raises(UnknownModelError, match="biggan-deep.128"):
        bf.load("biggan-deep.1024")


@pytest.mark.parametrize("res", [128, 256, 512])
def test_published_configs_have_the_published_shapes(res: int) -> None:
    cfg = PUBLISHED_CONFIGS[res]
    shapes = bf.reference_key_shapes(cfg)
    assert shapes["generator.gen_z.weight_orig"] == (4 * 4 * 16 * 128, 256)
    assert shapes["generator.conv_to_rgb.weight_orig"] == (128, 128, 3, 3)
    width = 128 * cfg.layers[8][1]
    assert shapes["generator.layers.8.snconv1x1_theta.weight_orig"] == (width // 8, width, 1, 1)  # attention, 64px
    assert shapes["generator.layers.0.bn_0.running_means"] == (51, 2048)
    assert len([k for k in shapes if k.startswith("generator.layers.")]) > 0
    assert BigGANConfig.from_dict(cfg.to_dict()) == cfg


def test_config_validation() -> None:
    with pytest.raises(WeightsError, match="output_dim"):
        BigGANConfig.from_dict(dict(bt.TINY, output_dim=32))
    with pytest.raises(WeightsError, match="bad value"):
        BigGANConfig.from_dict(dict(bt.TINY, z_dim="many"))


def test_models_import_accepts_a_reference_folder(fresh_home, tiny, tmp_path) -> None:
    from impasto.zoo import store

    with pytest.raises(WeightsError, match="16px model, not the 128px"):
        store.import_files("biggan-deep.128", tiny[0])  # a valid folder, but not a 128 px model
    # a folder with the published 128 px layout; stride-0 tensors keep the file tiny (the check reads shapes)
    cfg = PUBLISHED_CONFIGS[128]
    folder = tmp_path / "f128"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save(
        {k: torch.zeros(1).expand(*s) for k, s in bf.reference_key_shapes(cfg).items()}, folder / "pytorch_model.bin"
    )
    store.import_files("biggan-deep.128", folder)
    assert store.is_installed("biggan-deep.128")
    assert bf.resolve("biggan-deep-128") == store.weights_dir("biggan-deep.128")
