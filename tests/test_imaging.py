"""Image loading, saving and colour: every bad input gives an ImageError/ConfigError with one sentence."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import imaging
from impasto.errors import ConfigError, ImageError
from impasto.imaging import load_image, pil_to_tensor, rgb_to_ycbcr, transfer_luminance, ycbcr_to_rgb
from impasto.media import check_output_path, save_image, tensor_to_pil


def _png_header_only(path, width, height):  # noqa: ANN001, ANN202
    """A PNG whose IHDR declares width x height but carries (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
    )


def test_load_rgba_composites_on_white(tmp_path):  # noqa: ANN001
    p = tmp_path / "a.png"
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., 0] = 255  # red, fully transparent except one pixel
    arr[0, 0, 3] = 255
    Image.fromarray(arr, "RGBA").save(p)
    img = load_image(p)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 0, 0)
    assert img.getpixel((1, 1)) == (255, 255, 255)


def test_load_applies_exif_orientation(tmp_path):  # noqa: ANN001
    p = tmp_path / "rot.jpg"
    img = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(p, exif=exif)
    assert load_image(p).size == (20, 40)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: p.write_bytes(_jpeg_bytes()[:300]), "cannot read"),
        (lambda p: Image.new("RGB", (1, 1)).save(p, format="PNG"), "at least"),
        (
            lambda p: Image.new("RGB", (0, 0)).save(p, format="PNG") if False else _png_header_only(p, 0, 5),
            "read|at least|not an image",
        ),
        (lambda p: _png_header_only(p, 100_000, 100_000), r"is 100000x100000 \(10000 MP\); impasto reads at most"),
    ],
)
def test_bad_images_raise_one_sentence(tmp_path, make, match):  # noqa: ANN001
    p = tmp_path / "x.png"
    make(p)
    with pytest.raises(ImageError, match=match) as info:
        load_image(p)
    assert "\n" not in str(info.value)


def _jpeg_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_folder_is_not_an_image(tmp_path):  # noqa: ANN001
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_tensor_round_trip_is_exact_for_uint8():
    arr = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = pil_to_tensor(Image.fromarray(arr))
    assert t.shape == (1, 3, 5, 7) and t.min() >= 0 and t.max() <= 1
    assert np.array_equal(np.asarray(tensor_to_pil(t)), arr)


def test_ycbcr_round_trip_and_luminance_transfer():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 8, generator=g)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)
    grey = torch.full((1, 3, 8, 8), 0.5)
    out = transfer_luminance(grey, x)
    # luminance comes from the stylised (grey) image, chroma from the original
    ycc_out, ycc_x = rgb_to_ycbcr(out), rgb_to_ycbcr(x)
    inside = ((out > 0.001) & (out < 0.999)).all(1)[0]  # (H, W): pixels the final clamp did not touch
    assert inside.sum() > 32
    assert torch.allclose(ycc_out[0, 0][inside], torch.full_like(ycc_out[0, 0][inside], 0.5), atol=1e-4)
    assert torch.allclose(ycc_out[0, 1:][:, inside], ycc_x[0, 1:][:, inside], atol=1e-4)


def test_output_path_checks(tmp_path):  # noqa: ANN001
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_path(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_path(tmp_path / "nope" / "x.png")
    existing = tmp_path / "x.png"
    existing.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        check_output_path(existing)
    assert check_output_path(existing, overwrite=True) == existing
    with pytest.raises(ConfigError, match="format"):
        check_output_path(tmp_path / "x.xyz")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):  # noqa: ANN001
    dest = tmp_path / "out.png"
    dest.write_bytes(b"previous")
    img = Image.new("RGB", (4, 4), "red")

    def boom(self, fp, *a, **k):  # noqa: ANN001, ANN202
        open(fp, "wb").write(b"half")  # noqa: SIM115
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_image(img, dest)
    assert dest.read_bytes() == b"previous"  # the old file survives an interrupted write
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    monkeypatch.undo()
    save_image(img, dest)
    assert Image.open(dest).getpixel((0, 0)) == (255, 0, 0)


