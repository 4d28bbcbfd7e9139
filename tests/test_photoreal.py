"""Photo-realistic transfer: masks, the region-to-region transform, the affine smoothing, the pipeline and its API.

Random weights in the reference's file formats (tests/linear_tiny.py); the smoothing is checked against a direct
per-pixel loop written from the reference's CUDA kernels (libs/smooth_filter.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import linear_tiny
import numpy as np
import pytest
import torch
from PIL import Image

import impasto.api as api
from impasto.errors import Cancelled, ConfigError, ImageError, WeightsError
from impasto.events import CancelToken, Finished, Preview, Progress, Started
from impasto.fast.photoreal import (
    PALETTE,
    best_local_affine,
    mask_labels,
    masked_transform,
    region_pairs,
    smooth_local_affine,
    whiten,
)
from impasto.modelcache import ModelCache

RED, BLUE, WHITE, GREEN = PALETTE.index("red"), PALETTE.index("blue"), PALETTE.index("white"), PALETTE.index("green")


def _module(file: str) -> torch.nn.Module:
    m = linear_tiny.module_for(file)
    m.load_state_dict(linear_tiny.state(file))
    return m.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def r31() -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    return _module("vgg_r31.pth"), _module("dec_r31.pth"), _module("r31.pth")


# --- masks ---------------------------------------------------------------------------------------------------------


def test_mask_colours_become_labels_nearest_colour_wins() -> None:
    px = [
        (0, 0, 0),
        (0, 0, 255),
        (0, 255, 0),
        (0, 255, 255),
        (255, 0, 0),
        (255, 0, 255),
        (255, 255, 0),
        (255, 255, 255),
    ]
    mask = Image.new("RGB", (8, 2))
    for i, c in enumerate(px):
        mask.putpixel((i, 0), c)
    # antialiased / noisy colours take the nearest pure colour (the reference leaves them in no region)
    for i, c in enumerate([(20, 10, 30), (40, 5, 200), (10, 180, 60), (90, 170, 250), (230, 60, 40), (200, 0, 140),
                           (250, 240, 100), (150, 200, 210)]):  # fmt: skip
        mask.putpixel((i, 1), c)
    labels = mask_labels(mask, (8, 2))
    assert labels.dtype == torch.int64 and labels.shape == (2, 8)
    assert labels[0].tolist() == list(range(8)) and labels[1].tolist() == list(range(8))
    assert [PALETTE[v] for v in labels[0].tolist()][:5] == ["black", "blue", "green", "light blue", "red"]


def test_a_mask_of_another_size_is_resized_nearest() -> None:
    mask = Image.new("RGB", (2, 2), (255, 0, 0))
    mask.putpixel((1, 0), (0, 0, 255))
    mask.putpixel((0, 1), (0, 255, 0))
    labels = mask_labels(mask, (6, 4))  # (W, H)
    assert labels.shape == (4, 6)
    assert set(labels.unique().tolist()) == {RED, BLUE, GREEN}  # no blended colour, so no new label
    assert (labels[:2, :3] == RED).all() and (labels[:2, 3:] == BLUE).all() and (labels[2:, :3] == GREEN).all()
    assert (labels[2:, 3:] == RED).all()


# --- the region-to-region transform ----------------------------------------------------------------------------------


def test_one_region_everywhere_is_the_plain_transform(r31) -> None:  # noqa: ANN001
    enc, _, trans = r31
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        cF, sF = enc(torch.rand(1, 3, 48, 64, generator=gen)), enc(torch.rand(1, 3, 40, 56, generator=gen))
        got = masked_transform(trans, cF, sF, torch.full((48, 64), WHITE), torch.full((40, 56), WHITE))
        torch.testing.assert_close(got, trans(cF, sF), rtol=1e-5, atol=1e-5)


def _two_region_scene(size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A style whose left half is red and right half blue (mask: red | blue), and a content photo whose mask puts
    blue on top and red below -- positions swapped, so only the colour labels can pair the regions correctly."""
    gen = torch.Generator().manual_seed(0)
    h = size // 2
    content = torch.rand(1, 3, size, size, generator=gen) * 0.5 + 0.25
    style = torch.empty(1, 3, size, size)
    style[0, :, :, :h] = torch.tensor([0.9, 0.1, 0.1])[:, None, None] + 0.05 * torch.rand(3, size, h, generator=gen)
    style[0, :, :, h:] = torch.tensor([0.1, 0.2, 0.9])[:, None, None] + 0.05 * torch.rand(3, size, h, generator=gen)
    s_lab = torch.full((size, size), RED)
    s_lab[:, h:] = BLUE
    c_lab = torch.full((size, size), RED)
    c_lab[:h] = BLUE
    return content, style, c_lab, s_lab


