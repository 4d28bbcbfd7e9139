"""Every registry entry: its record is complete, and its architecture builds and runs on a tiny input.

Packaged entries (Magenta) run with their real weights; the others get tiny random weights written into the
cache in their upstream file format and load through the same code path as the real files.
"""

from __future__ import annotations

import biggan_tiny
import linear_tiny
import pytest
import tiny_weights as tw
import torch

from impasto.errors import UnknownModelError, WeightsError
from impasto.zoo import registry, store, validate


@pytest.mark.parametrize("name", registry.names())
def test_record_is_complete(name):  # noqa: ANN001
    ws = registry.get(name)
    assert ws.urls and len(ws.urls) == len(ws.files)
    assert ws.licence and ws.paper and ws.description
    assert ws.preprocessing in (registry.CAFFE_BGR, registry.TORCH_RGB, registry.UNIT_RGB, registry.BIGGAN, "")
    assert all(u.startswith(("https://", "package:")) for u in ws.urls)
    assert ws.upstream_format in validate.CHECKERS  # one key converter / format check per upstream format
    if ws.packaged:
        assert all(ws.sha256) and all(ws.size)  # files we ship-by-dependency are pinned exactly


def _install_tiny(ws: registry.WeightSet) -> None:
    folder = store.weights_dir(ws.name)
    folder.mkdir(parents=True, exist_ok=True)
    if ws.kind in ("vgg19", "vgg16"):
        blocks = tw.VGG19_BLOCKS if ws.kind == "vgg19" else tw.VGG16_BLOCKS
        widths = (64, 128, 256, 512, 512) if ws.name == "vgg16.torch" else (4, 6, 8, 8, 8)  # LPIPS-VGG's trunk
        tw.write(tw.vgg_state(blocks=blocks, widths=widths), folder / ws.files[0])
    elif ws.kind == "nin":
        tw.write(tw.nin_state(), folder / ws.files[0])
    elif ws.kind == "biggan-deep":
        res = int(ws.name.rsplit(".", 1)[1])
        ups = res.bit_length() - 3  # 4 px doubled this many times
        layers = [[up, 16, 16] for _ in range(ups) for up in (False, True)]  # [upsample?, in, out] x width
        layers[-1][2] = 1  # the published layout: 16 x width in, 1 x width out
        cfg = {
            **biggan_tiny.TINY,
            "output_dim": res,
            "layers": layers,
            "attention_layer_position": 2,
            "channel_width": 4,
        }
        biggan_tiny.write_dir(folder, cfg=cfg)
    elif ws.kind.startswith("linear-"):  # LinearStyleTransfer's reference-format files, full-size random networks
        linear_tiny.write_all(folder, ws.files)
    elif ws.kind == "alexnet":  # torchvision's layout at its real widths (LPIPS's lin layers fix them)
        gen = torch.Generator().manual_seed(0)
        sd, cin = {}, 3
        for pos, cout, k in ((0, 64, 11), (3, 192, 5), (6, 384, 3), (8, 256, 3), (10, 256, 3)):
            sd[f"features.{pos}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * (2 / (cin * k * k)) ** 0.5
            sd[f"features.{pos}.bias"] = torch.zeros(cout)
            cin = cout
        tw.write(sd, folder / ws.files[0])
    elif ws.kind == "lpips-linear":  # the lin file and, through the same code, its trunk
        from impasto.nets.lpips import ALEX_CHANNELS, VGG_CHANNELS

        trunk = registry.get(ws.extra["trunk"])
        _install_tiny(trunk)
        channels = ALEX_CHANNELS if trunk.kind == "alexnet" else VGG_CHANNELS
        tw.write({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(channels)},
                 folder / ws.files[0])  # fmt: skip


@pytest.mark.parametrize("name", registry.names())
def test_every_entry_builds_and_runs(name, fresh_home):  # noqa: ANN001
    ws = registry.get(name)
    if not ws.packaged:
        _install_tiny(ws)
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    if ws.kind == "biggan-deep":
        from impasto.gan import BigGAN

        model = BigGAN.from_pretrained(name, device="cpu")
        out = model(
            torch.zeros(1, model.config.z_dim), torch.nn.functional.one_hot(torch.tensor([3]), 1000).float(), 0.5
        )
        res = int(name.rsplit(".", 1)[1])
        assert out.shape == (1, 3, res, res) and out.abs().max() <= 1
        return
    if ws.kind in ("vgg19", "vgg16", "nin", "mobilenetv2"):
        from impasto.zoo.torch_formats import load_feature_net

        net, contract, display = load_feature_net(name, None, "cpu")
        x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))  # NIN's last pool needs ~200 px
        assert contract == ws.preprocessing
        feats = net.features(x, [net.layer_names[-1]])
        assert torch.isfinite(feats[net.layer_names[-1]]).all()
        return
    if ws.kind.startswith("linear-"):
        from impasto.zoo.linear_format import load_file

        mods = [load_file(p) for p in store.files_for(ws)]  # recognised by their keys
        x = x[..., :32, :48]
        if ws.kind in ("linear-r31", "linear-r41"):
            enc, dec, trans = mods
            out = dec(trans(enc(x), enc(x.flip(-1))))
            assert out.shape == x.shape and torch.isfinite(out).all()
        elif ws.kind == "linear-vgg-r51":
            assert mods[0](x).shape == (1, 512, 2, 3)
        else:  # the SPN: its guidance network (the propagation itself is tested with the photo-real path)
            gates = mods[0].guidance(x)
            assert len(gates) == 12 and all(g.shape == (1, 32, 32, 48) for g in gates)
        return
    if ws.kind in ("alexnet", "lpips-linear"):
        from impasto.nets.lpips import ALEX_TAPS, AlexNet
        from impasto.zoo import lpips_format

        if ws.kind == "alexnet":
            net = AlexNet()
            net.load_state_dict(lpips_format.check_alexnet(torch.load(store.files_for(ws)[0], weights_only=True), name))
            feats = net.features(x, ALEX_TAPS)
            assert feats["relu5"].shape == (1, 256, 3, 5)
        else:
            d = lpips_format.load_lpips(name.split(".")[1])(x, x.flip(-1))
            assert d.shape == (1,) and torch.isfinite(d).all() and d.item() > 0
        return
    from impasto.zoo import magenta_onnx

    if ws.kind == "magenta-predictor":
        assert magenta_onnx.load_predictor()(x).reshape(-1).shape == (100,)
    elif ws.kind == "magenta-transformer":
        out = magenta_onnx.load_transformer()(x, torch.zeros(1, 100))
        assert out.shape == x.shape and 0 <= out.min() <= out.max() <= 1
    elif ws.kind == "magenta-multistyle":
        w = torch.zeros(26)
        w[0] = 1
        out = magenta_onnx.load_multistyle()(x, w)
        assert out.shape == x.shape and 0 <= out.min() <= out.max() <= 1
    else:
        pytest.fail(f"no smoke test for kind {ws.kind!r}: add one")


