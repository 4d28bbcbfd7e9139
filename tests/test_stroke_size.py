"""The stroke-size control (``--working-size``): paint at a working size, upsample guided by the full-size photo."""

from __future__ import annotations

import cli_proc
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from impasto import api
from impasto.fast import tiling
from impasto.fast.magenta import MagentaStylizer, StylizeOptions, parse_presets


def _blocks(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo of sharp-edged coloured rectangles with a little noise: (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 128.0)
    for _ in range(40):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y : y + rng.integers(8, h // 3), x : x + rng.integers(8, w // 3)] = rng.integers(0, 256, 3)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def _edge_match(result: np.ndarray, photo: np.ndarray) -> float:
    """Correlation of the gradient magnitudes of two images' luma: how well the result's edges follow the photo's."""

    def grad(a: np.ndarray) -> np.ndarray:
        y = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        gy, gx = np.gradient(y)
        return np.hypot(gx, gy).ravel()

    return float(np.corrcoef(grad(result), grad(photo))[0, 1])


def test_guided_upsample_follows_the_photos_edges_better_than_bicubic() -> None:
    photo = _blocks(240, 320)
    full = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None]
    small = F.interpolate(full, size=(60, 80), mode="area")
    low = small.flip(1) ** 0.8  # a "stylised" result: other colours, the same layout, at a quarter of the size
    guided = tiling.guided_upsample(low, small, (240, 320), tiling.photo_fetch(photo), tile=100)
    bicubic = tiling.to_uint8(F.interpolate(low, size=(240, 320), mode="bicubic", align_corners=False))
    assert guided.shape == (240, 320, 3) and guided.dtype == np.uint8
    g, b = _edge_match(guided, photo), _edge_match(bicubic, photo)
    assert g > 0.8 and g > b + 0.2, (g, b)
    # and it keeps the low-resolution result's colours (not the photo's): the flipped channels stay flipped
    back = F.interpolate(torch.from_numpy(guided.astype(np.float32) / 255).permute(2, 0, 1)[None], size=(60, 80),
                         mode="area")  # fmt: skip
    assert (back - low).abs().mean() < 0.03 < (back - small).abs().mean()


def test_guided_upsample_in_tiles_equals_one_tile() -> None:
    photo = _blocks(90, 130, seed=2)
    full = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None]
    small = F.interpolate(full, size=(30, 43), mode="area")
    one = tiling.guided_upsample(small, small, (90, 130), tiling.photo_fetch(photo), tile=1000)
    many = tiling.guided_upsample(small, small, (90, 130), tiling.photo_fetch(photo), tile=37)
    assert np.array_equal(one, many)


@pytest.fixture(scope="module")
def exact() -> MagentaStylizer:
    return MagentaStylizer(device="cpu", fast=False)


def _style() -> Image.Image:
    yy, xx = np.mgrid[0:96, 0:96]
    return Image.fromarray((np.stack([np.sin(xx / 3.0), np.cos(yy / 4.0), np.sin((xx - yy) / 5.0)], -1) * 120 + 128)
                           .astype(np.uint8))  # fmt: skip


def test_working_size_gives_the_full_size_and_bigger_strokes(exact: MagentaStylizer) -> None:
    photo = Image.fromarray(_blocks(180, 300, seed=3))
    vec = exact.style_vector(_style())
    native = exact.with_vector(photo, vec, StylizeOptions())
    worked = exact.with_vector(photo, vec, StylizeOptions(working_size=100))
    assert worked.size == native.size == photo.size

    # painted at a third of the size, the strokes are three times larger: less fine texture (high frequencies)
    def fine(img: Image.Image) -> float:  # noqa: E306
        a = np.asarray(img, np.float64)
        return float(np.abs(np.diff(a, axis=1)).mean())

    assert fine(worked) < 0.8 * fine(native)
    # at or below the working size nothing changes
    assert np.array_equal(np.asarray(exact.with_vector(photo, vec, StylizeOptions(working_size=300))),
                          np.asarray(native))  # fmt: skip


@pytest.mark.parametrize("kind", ["vector", "preset"])
def test_native_large_images_run_in_exact_tiles(exact: MagentaStylizer, monkeypatch, kind) -> None:  # noqa: ANN001
    photo = Image.fromarray(_blocks(130, 180, seed=4))
    if kind == "vector":
        vec = exact.style_vector(_style())

        def render(opts: StylizeOptions) -> Image.Image:
            return exact.with_vector(photo, vec, opts)
    else:

        def render(opts: StylizeOptions) -> Image.Image:
            return exact.with_preset(photo, parse_presets("3:0.5,12:0.5"), opts)

    opts = StylizeOptions(tile=96, preserve_color=True, strength=0.7)
    want = np.asarray(render(opts), np.int16)
    calls: list[int] = []
    real = tiling.run_tiled
    monkeypatch.setattr(tiling, "TILE_ABOVE", 64 * 64)
    monkeypatch.setattr(tiling, "run_tiled", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = np.asarray(render(opts), np.int16)
    assert calls  # it did go through the tiles
    assert np.abs(got - want).max() <= 1  # one 8-bit level of float rounding at most


def test_api_default_working_size_and_native(tmp_path) -> None:  # noqa: ANN001
    assert api.DEFAULT_WORKING_SIZE == tiling.DEFAULT_WORKING_SIZE
    assert api.parse_working_size("native") is None and api.parse_working_size("512") == 512
    photo = Image.fromarray(_blocks(120, 160, seed=5))
    a = api.stylize(photo, preset="3", working_size=96)
    b = api.stylize(photo, preset="3", working_size="native")
    assert a.size == b.size == photo.size
    assert not np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("value, words", [("10", "at least 64"), ("big", "'native'"), ("-5", "at least 64")])
def test_bad_working_size_is_one_line(tmp_path, value, words) -> None:  # noqa: ANN001
    Image.fromarray(_blocks(40, 60)).save(tmp_path / "photo.png")
    before = cli_proc.snapshot(tmp_path)
    done = cli_proc.run(["stylize", tmp_path / "photo.png", "--preset", "3", "--working-size", value,
                         "--out-dir", tmp_path / "out"])  # fmt: skip
    assert done.code == 2, done.err
    line = done.one_line_error()
    assert "--working-size" in line and words in line and value in line
    assert cli_proc.snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_cli_working_size_writes_the_full_size(tmp_path) -> None:  # noqa: ANN001
    Image.fromarray(_blocks(120, 200, seed=6)).save(tmp_path / "photo.png")
    done = cli_proc.run(["stylize", tmp_path / "photo.png", "--preset", "5", "--working-size", "64",
                         "-o", tmp_path / "out.png"])  # fmt: skip
    assert done.code == 0, done.err
    assert Image.open(tmp_path / "out.png").size == (200, 120)
