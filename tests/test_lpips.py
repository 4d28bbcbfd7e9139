"""LPIPS (impasto.nets.lpips, impasto.zoo.lpips_format, api.score(lpips=...), ``impasto score --lpips``).

Random weights in the real upstream formats (torchvision's AlexNet / VGG-16 state dicts, the lpips package's
``lin{i}.model.1.weight`` files) at the real channel widths; checked against a float64 computation written here
with ``F.conv2d`` and against the reference ``lpips`` package (0.1.4, installed with ``--no-deps``) running on a
stub torchvision that hands it the same random trunk.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import cli_proc
import pytest
import tiny_weights as tw
import torch
import torch.nn.functional as F
from torch import nn

from impasto.cli.main import main
from impasto.errors import ConfigError, WeightsError
from impasto.zoo import lpips_format, registry, store

ALEX_CHANNELS = (64, 192, 384, 256, 256)
VGG_CHANNELS = (64, 128, 256, 512, 512)
# torchvision's alexnet().features convs: (index, out, kernel, stride, padding)
ALEX_CONVS = ((0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1), (8, 256, 3, 1, 1), (10, 256, 3, 1, 1))
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
SHIFT = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)


def _alex_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    cin = 3
    for pos, cout, k, _, _ in ALEX_CONVS:
        sd[f"features.{pos}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5
        sd[f"features.{pos}.bias"] = torch.randn(cout, generator=gen) * 0.01
        cin = cout
    # a few classifier entries of torchvision's shapes (its 4096 x 9216 weights would make a 200 MB test file)
    sd["classifier.1.bias"] = torch.zeros(4096)
    sd["classifier.4.bias"] = torch.zeros(4096)
    sd["classifier.6.bias"] = torch.zeros(1000)
    return sd


def _lin_state(channels: tuple[int, ...], seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) for i, c in enumerate(channels)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lpips-weights")
    vgg = tw.vgg_state(blocks=tw.VGG16_BLOCKS, widths=VGG_CHANNELS, classifier=False, seed=2)
    return {
        "alexnet": tw.write(_alex_state(), d / "alexnet-owt-7be5be79.pth"),
        "vgg16": tw.write(vgg, d / "vgg16-397923af.pth"),
        "alex": tw.write(_lin_state(ALEX_CHANNELS), d / "alex.pth"),
        "vgg": tw.write(_lin_state(VGG_CHANNELS, seed=3), d / "vgg.pth"),
    }


def _trunk_file(files: dict[str, Path], net: str) -> Path:
    return files["alexnet" if net == "alex" else "vgg16"]


def _images(seed: int, n: int = 2, h: int = 64, w: int = 72) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- the module: a distance, and the formula -------------------------------------------------------------------


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_zero_for_identical_symmetric_positive_otherwise(files, net) -> None:  # noqa: ANN001
    model = lpips_format.load_lpips_files(net, _trunk_file(files, net), files[net])
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    a, b = _images(0), _images(1)
    with torch.no_grad():
        same, ab, ba = model(a, a.clone()), model(a, b), model(b, a)
    assert same.shape == (2,) and torch.equal(same, torch.zeros(2))
    torch.testing.assert_close(ab, ba, rtol=1e-6, atol=0)
    assert (ab > 0).all()


def _features64(net: str, sd: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """The five LPIPS taps of ``x`` in float64, straight from the state dict with F.conv2d."""
    w = {k: v.double() for k, v in sd.items()}
    taps: list[torch.Tensor] = []
    if net == "alex":
        for pos, _, _, stride, pad in ALEX_CONVS:
            if pos in (3, 6):  # the 3x3 / stride 2 max pools before conv2 and conv3
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, w[f"features.{pos}.weight"], w[f"features.{pos}.bias"], stride, pad))
            taps.append(x)
        return taps
    pos = 0
    for c in VGG16_CFG:
        if c == "M":
            taps.append(x)  # the last ReLU before each pool: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
            x = F.max_pool2d(x, 2, 2)
            pos += 1
        else:
            x = F.relu(F.conv2d(x, w[f"features.{pos}.weight"], w[f"features.{pos}.bias"], 1, 1))
            pos += 2
    return taps


def _lpips64(net: str, files: dict[str, Path], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    sd = torch.load(_trunk_file(files, net), weights_only=True)
    lins = torch.load(files[net], weights_only=True)
    za = ((2 * a.double() - 1) - SHIFT) / SCALE
    zb = ((2 * b.double() - 1) - SHIFT) / SCALE
    total = torch.zeros(a.shape[0], dtype=torch.float64)
    for i, (fa, fb) in enumerate(zip(_features64(net, sd, za), _features64(net, sd, zb), strict=True)):
        na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        lin = lins[f"lin{i}.model.1.weight"].double()  # (1, C, 1, 1)
        total += F.conv2d((na - nb) ** 2, lin).mean(dim=(1, 2, 3))
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_formula_in_float64(files, net) -> None:  # noqa: ANN001
    model = lpips_format.load_lpips_files(net, _trunk_file(files, net), files[net])
    a, b = _images(2), _images(3)
    with torch.no_grad():
        got = model(a, b).double()
    torch.testing.assert_close(got, _lpips64(net, files, a, b), rtol=1e-5, atol=0)


# --- against the reference lpips package -------------------------------------------------------------------


def _torchvision_features(net: str, sd: dict[str, torch.Tensor]) -> nn.Sequential:
    """torchvision's ``alexnet().features`` / ``vgg16().features`` layout, loaded from ``sd``'s features.*."""
    layers: list[nn.Module] = []
    if net == "alex":
        cin = 3
        for pos, cout, k, stride, pad in ALEX_CONVS:
            if pos in (3, 6):
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            layers += [nn.Conv2d(cin, cout, k, stride=stride, padding=pad), nn.ReLU(inplace=True)]
            cin = cout
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
    else:
        cin = 3
        for c in VGG16_CFG:
            if c == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, int(c), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(c)
    seq = nn.Sequential(*layers)
    seq.load_state_dict({k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")})
    return seq


@pytest.fixture
def reference_lpips(files, monkeypatch):  # noqa: ANN001, ANN201
    """The lpips package imported on a stub torchvision whose alexnet() / vgg16() carry the random trunks."""
    trunks = {n: torch.load(_trunk_file(files, n), weights_only=True) for n in ("alex", "vgg")}
    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.alexnet = lambda pretrained=False, **kw: types.SimpleNamespace(  # type: ignore[attr-defined]
        features=_torchvision_features("alex", trunks["alex"])
    )
    models.vgg16 = lambda pretrained=False, **kw: types.SimpleNamespace(  # type: ignore[attr-defined]
        features=_torchvision_features("vgg", trunks["vgg"])
    )
    tv.models = models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)  # bind a fresh import to this stub
    if importlib.util.find_spec("scipy") is None:  # lpips.trainer imports scipy.ndimage.zoom; LPIPS never uses it
        scipy, ndimage = types.ModuleType("scipy"), types.ModuleType("scipy.ndimage")
        ndimage.zoom = None  # type: ignore[attr-defined]
        scipy.ndimage = ndimage  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "scipy", scipy)
        monkeypatch.setitem(sys.modules, "scipy.ndimage", ndimage)
    if importlib.util.find_spec("lpips") is None:  # skipped only when absent; any other import failure fails
        pytest.skip("the reference lpips package is not installed (make setup runs pip install --no-deps lpips==0.1.4)")
    lpips = importlib.import_module("lpips")
    yield lpips
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        del sys.modules[name]  # it holds the stub torchvision


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_reference_package(files, reference_lpips, net) -> None:  # noqa: ANN001
    ref = reference_lpips.LPIPS(net=net, pretrained=True, model_path=str(files[net]), pnet_rand=True, verbose=False)
    # the reference really loaded the lin file (strict=False there: check it did not keep its random init)
    torch.testing.assert_close(
        ref.lins[0].model[1].weight, torch.load(files[net], weights_only=True)["lin0.model.1.weight"]
    )
    model = lpips_format.load_lpips_files(net, _trunk_file(files, net), files[net])
    a, b = _images(4, n=3), _images(5, n=3)
    with torch.no_grad():
        expected = ref(2 * a - 1, 2 * b - 1).reshape(-1)  # the reference takes [-1, 1]
        got = model(a, b)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


# --- the zoo: format checks, import, load ----------------------------------------------------------------------


def _as_canonical(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Random files cannot match the published sha256: drop the digests of these records for this test."""
    for n in names:
        ws = registry.get(n)
        monkeypatch.setitem(registry.REGISTRY, n, replace(ws, sha256=(None,), sha256_prefix=(None,), size=(None,)))


