"""Image loading, saving and colour: every bad input gives an ImageError/ConfigError with one sentence."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

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
        (lambda p: _png_header_only(p, 100_000, 100_000), "decompression bomb|limit"),
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