def test_saved_files_get_the_usual_permissions(tmp_path):  # noqa: ANN001
    import os

    old = os.umask(0o022)
    try:
        p = save_image(Image.new("RGB", (2, 2)), tmp_path / "perm.png")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


# --- bug 6: impasto's own pixel limit, not Pillow's decompression-bomb check -----------------------------------


def _gradient_jpeg(path, width, height):  # noqa: ANN001, ANN202
    """A smooth width x height JPEG (fast to write and read)."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    arr = np.empty((height, width, 3), np.uint8)
    arr[..., 0] = x[None, :]
    arr[..., 1] = y[:, None]
    arr[..., 2] = 128
    Image.fromarray(arr).save(path, quality=85)
    return path


def test_a_100_megapixel_declared_image_passes_the_guard(tmp_path, monkeypatch):  # noqa: ANN001
    """Pillow's own check (a warning at 89 MP, an error at 179 MP) no longer refuses it as a "decompression bomb"."""
    import warnings

    monkeypatch.setenv("IMPASTO_MAX_PIXELS", "1000000000")
    before = Image.MAX_IMAGE_PIXELS
    for w, h in ((10_000, 10_000), (20_000, 10_000)):  # 100 MP (Pillow warns) and 200 MP (Pillow refuses)
        p = tmp_path / f"big{w}.png"
        _png_header_only(p, w, h)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ImageError, match="cannot read image") as info:
                load_image(p)  # the guard lets it through; the (missing) pixel data then fails as a plain read error
        assert "bomb" not in str(info.value) and "\n" not in str(info.value)
    assert Image.MAX_IMAGE_PIXELS == before  # the process is left as it was found