def test_regions_take_the_colour_of_their_own_style_region(r31) -> None:  # noqa: ANN001
    enc, dec, trans = r31
    content, style, c_lab, s_lab = _two_region_scene()
    h = content.shape[-1] // 2
    with torch.inference_mode():
        cF, sF = enc(content), enc(style)
        out = dec(masked_transform(trans, cF, sF, c_lab, s_lab)).clamp(0, 1)
        red_only = dec(trans(cF, enc(style[..., :h]))).clamp(0, 1)  # the whole content in the red half's style
        blue_only = dec(trans(cF, enc(style[..., h:]))).clamp(0, 1)

    def mean(x: torch.Tensor, rows: slice) -> torch.Tensor:
        return x[0, :, rows].mean((1, 2))  # (3,) mean colour of those rows

    top, bottom = slice(0, h), slice(h, None)
    # the top (labelled blue) has the colour blue_only gives there, not red_only's; the bottom the reverse
    assert (mean(out, top) - mean(blue_only, top)).norm() < 0.3 * (mean(out, top) - mean(red_only, top)).norm()
    assert (mean(out, bottom) - mean(red_only, bottom)).norm() < 0.3 * (
        mean(out, bottom) - mean(blue_only, bottom)
    ).norm()
    # and the two regions differ from each other as the two styles do (not one blend over the whole image)
    assert (mean(out, top) - mean(out, bottom)).norm() > 0.5 * (mean(blue_only, top) - mean(red_only, bottom)).norm()


def test_a_colour_missing_from_the_style_mask_takes_the_whole_style(r31) -> None:  # noqa: ANN001
    enc, _, trans = r31
    content, style, c_lab, s_lab = _two_region_scene()
    c_lab = c_lab.clone()
    c_lab[:, :8] = GREEN  # a strip of a colour the style mask does not have
    assert region_pairs(c_lab, s_lab) == {"blue": "blue region", "red": "red region", "green": "whole style"}
    with torch.inference_mode():
        cF, sF = enc(content), enc(style)
        got = masked_transform(trans, cF, sF, c_lab, s_lab)
        # the same as a style mask that is one region everywhere, for those pixels: whole-style statistics
        whole = masked_transform(trans, cF, sF, c_lab, torch.full_like(s_lab, WHITE))
        strip = (slice(None), slice(None), slice(None), slice(0, 2))  # 8 px = 2 feature columns at r31
        torch.testing.assert_close(got[strip], whole[strip], rtol=1e-5, atol=1e-5)
        assert (got[..., 2:] - whole[..., 2:]).abs().max() > 1e-2  # elsewhere the regions' own styles


def test_the_whitened_guide_has_identity_covariance_plus_shrinkage() -> None:
    gen = torch.Generator().manual_seed(0)
    mix = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    x = (mix @ torch.rand(3, 40 * 30, generator=gen) * 4.0).reshape(1, 3, 40, 30)
    w = whiten(x).reshape(3, -1).double()
    assert w.mean(1).abs().max() < 1e-6
    cov = torch.cov(w)
    c = torch.cov(x.reshape(3, -1).double())
    e, v = torch.linalg.eigh(c)
    want = v @ torch.diag(e / (e + 1)) @ v.t()  # whitening by (cov + I)^-1/2, as the reference: cov / (cov + I)
    torch.testing.assert_close(cov, want, rtol=1e-5, atol=1e-6)


# --- the affine smoothing ------------------------------------------------------------------------------------------


def _loop_smooth(output: np.ndarray, guide: np.ndarray, f_r: int, f_e: float) -> np.ndarray:
    """smooth_filter.py's three CUDA kernels, per pixel, in the kernels' own order (patch 3, reg 1e-3)."""
    _, h, w = guide.shape
    r, g, b = guide
    affine = np.zeros((h, w, 3, 4))
    for y in range(h):
        for x in range(w):  # best_local_affine_kernel
            mtm = np.diag([1e-3, 1e-3, 1e-3, 0.0])
            mts = np.zeros((3, 4))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        row = np.array([r[yy, xx], g[yy, xx], b[yy, xx], 1.0])
                        mtm += np.outer(row, row)
                        mts += np.outer(output[:, yy, xx], row)
            if abs(np.linalg.det(mtm)) >= 1e-9:
                affine[y, x] = mts @ np.linalg.inv(mtm).T
    sigma1 = f_r / 3
    filtered = np.zeros_like(affine)
    for y in range(h):
        for x in range(w):  # bilateral_smooth_kernel
            total, weight_sum = np.zeros((3, 4)), 0.0
            for dx in range(-f_r, f_r + 1):
                for dy in range(-f_r, f_r + 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= xx < w and 0 <= yy < h:
                        d = ((guide[:, yy, xx] - guide[:, y, x]) ** 2).sum() / 3
                        wgt = math.exp(-(dx * dx + dy * dy) / (2 * sigma1 * sigma1)) * math.exp(-d / (2 * f_e * f_e))
                        total += wgt * affine[yy, xx]
                        weight_sum += wgt
            filtered[y, x] = total / weight_sum
    rows = np.concatenate([guide, np.ones((1, h, w))])  # reconstruction_best_kernel
    return np.einsum("hwcj,jhw->chw", filtered, rows)


def test_smoothing_matches_the_kernels_pixel_by_pixel() -> None:
    gen = torch.Generator().manual_seed(0)
    guide = torch.rand(3, 6, 7, generator=gen)
    guide[:, :, 4:] = torch.tensor([0.9, 0.8, 0.1])[:, None, None]  # a flat patch: the regulariser matters there
    output = torch.rand(3, 6, 7, generator=gen)
    for radius, edge in ((2, 0.1), (3, 0.5)):
        want = _loop_smooth(output.double().numpy(), guide.double().numpy(), radius, edge)
        got = smooth_local_affine(output, guide, f_radius=radius, f_edge=edge)
        assert got.shape == (3, 6, 7) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-5)