def test_registry_records() -> None:
    alex, vgg = registry.get("lpips.alex"), registry.get("lpips.vgg")
    assert alex.kind == vgg.kind == "lpips-linear" and alex.upstream_format == registry.LPIPS_LINEAR
    assert alex.sha256 == ("df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",)
    assert alex.size == (6009,) and vgg.size == (7289,)
    assert alex.extra == {"trunk": "alexnet.torch"} and vgg.extra == {"trunk": "vgg16.torch"}
    assert registry.get("alexnet.torch").sha256_prefix == ("7be5be79",)
    assert registry.get("vgg16.torch").sha256_prefix == ("397923af",)


def test_not_installed_names_both_sets_and_commands(fresh_home) -> None:  # noqa: ANN001
    with pytest.raises(WeightsError) as err:
        lpips_format.load_lpips("alex")
    msg = str(err.value)
    assert "impasto models download lpips.alex" in msg and "impasto models download alexnet.torch" in msg
    assert "impasto models import NAME FILE" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="alex, vgg"):
        lpips_format.load_lpips("squeeze")


def test_import_and_load_through_the_zoo(files, fresh_home, monkeypatch, capsys) -> None:  # noqa: ANN001
    _as_canonical(monkeypatch, "lpips.vgg", "vgg16.torch")
    assert main(["models", "import", "lpips.vgg", str(files["vgg"])]) == 0
    assert lpips_format.missing_sets("vgg") == ["vgg16.torch"]
    assert main(["models", "import", "vgg16.torch", str(files["vgg16"])]) == 0
    assert main(["models", "verify", "lpips.vgg"]) == 0
    capsys.readouterr()
    assert main(["models", "info", "lpips.vgg"]) == 0
    assert "lpips-linear" in capsys.readouterr().out
    model = lpips_format.load_lpips("vgg")
    a, b = _images(6), _images(7)
    with torch.no_grad():
        torch.testing.assert_close(model(a, b).double(), _lpips64("vgg", files, a, b), rtol=1e-5, atol=0)