def test_the_default_limit_follows_available_memory(monkeypatch):  # noqa: ANN001
    monkeypatch.delenv("IMPASTO_MAX_PIXELS", raising=False)
    monkeypatch.setattr(imaging, "_available_memory", lambda: 16 * 2**30)
    limit, why = imaging.pixel_limit()
    assert limit == 572_000_000  # 16 GiB / 2 / 15 bytes a pixel (RGB8 + float32), in whole MP
    assert why == "set by available memory; IMPASTO_MAX_PIXELS overrides"
    monkeypatch.setattr(imaging, "_available_memory", lambda: None)
    assert imaging.pixel_limit() == (imaging.MAX_PIXELS, "the default; IMPASTO_MAX_PIXELS overrides")
    monkeypatch.setenv("IMPASTO_MAX_PIXELS", "5_000_000")
    assert imaging.pixel_limit() == (5_000_000, "set by IMPASTO_MAX_PIXELS")
    assert imaging.pixel_limit(123) == (123, "set by the caller")
    monkeypatch.setenv("IMPASTO_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="IMPASTO_MAX_PIXELS must be a whole number.*'lots'"):
        imaging.pixel_limit()


def test_a_100_megapixel_image_passes_the_memory_default(tmp_path, monkeypatch):  # noqa: ANN001
    monkeypatch.delenv("IMPASTO_MAX_PIXELS", raising=False)
    monkeypatch.setattr(imaging, "_available_memory", lambda: 16 * 2**30)
    p = tmp_path / "big.png"
    _png_header_only(p, 12_000, 9_000)  # 108 MP
    with pytest.raises(ImageError, match="cannot read image"):
        load_image(p)
    monkeypatch.setattr(imaging, "_available_memory", lambda: 2 * 2**30)  # 71 MP fit in 1 GiB
    with pytest.raises(ImageError) as info:
        load_image(p)
    assert str(info.value) == (
        f"{p} is 12000x9000 (108 MP); impasto reads at most 71 MP here "
        "(set by available memory; IMPASTO_MAX_PIXELS overrides)"
    )


def test_over_the_limit_names_size_limit_and_where_the_limit_comes_from(tmp_path, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("IMPASTO_MAX_PIXELS", "1000000")
    p = tmp_path / "wide.png"
    _png_header_only(p, 2000, 1000)
    with pytest.raises(ImageError) as info:
        load_image(p)
    assert (
        str(info.value) == f"{p} is 2000x1000 (2.0 MP); impasto reads at most 1.0 MP here (set by IMPASTO_MAX_PIXELS)"
    )
    with pytest.raises(ImageError, match=r"at most 40,000 pixels here \(set by the caller\)"):
        load_image(p, max_pixels=40_000)


def test_real_12_megapixel_jpeg_refused_over_limit_and_read_reduced_under_it(tmp_path, monkeypatch):  # noqa: ANN001
    p = _gradient_jpeg(tmp_path / "photo.jpg", 4000, 3000)
    monkeypatch.setenv("IMPASTO_MAX_PIXELS", "10_000_000")
    with pytest.raises(ImageError) as info:
        load_image(p)
    assert str(info.value) == f"{p} is 4000x3000 (12 MP); impasto reads at most 10 MP here (set by IMPASTO_MAX_PIXELS)"
    # the caller will use it at 1000 px: decoded at 1/4 scale (0.75 MP), under the limit, then resized exactly
    img = load_image(p, max_side=1000)
    assert img.size == (1000, 750) and img.mode == "RGB"
    px = np.asarray(img).astype(int)
    assert abs(px[375, 0, 0] - 0) <= 3 and abs(px[375, -1, 0] - 255) <= 3 and abs(px[-1, 500, 1] - 255) <= 3
    # 3000 px: no reduced scale covers it, so the full 12 MP would be decoded
    with pytest.raises(ImageError, match=r"is 4000x3000 \(12 MP\); impasto reads at most 10 MP"):
        load_image(p, max_side=3000)
    # 2000 px: decoded at 1/2 (3 MP), still over a 2 MP limit: the message says both sizes
    monkeypatch.setenv("IMPASTO_MAX_PIXELS", "2000000")
    with pytest.raises(ImageError, match=r"is 4000x3000 \(12 MP, 3.0 MP at the size asked for\); .* at most 2.0 MP"):
        load_image(p, max_side=2000)


def test_max_side_gives_the_same_size_as_a_full_decode(tmp_path):  # noqa: ANN001
    png = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (777, 1001, 3), dtype=np.uint8)).save(png)
    jpg = _gradient_jpeg(tmp_path / "a.jpg", 1001, 777)
    expected = imaging.fit_size((1001, 777), 250)
    assert load_image(png, max_side=250).size == expected == load_image(jpg, max_side=250).size
    assert load_image(jpg, max_side=5000).size == (1001, 777)  # never upscaled
    sideways = tmp_path / "s.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(jpg).save(sideways, exif=exif)
    assert load_image(sideways, max_side=250).size == expected[::-1]


def test_pillows_process_wide_limit_is_untouched_across_threads(tmp_path, monkeypatch):  # noqa: ANN001
    """Concurrent loads each relax Pillow's check only inside the lock, and every one restores it."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # a caller's own, very strict Pillow setting
    monkeypatch.setenv("IMPASTO_MAX_PIXELS", "1000000")
    small = tmp_path / "s.png"
    Image.new("RGB", (200, 200), "blue").save(small)  # 40,000 px: Pillow alone refuses it (> 2 x 5,000)
    header = tmp_path / "h.png"
    _png_header_only(header, 3000, 3000)

    def one(i: int) -> str:
        try:
            return str(load_image(small if i % 2 else header).getpixel((0, 0)))
        except ImageError as exc:
            return "refused" if "reads at most" in str(exc) else str(exc)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(40)))
    assert results == ["refused", "(0, 0, 255)"] * 20
    assert Image.MAX_IMAGE_PIXELS == 5_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(small)  # Pillow's own check, outside impasto, still works as the caller set it