# --- the upstream format of a record is checked when the record is made (bug 12) ------------------------------


def _record(**kw: str) -> registry.WeightSet:
    fields = dict(name="x.test", kind="vgg19", description="d", urls=("https://example.org/x.pth",),
                  files=("x.pth",), sha256=(None,), size=(None,), licence="l", paper="p",
                  preprocessing=registry.CAFFE_BGR)  # fmt: skip
    return registry.WeightSet(**{**fields, **kw})


@pytest.mark.parametrize("fmt", ["torch-vgg", "ONNX-QDQ", ""])
def test_unknown_upstream_format_is_refused(fmt: str) -> None:
    with pytest.raises(ValueError, match="upstream_format") as err:
        _record(upstream_format=fmt)
    for known in validate.CHECKERS:  # the error names every allowed format
        assert known in str(err.value)
    assert "x.test" not in registry.REGISTRY


def test_every_known_format_is_accepted_and_checked() -> None:
    for fmt in validate.CHECKERS:
        assert _record(upstream_format=fmt).upstream_format == fmt
    assert {ws.upstream_format for ws in registry.REGISTRY.values()} <= set(validate.CHECKERS)


def test_a_format_removed_from_the_checkers_is_not_silently_unchecked(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    ws = _record(upstream_format="torch-vgg-caffe")
    monkeypatch.delitem(validate.CHECKERS, "torch-vgg-caffe")
    with pytest.raises(WeightsError, match="cannot check"):
        validate.check_format(ws, [tmp_path / "x.pth"])


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(UnknownModelError, match=r"did you mean vgg19\.caffe") as err:
        registry.get("vgg19.cafe")
    assert "known: alexnet.torch, biggan-deep.128" in str(err.value)
    with pytest.raises(UnknownModelError) as err:
        registry.get("completely-different")
    assert "did you mean" not in str(err.value)
