"""Quality scores (impasto.score, api.score, ``impasto score``) against values worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tiny_weights as tw
import torch
from PIL import Image

from impasto import api
from impasto import score as S
from impasto.cli.main import main
from impasto.errors import ConfigError


def _constant(value: float, h: int = 16, w: int = 16) -> torch.Tensor:
    return torch.full((1, 3, h, w), value, dtype=torch.float64)


def _random(seed: int = 0, h: int = 12, w: int = 10, high: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=gen, dtype=torch.float64) * high


# --- content: SSIM / PSNR on luminance --------------------------------------------------------------------------


def test_identical_images_give_ssim_1_and_psnr_inf() -> None:
    x = _random(1, 24, 20)
    scores = S.content_scores(x, x.clone())
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert scores["psnr"] == math.inf


def test_psnr_and_ssim_of_constant_images_match_the_closed_forms() -> None:
    # Y weights sum to 1, so a grey 0.5 vs 0.6 has luminance difference 0.1: MSE 0.01, PSNR 10 log10(1/0.01) = 20 dB
    scores = S.content_scores(_constant(0.5), _constant(0.6))
    assert scores["psnr"] == pytest.approx(20.0, rel=1e-6)  # torchmetrics takes the log in float32
    # sigma = 0 everywhere: SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (0.01 * data_range)^2
    c1 = 1e-4
    assert scores["ssim"] == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1), rel=1e-6)


def test_psnr_is_on_luminance() -> None:
    # a shift d of green alone moves Y by 0.587 d: PSNR = -20 log10(0.587 d)
    a = _random(2, high=0.5)
    b = a.clone()
    b[:, 1] += 0.2
    assert S.content_scores(a, b)["psnr"] == pytest.approx(-20 * math.log10(0.587 * 0.2), rel=1e-6)


def test_luminance_is_bt601() -> None:
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert S.luminance(x).item() == pytest.approx(0.299)
    assert S.luminance(torch.tensor([0.2, 0.4, 0.8]).view(1, 3, 1, 1)).item() == pytest.approx(
        0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.8
    )


def test_content_is_resized_to_the_output() -> None:
    # a constant photo stays constant when resized: PSNR of grey 0.5 against a grey 0.6 photo twice the size is 20 dB
    assert S.content_scores(_constant(0.5, 16, 12), _constant(0.6, 32, 24))["psnr"] == pytest.approx(20.0, rel=1e-6)


# --- style: Gram and Gaussian W2 --------------------------------------------------------------------------------


def test_gram_distance_by_hand() -> None:
    # one channel, two positions: G = sum f^2 / (C H W): [1, 1] -> 1, [2, 0] -> 2; distance (1 - 2)^2 = 1
    a = torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)
    b = torch.tensor([2.0, 0.0]).view(1, 1, 1, 2)
    assert S.gram_distance(a, b) == pytest.approx(1.0)
    # two channels, one position: G = [[1, 2], [2, 4]] / 2 against 0: mean of squares (0.25 + 1 + 1 + 4) / 4
    c = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    assert S.gram_distance(c, torch.zeros(1, 2, 1, 1)) == pytest.approx(1.5625)
    assert S.gram_distance(c, c) == 0.0


def test_feature_stats_by_hand() -> None:
    f = torch.tensor([[1.0, 3.0, 1.0, 3.0], [0.0, 0.0, 2.0, 2.0]]).view(1, 2, 2, 2)
    mu, cov = S.feature_stats(f)
    assert mu.tolist() == [2.0, 1.0]
    assert torch.allclose(cov, torch.eye(2, dtype=torch.float64))  # both variances 1, covariance 0


def test_w2_of_diagonal_gaussians_matches_the_closed_form() -> None:
    # diagonal: sum (sqrt(a) - sqrt(b))^2 + |mu1 - mu2|^2 = ((1-2)^2 + (2-1)^2 + (3-4)^2) + (1 + 0 + 4) = 8
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 16.0])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    assert S.gaussian_w2(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(8.0, rel=1e-12)
    # the same pair rotated (commuting, not diagonal) has the same distance
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    s1, s2 = q @ torch.diag(a).double() @ q.t(), q @ torch.diag(b).double() @ q.t()
    assert S.gaussian_w2(q @ mu1.double(), s1, q @ mu2.double(), s2) == pytest.approx(8.0, rel=1e-9)
    # one dimension: N(0, 1) vs N(3, 4): (1 - 2)^2 + 9
    assert S.gaussian_w2(torch.zeros(1), torch.ones(1, 1), torch.full((1,), 3.0), torch.full((1, 1), 4.0)) == (
        pytest.approx(10.0)
    )


def test_w2_of_a_gaussian_with_itself_is_zero() -> None:
    m = torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cov = m @ m.t()
    mu = torch.arange(5.0)
    assert S.gaussian_w2(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)


def test_style_scores_average_over_layers() -> None:
    one = torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)  # mean 1, variance 0
    two = torch.tensor([2.0, 0.0]).view(1, 1, 1, 2)  # mean 1, variance 1
    out = {"a": one, "b": one}
    style = {"a": two, "b": one}
    # layer a: gram 1, w2 (sqrt(0) - sqrt(1))^2 = 1; layer b: 0 and 0
    assert S.style_scores(out, style, ["a", "b"]) == pytest.approx({"gram": 0.5, "w2": 0.5})


# --- colour: sliced Wasserstein ---------------------------------------------------------------------------------


def test_color_swd_is_zero_for_identical_and_rearranged_pixels() -> None:
    x = _random(3)
    assert S.color_swd(x, x.clone()) == 0.0
    assert S.color_swd(x, torch.flip(x, dims=(2, 3))) == pytest.approx(0.0, abs=1e-15)
    # a 2x2 image against its 4x4 nearest-neighbour enlargement: the same distribution at the common quantiles
    small = _random(4, 2, 2)
    big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert S.color_swd(small, big) == pytest.approx(0.0, abs=1e-15)


def test_color_swd_of_a_constant_shift_with_fixed_directions() -> None:
    a = _random(5, high=0.5)
    b = a.clone()
    b[:, 1] += 0.25  # green shifted by d = 0.25
    # direction (0.6, 0.8, 0): every projection moves by 0.8 d, so the quantiles differ by 0.2
    assert S.color_swd(a, b, directions=torch.tensor([[0.6, 0.8, 0.0]], dtype=torch.float64)) == pytest.approx(
        0.2, rel=1e-12
    )
    # two directions: mean of |theta_g| d = (0 + 1) / 2 * 0.25
    two = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert S.color_swd(a, b, directions=two) == pytest.approx(0.125, rel=1e-12)


def test_color_swd_of_a_constant_shift_with_random_directions() -> None:
    a = _random(6, high=0.5)
    b = a.clone()
    b[:, 2] += 0.3
    theta = S.projection_directions(64, seed=0)
    assert torch.allclose(theta.norm(dim=1), torch.ones(64, dtype=torch.float64))
    expected = float(theta[:, 2].abs().mean()) * 0.3  # mean |theta_c| * d
    assert S.color_swd(a, b, projections=64, seed=0) == pytest.approx(expected, rel=1e-12)


def test_color_swd_samples_large_images_deterministically() -> None:
    a, b = _random(7, 260, 260), _random(8, 260, 260)  # 67600 pixels > MAX_COLOR_PIXELS: a seeded sample
    first = S.color_swd(a, b)
    assert first == S.color_swd(a, b)
    assert first < 0.05  # two samples of one uniform distribution


# --- api.score with a tiny random VGG ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("score")
    weights = tw.write(tw.vgg_state(), d / "tiny.pth")
    photo = tw.image(d / "photo.png", size=(48, 40), seed=0)
    tw.image(d / "style.png", size=(40, 40), seed=1)
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(d / "grey128.png")
    Image.fromarray(np.full((32, 32, 3), 153, np.uint8)).save(d / "grey153.png")
    del photo
    return d, weights


def test_api_scores_of_identical_images(files) -> None:  # noqa: ANN001
    d, weights = files
    photo = str(d / "photo.png")
    r = api.score(photo, content=photo, style=photo, network=weights, device="cpu")
    assert set(r) == {"content", "style", "network"}
    assert r["content"]["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert r["content"]["psnr"] == math.inf
    assert r["style"]["gram"] == 0.0
    assert r["style"]["color_swd"] == 0.0
    assert r["style"]["w2"] == pytest.approx(0.0, abs=1e-6)
    assert "tiny.pth" in r["network"]


def test_api_scores_of_different_images(files) -> None:  # noqa: ANN001
    d, weights = files
    r = api.score(d / "photo.png", content=d / "style.png", style=d / "style.png", network=str(weights))
    assert r["content"]["psnr"] < 40 and r["content"]["ssim"] < 0.9
    assert r["style"]["gram"] > 0 and r["style"]["w2"] > 0 and r["style"]["color_swd"] > 0
    only_content = api.score(d / "photo.png", content=d / "photo.png")
    assert only_content["style"] is None and only_content["network"] is None


def test_api_psnr_against_a_resized_content_photo(files) -> None:  # noqa: ANN001
    d, _ = files
    r = api.score(d / "grey128.png", content=d / "grey153.png")  # 16 px output, 32 px photo; Y differs by 25/255
    assert r["content"]["psnr"] == pytest.approx(20 * math.log10(255 / 25), rel=1e-5)


def test_api_refusals(files) -> None:  # noqa: ANN001
    d, weights = files
    photo = d / "photo.png"
    with pytest.raises(ConfigError, match="content photo and/or a style image"):
        api.score(photo)
    with pytest.raises(ConfigError, match="does not exist"):
        api.score(photo, style=photo, network=d / "missing.pth")
    with pytest.raises(ConfigError, match="lpips"):
        api.score(photo, style=photo, network=weights, lpips=True)
    r = api.score(photo, content=photo, lpips=True)
    assert "LPIPS skipped" in r["skipped"]["lpips"]


# --- the command ------------------------------------------------------------------------------------------------


def test_cli_json(files, capsys) -> None:  # noqa: ANN001
    d, weights = files
    photo = str(d / "photo.png")
    assert main(["score", photo, "--content", photo, "--style", photo, "--network", str(weights), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["content"] == {"ssim": pytest.approx(1.0), "psnr": "inf"}
    assert set(out["style"]) == {"gram", "w2", "color_swd"}
    assert out["style"]["color_swd"] == 0.0
    assert "tiny.pth" in out["network"]


def test_cli_table(files, capsys) -> None:  # noqa: ANN001
    d, weights = files
    assert main(["score", str(d / "photo.png"), "-c", str(d / "style.png"), "-s", str(d / "style.png"),
                 "--network", str(weights)]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines[:5]] == [
        ["content", "ssim"], ["content", "psnr"], ["style", "gram"], ["style", "w2"], ["style", "color_swd"]
    ]  # fmt: skip
    assert len({ln.index(ln.split()[2]) for ln in lines[:5]}) == 1  # values aligned in one column


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["{photo}"], 2, "--content and/or --style"),
        (["{d}/nope.png", "-c", "{photo}"], 1, "nope.png"),
        (["{photo}", "-s", "{photo}", "--network", "no-such-net"], 2, "no-such-net"),
        (["{photo}", "-s", "{photo}", "--network", "{d}/missing.pth"], 2, "missing.pth"),
        (["{photo}", "-c", "{photo}", "--device", "tpu"], 2, "tpu"),
    ],
)
def test_cli_errors_are_one_line(files, capsys, args, code, needle) -> None:  # noqa: ANN001
    d, _ = files
    argv = ["score", *(a.format(d=d, photo=d / "photo.png") for a in args)]
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("impasto: error:") and needle in err, err


def test_cli_lpips_skip_is_one_line(files, capsys) -> None:  # noqa: ANN001
    d, _ = files
    photo = str(d / "photo.png")
    assert main(["score", photo, "-c", photo, "--lpips", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().startswith("LPIPS skipped") and "\n" not in captured.err.strip()
    assert json.loads(captured.out)["skipped"]["lpips"].startswith("LPIPS skipped")


def test_default_network_is_the_one_paint_uses(files, fresh_home) -> None:  # noqa: ANN001
    # no VGG installed: paint (and so score) falls back to the offline MobileNetV2 of the Magenta predictor
    from impasto.zoo.torch_formats import OFFLINE_DEFAULT, resolve_model

    d, _ = files
    assert resolve_model(None, None) == OFFLINE_DEFAULT
    r = api.score(d / "photo.png", style=d / "photo.png", device="cpu")
    assert r["network"] == OFFLINE_DEFAULT
    assert r["style"]["gram"] == 0.0 and r["style"]["w2"] == pytest.approx(0.0, abs=1e-6)
    assert r["content"] is None