def test_wrong_shape_lin_file_is_refused_through_the_cli(files, tmp_path) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    bad = _lin_state(ALEX_CHANNELS)
    bad["lin2.model.1.weight"] = torch.rand(1, 256, 1, 1)  # relu3 has 384 channels
    path = tw.write(bad, tmp_path / "alex.pth")
    res = cli_proc.run(["models", "import", "lpips.alex", str(path)], env={"IMPASTO_HOME": str(home)})
    assert res.code != 0
    line = res.one_line_error()
    assert "lin2.model.1.weight" in line and "(1, 384, 1, 1)" in line
    assert not (home / "weights" / "lpips.alex").exists()


def test_wrong_alexnet_key_is_named(files, tmp_path) -> None:  # noqa: ANN001
    sd = _alex_state()
    sd["features.3.weight"] = sd["features.3.weight"][:, :, :3, :3].clone()
    path = tw.write(sd, tmp_path / "alexnet.pth")
    with pytest.raises(WeightsError, match=r"'features\.3\.weight' has shape \(192, 64, 3, 3\)"):
        lpips_format.check_weight_set(registry.get("alexnet.torch"), [path])


# --- api.score and ``impasto score --lpips`` through the real CLI ----------------------------------------------


def test_cli_score_lpips(files, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    out_png, content_png = tmp_path / "out.png", tmp_path / "content.png"
    tw.image(out_png, size=(72, 64), seed=1)
    tw.image(content_png, size=(90, 80), seed=2)  # resized to the output's size
    env = {"IMPASTO_HOME": str(home)}
    args = ["score", out_png, "--content", content_png, "--lpips", "--json"]
    # not installed: one line on stderr naming the commands, exit 0, no lpips in the scores
    res = cli_proc.run(args, env=env)
    assert res.code == 0, res.err
    err = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("LPIPS skipped") and "impasto models download lpips.alex" in err[0]
    assert "lpips" not in json.loads(res.out)["content"]
    # a bad choice: one usage line, exit 2
    bad = cli_proc.run(["score", out_png, "--content", content_png, "--lpips", "foo"], env=env)
    assert bad.code == 2 and "foo" in bad.one_line_error()
    # import the random files (their digests waived in this process), then score in a fresh process
    monkeypatch.setenv("IMPASTO_HOME", str(home))
    _as_canonical(monkeypatch, "lpips.alex", "alexnet.torch")
    assert main(["models", "import", "lpips.alex", str(files["alex"])]) == 0
    assert main(["models", "import", "alexnet.torch", str(files["alexnet"])]) == 0
    res = cli_proc.run(args, env=env)
    assert res.code == 0, res.err
    value = json.loads(res.out)["content"]["lpips"]
    from PIL import Image

    from impasto import score as S
    from impasto.imaging import pil_to_tensor

    model = lpips_format.load_lpips_files("alex", files["alexnet"], files["alex"])
    out_t, content_t = (pil_to_tensor(Image.open(p).convert("RGB")) for p in (out_png, content_png))
    assert value > 0 and value == pytest.approx(S.lpips_distance(model, out_t, content_t), rel=1e-5)
    assert store.is_installed("lpips.alex")


def test_api_lpips_argument_is_checked(files, tmp_path) -> None:  # noqa: ANN001
    from impasto import api

    photo = tmp_path / "p.png"
    tw.image(photo, size=(40, 32))
    with pytest.raises(ConfigError, match="alex, vgg") as err:
        api.score(photo, content=photo, lpips="squeeze")
    assert "'squeeze'" in str(err.value)


def test_api_score_lpips_caches_the_model_and_refuses_tiny_images(files, fresh_home, monkeypatch, tmp_path) -> None:  # noqa: ANN001
    from impasto import api

    _as_canonical(monkeypatch, "lpips.alex", "alexnet.torch")
    store.import_files("lpips.alex", files["alex"])
    store.import_files("alexnet.torch", files["alexnet"])
    out_png, content_png, tiny = tmp_path / "o.png", tmp_path / "c.png", tmp_path / "t.png"
    tw.image(out_png, size=(48, 40), seed=3)
    tw.image(content_png, size=(48, 40), seed=4)
    tw.image(tiny, size=(16, 16), seed=5)
    first = api.score(out_png, content=content_png, lpips="alex", device="cpu")
    assert "skipped" not in first and first["content"]["lpips"] > 0
    assert ("lpips", "alex", "cpu") in api.default_models
    assert api.score(out_png, content=out_png, lpips=True, device="cpu")["content"]["lpips"] == 0.0
    with pytest.raises(ConfigError, match="too small for LPIPS"):
        api.score(tiny, content=tiny, lpips=True, device="cpu")