def test_local_affine_fit_is_exact_for_an_affine_recolouring() -> None:
    gen = torch.Generator().manual_seed(1)
    guide = torch.rand(3, 9, 9, generator=gen)
    m = torch.tensor([[0.5, 0.2, 0.0], [0.1, 0.6, 0.1], [0.0, 0.3, 0.4]])
    output = torch.einsum("ij,jhw->ihw", m, guide) + torch.tensor([0.1, 0.2, 0.05])[:, None, None]
    a = best_local_affine(output, guide).reshape(3, 4, 9, 9)
    torch.testing.assert_close(a[:, :3, 4, 4], m.double(), rtol=0, atol=2e-2)  # up to the 1e-3 ridge
    torch.testing.assert_close(smooth_local_affine(output, guide), output, rtol=0, atol=1e-2)


def test_smoothing_keeps_edges_and_removes_noise() -> None:
    gen = torch.Generator().manual_seed(2)
    h, w = 32, 48
    content = torch.empty(1, 3, h, w)
    content[..., : w // 2] = torch.tensor([0.2, 0.3, 0.4])[:, None, None]
    content[..., w // 2 :] = torch.tensor([0.8, 0.7, 0.6])[:, None, None]
    clean = 0.5 * content + 0.2  # the stylised picture: a recoloured step
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=gen)
    out = smooth_local_affine(noisy, content)
    left, right = (..., slice(None), slice(0, w // 2 - 1)), (..., slice(None), slice(w // 2 + 1, None))
    for side in (left, right):
        assert out[side].var(dim=(2, 3)).max() < 0.05 * noisy[side].var(dim=(2, 3)).min()  # noise gone
    step = out[..., w // 2].mean((0, 2)) - out[..., w // 2 - 1].mean((0, 2))  # across the edge, one pixel apart
    torch.testing.assert_close(step, torch.full((3,), 0.5) * (content[0, :, 0, -1] - content[0, :, 0, 0]), atol=0.02,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(out, clean, atol=0.03, rtol=0)


# --- the pipeline through the API ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A cache holding random linear.r31, linear.r41 and linear.spn weights in the reference's formats."""
    from impasto.zoo import linear_format, registry

    home = tmp_path_factory.mktemp("photoreal-home")
    files = tmp_path_factory.mktemp("photoreal-files")
    linear_tiny.write_all(files, ("vgg_r31.pth", "dec_r31.pth", "r31.pth", "vgg_r41.pth", "dec_r41.pth", "r41.pth",
                                  "r41_spn.pth"))  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMPASTO_HOME", str(home))
        for name in ("linear.r31", "linear.r41", "linear.spn"):
            linear_format.import_files(registry.get(name), files)
        yield home


def _picture(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0])[None, :, None] * np.array([1.0, 0.6, 0.3])
    return Image.fromarray(np.clip(base + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8))


def test_photoreal_end_to_end_with_masks_events_and_exact_size(installed, tmp_path: Path) -> None:  # noqa: ANN001
    content, style = _picture((70, 52), 0), _picture((64, 64), 1)  # 70x52: not multiples of 8
    c_mask = Image.new("RGB", (35, 26), (255, 0, 0))  # half the content's size: resized nearest
    c_mask.paste((0, 0, 255), (0, 0, 35, 13))
    s_mask = Image.new("RGB", (64, 64), (0, 0, 255))
    s_mask.paste((255, 0, 0), (0, 0, 32, 64))
    c_mask.save(tmp_path / "c.png")
    events: list = []
    models = ModelCache()
    out = api.photoreal(content, style, layer="r31", content_mask=tmp_path / "c.png", style_mask=s_mask,
                        device="cpu", models=models, callback=events.append)  # fmt: skip
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (70, 52)
    kinds = [type(e) for e in events]
    assert kinds == [Started, Preview, Progress, Preview, Progress, Preview, Progress, Finished]
    assert [e.info["stage"] for e in events if isinstance(e, Progress)] == ["transfer", "spn", "smooth"]
    assert events[0].info["model"] == "linear.r31 + linear.spn" and events[-1].result is out
    assert all(isinstance(e.image, Image.Image) and e.image.mode == "RGB" for e in events if isinstance(e, Preview))
    # smoothing rebuilds the picture from the content's colours: it follows the content closer than the SPN output
    spn_out = np.asarray(events[3].image, dtype=np.float64)
    smoothed = np.asarray(out, dtype=np.float64)
    assert np.abs(smoothed - spn_out).mean() > 0.5  # the smoothing did something
    assert ("linear", "spn", "cpu") in models  # kept for the next call
    plain = api.photoreal(content, style, layer="r31", smooth=False, size=40, device="cpu", models=models)
    assert plain.size == (40, 30)


def test_photoreal_r41_without_masks(installed) -> None:  # noqa: ANN001
    out = api.photoreal(_picture((64, 48), 2), _picture((48, 48), 3), smooth=False, device="cpu")
    assert out.size == (64, 48) and np.asarray(out).std() > 1.0


def test_cancel_hands_over_the_latest_stage(installed) -> None:  # noqa: ANN001
    token = CancelToken()

    def cb(event: object) -> None:
        if isinstance(event, Progress) and event.info["stage"] == "spn":
            token.cancel()

    with pytest.raises(Cancelled) as info:
        api.photoreal(_picture((32, 32), 4), _picture((32, 32), 5), layer="r31", device="cpu", callback=cb,
                      cancel=token)  # fmt: skip
    assert isinstance(info.value.partial, Image.Image) and info.value.partial.size == (32, 32)


def test_bad_inputs_are_one_line(installed, tmp_path: Path) -> None:  # noqa: ANN001
    content, style = _picture((32, 32), 6), _picture((32, 32), 7)
    broken = tmp_path / "mask.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageError) as info:
        api.photoreal(content, style, content_mask=broken, style_mask=content, device="cpu")
    assert "mask.png" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ImageError, match="not found"):
        api.photoreal(content, style, content_mask=tmp_path / "missing.png", style_mask=content, device="cpu")
    with pytest.raises(ConfigError, match="both a content mask and a style mask"):
        api.photoreal(content, style, content_mask=content, device="cpu")
    with pytest.raises(ConfigError, match="unknown layer"):
        api.photoreal(content, style, layer="r51", device="cpu")
    with pytest.raises(ConfigError, match="at least 16"):
        api.photoreal(Image.new("RGB", (12, 40)), style, device="cpu")


def test_missing_weights_say_how_to_get_them(fresh_home) -> None:  # noqa: ANN001
    with pytest.raises(WeightsError) as info:
        api.photoreal(_picture((32, 32), 8), _picture((32, 32), 9), device="cpu", models=ModelCache())
    msg = str(info.value)
    assert "linear.r41" in msg and "impasto models download" in msg and "\n" not in msg


# --- the command: impasto stylize --photoreal ------------------------------------------------------------------


def test_cli_photoreal_end_to_end_and_its_refusals(fresh_home, tmp_path) -> None:  # noqa: ANN001
    import tiny_weights as tw

    from impasto.cli.main import main

    lt = linear_tiny

    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    tw.image(photo, size=(40, 32), seed=0)
    tw.image(style, size=(36, 36), seed=1)
    out = tmp_path / "out.png"
    args = ["stylize", str(photo), "--style", str(style), "--photoreal", "-o", str(out), "--device", "cpu"]
    assert main(args) == 1 and not out.exists()  # weights missing: one line, before any work
    zipped = lt.write_zip(tmp_path / "models.zip")
    assert main(["-q", "models", "import", "linear.r41", str(zipped)]) == 0
    assert main(["-q", "models", "import", "linear.spn", str(zipped)]) == 0
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.array([[0, 0, 0], [255, 0, 0]], np.uint8).repeat(20, 0)[:, None], (1, 40, 1))).save(mask)
    assert main(["-q", *args, "--content-mask", str(mask), "--style-mask", str(mask), "--no-smooth"]) == 0
    with Image.open(out) as im:
        assert im.size == (40, 32) and np.asarray(im.convert("RGB")).std() > 0
    for extra in (["--method", "magenta"], ["--strength", "0.5"], ["--content-mask", str(mask)]):
        assert main([*args, "--overwrite", *extra]) == 2
    assert main(["stylize", str(photo), "--style", str(style), "--no-smooth", "-o", str(tmp_path / "x.png")]) == 2
