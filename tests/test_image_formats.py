"""Every pixel format loads with the right colours (issue 9, bug 5): built here from numpy arrays, asserted by value.

16-bit greyscale used to load as white (``convert("RGB")`` clips ``I;16``); CMYK, palette, LA, 16-bit RGB and
ICC-tagged images must come out as the colours they show in a colour-managed viewer; EXIF orientation applies to
PIL images handed to the API as well as to files; outputs are sRGB and carry an sRGB profile.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from impasto import api
from impasto.imaging import load_image, normalise, srgb_profile
from impasto.media import save_image

# --- writers for what Pillow cannot write: 16-bit-per-channel PNG and TIFF ---------------------------------------


def _png16(path: Path, arr: np.ndarray) -> Path:
    """(H, W) or (H, W, C) uint16 -> a 16-bit PNG (grey, grey+alpha, RGB or RGBA), no filtering."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


def _tiff16_rgb(path: Path, arr: np.ndarray) -> Path:
    """(H, W, 3) uint16 -> an uncompressed little-endian 16-bit RGB TIFF (one strip)."""
    h, w, _ = arr.shape
    pixels = arr.astype("<u2").tobytes()
    entries = [  # (tag, type, count, value): type 3 SHORT, 4 LONG
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 3, None),  # BitsPerSample 16,16,16: stored after the IFD
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 2),  # RGB
        (273, 4, 1, None),  # StripOffsets
        (277, 3, 1, 3),
        (278, 4, 1, h),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),  # chunky
    ]
    ifd_at = 8
    bits_at = ifd_at + 2 + 12 * len(entries) + 4
    data_at = bits_at + 6
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bits_at
        elif tag == 273:
            value = data_at
        field = struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + field
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_at) + ifd + struct.pack("<3H", 16, 16, 16) + pixels)
    return path


# --- ICC profiles built here ------------------------------------------------------------------------------------


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _swapped_primaries_profile() -> bytes:
    """sRGB with its red and green primaries swapped: pixel (255, 0, 0) in it is sRGB green."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    where = {}
    for i in range(count):
        at = 132 + 12 * i
        sig, offset, _size = struct.unpack(">4sII", data[at : at + 12])
        where[sig] = (at, offset)
    (r_at, r_off), (g_at, g_off) = where[b"rXYZ"], where[b"gXYZ"]
    data[r_at + 4 : r_at + 8] = struct.pack(">I", g_off)
    data[g_at + 4 : g_at + 8] = struct.pack(">I", r_off)
    return bytes(data)


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A v2.1 ICC profile: 128-byte header, tag table, tag data."""
    table = struct.pack(">I", len(tags))
    body = b""
    start = 128 + 4 + 12 * len(tags)
    for sig, payload in tags:
        body += b"\0" * (-len(body) % 4)
        table += struct.pack(">4sII", sig, start + len(body), len(payload))
        body += payload
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    size = 128 + len(table) + len(body)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"\0" * 4, 0x02100000, device_class, space, pcs)
        + b"\0" * 12  # date
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + b"\0" * 4  # intent: perceptual
        + d50
        + b"\0" * 48  # creator, ID, reserved
    )
    assert len(header) == 128
    return header + table + body


def _desc(text: str) -> bytes:
    raw = text.encode("ascii") + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(raw)) + raw + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _linear_grey_profile() -> bytes:
    """A greyscale display profile with a linear tone curve (gamma 1.0): grey 128 is sRGB ~188."""
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0100)  # one entry: gamma 1.0 as u8Fixed8
    tags = [(b"desc", _desc("linear grey")), (b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"kTRC", curve)]
    return _icc(b"mntr", b"GRAY", b"XYZ ", tags)


def _cmyk_profile() -> bytes:
    """A CMYK printer profile (lut8, Lab PCS) under which pure cyan is red and pure magenta green."""
    white, red, green, black = (255, 128, 128), (138, 209, 198), (224, 42, 211), (0, 128, 128)  # 8-bit Lab
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    n = c + m + y + k
                    clut += bytes(white if n == 0 else red if c and n == 1 else green if m and n == 1 else black)
    ramp = bytes(range(256))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1" + b"\0" * 4 + bytes([4, 3, 2, 0]) + identity + ramp * 4 + clut + ramp * 3
    tags = [(b"desc", _desc("cyan is red")), (b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"A2B0", lut)]
    return _icc(b"prtr", b"CMYK", b"Lab ", tags)


def _pixels(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


# --- bit depth --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, fmt", [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF")])
def test_16bit_grey_loads_as_its_grey_levels_not_white(tmp_path, mode, fmt):  # noqa: ANN001
    levels = np.array([[0, 1000, 20000, 32768, 50000, 65535]], np.uint16).repeat(2, 0)  # (2, 6)
    img = Image.frombytes(mode, (6, 2), levels.astype("<u2" if mode == "I;16" else ">u2").tobytes())
    assert img.mode == mode
    p = tmp_path / f"grey.{fmt.lower()}"
    img.save(p, format=fmt)
    out = _pixels(load_image(p))
    expected = np.rint(levels / 257.0).astype(int)  # [0, 4, 78, 128, 195, 255]
    assert np.array_equal(out[..., 0], expected) and np.array_equal(out[..., 1], expected)
    assert np.array_equal(out[..., 2], expected)


def test_16bit_grey_png_written_by_hand_and_with_alpha(tmp_path):  # noqa: ANN001
    grey = np.array([[0, 257 * 100, 65535]], np.uint16)
    assert _pixels(load_image(_png16(tmp_path / "g.png", np.repeat(grey, 2, 0))))[0, :, 0].tolist() == [0, 100, 255]
    ga = np.zeros((2, 3, 2), np.uint16)
    ga[..., 0] = 257 * 60
    ga[:, 0, 1] = 65535  # opaque
    ga[:, 1, 1] = 0  # transparent -> white
    ga[:, 2, 1] = 32896  # half: 60 and 255 mixed
    out = _pixels(load_image(_png16(tmp_path / "ga.png", ga)))
    assert out[0, 0].tolist() == [60, 60, 60]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert abs(out[0, 2, 0] - (60 + 255) / 2) <= 1.5


def test_16bit_rgb_png_and_tiff_keep_their_colours(tmp_path):  # noqa: ANN001
    rgb = np.array([[[65535, 0, 0], [0, 32768, 65535], [4000, 12000, 60000], [30000, 30000, 30000]]], np.uint16)
    rgb = np.repeat(rgb, 2, 0)  # (2, 4, 3)
    expected = rgb / 257.0
    for path in (_png16(tmp_path / "c.png", rgb), _tiff16_rgb(tmp_path / "c.tif", rgb)):
        out = _pixels(load_image(path))
        # Pillow keeps the high byte (v // 256): within one level of round(v / 257), never clipped to white
        assert np.abs(out - expected).max() <= 1.0, (path.suffix, out[0])
        assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [0, 128, 255]
    rgba = np.zeros((2, 2, 4), np.uint16)
    rgba[..., 2] = 65535
    rgba[:, 0, 3] = 65535
    out = _pixels(load_image(_png16(tmp_path / "a.png", rgba)))
    assert out[0, 0].tolist() == [0, 0, 255] and out[0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    "values, dtype, mode, expected",
    [
        ([0, 1000, 65535], np.int32, "I", [0, 4, 255]),  # 16-bit data held in 32-bit ints: / 257
        ([0, 100, 255], np.int32, "I", [0, 100, 255]),  # 8-bit data held in 32-bit ints: as is
        ([-100, 0, 100], np.int32, "I", [0, 128, 255]),  # anything else: its own range
        ([0.0, 0.5, 1.0], np.float32, "F", [0, 128, 255]),  # floats in [0, 1]
        ([0.0, 64.0, 255.0], np.float32, "F", [0, 64, 255]),  # whole numbers 0..255 (convert("F") of 8-bit)
        ([0.0, 0.75, 1.5], np.float32, "F", [0, 128, 255]),  # HDR-ish floats: 0..max
        ([0.0, float("nan"), 2.5], np.float32, "F", [0, 0, 255]),  # NaN counts as 0
    ],
)
def test_32bit_int_and_float_images_scale_by_the_documented_rule(values, dtype, mode, expected):  # noqa: ANN001
    img = Image.fromarray(np.array([values, values], dtype))
    assert img.mode == mode
    assert _pixels(normalise(img))[0, :, 1].tolist() == expected


# --- CMYK, palette, alpha ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_without_a_profile_uses_plain_conversion(tmp_path, fmt):  # noqa: ANN001
    cmyk = np.zeros((8, 32, 4), np.uint8)
    cmyk[:, :8, 0] = 255  # cyan
    cmyk[:, 8:16, 1] = 255  # magenta
    cmyk[:, 16:24, 3] = 255  # black
    p = tmp_path / f"cmyk.{fmt.lower()}"
    Image.fromarray(cmyk, "CMYK").save(p, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    out = _pixels(load_image(p))
    tol = 6 if fmt == "JPEG" else 0
    assert np.abs(out[4, 3] - [0, 255, 255]).max() <= tol  # pure cyan
    assert np.abs(out[4, 11] - [255, 0, 255]).max() <= tol
    assert np.abs(out[4, 19] - [0, 0, 0]).max() <= tol
    assert np.abs(out[4, 27] - [255, 255, 255]).max() <= tol


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_with_an_embedded_profile_goes_through_the_profile(tmp_path, fmt):  # noqa: ANN001
    cmyk = np.zeros((8, 16, 4), np.uint8)
    cmyk[:, :8, 0] = 255  # cyan, which this profile prints as red
    cmyk[:, 8:, 1] = 255  # magenta, printed green
    p = tmp_path / f"cmyk.{fmt.lower()}"
    extra = {"quality": 100} if fmt == "JPEG" else {}
    Image.fromarray(cmyk, "CMYK").save(p, format=fmt, icc_profile=_cmyk_profile(), **extra)
    out = _pixels(load_image(p))
    red, green = out[4, 3], out[4, 12]
    assert red[0] > 230 and red[1] < 40 and red[2] < 40, red  # not the (0, 255, 255) a plain conversion gives
    assert green[1] > 200 and green[0] < 60 and green[2] < 60, green


def test_palette_with_and_without_transparency(tmp_path):  # noqa: ANN001
    idx = np.array([[0, 1, 2, 1]], np.uint8).repeat(2, 0)
    img = Image.fromarray(idx, "P")
    img.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200])
    img.save(tmp_path / "p.png")
    assert _pixels(load_image(tmp_path / "p.png"))[0].tolist() == [[200, 10, 10], [10, 200, 10], [10, 10, 200]] + [
        [10, 200, 10]
    ]
    img.save(tmp_path / "pt.png", transparency=1)  # index 1 transparent
    assert Image.open(tmp_path / "pt.png").mode == "P"
    out = _pixels(load_image(tmp_path / "pt.png"))
    assert out[0].tolist() == [[200, 10, 10], [255, 255, 255], [10, 10, 200], [255, 255, 255]]
    img.save(tmp_path / "pt.gif", transparency=2)
    out = _pixels(load_image(tmp_path / "pt.gif"))
    assert out[0, 0].tolist() == [200, 10, 10] and out[0, 2].tolist() == [255, 255, 255]
    # an RGBA palette (partial transparency per entry)
    img.putpalette([200, 10, 10, 255, 10, 200, 10, 0, 10, 10, 200, 128], rawmode="RGBA")
    out = _pixels(normalise(img))
    assert out[0, 0].tolist() == [200, 10, 10] and out[0, 1].tolist() == [255, 255, 255]
    assert abs(out[0, 2, 2] - (200 * 128 + 255 * 127) / 255) <= 1.5


def test_la_and_rgba_composite_on_white(tmp_path):  # noqa: ANN001
    la = np.zeros((2, 3, 2), np.uint8)
    la[..., 0] = 100
    la[:, :, 1] = [255, 0, 128]
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = _pixels(load_image(tmp_path / "la.png"))
    assert out[0, 0].tolist() == [100] * 3 and out[0, 1].tolist() == [255] * 3
    assert abs(out[0, 2, 0] - (100 * 128 + 255 * 127) / 255) <= 1
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[:, 0, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = _pixels(load_image(tmp_path / "rgba.png"))
    assert out[0, 0].tolist() == [0, 255, 0] and out[0, 1].tolist() == [255, 255, 255]


def test_transparency_colour_key_and_other_modes():
    rgb = Image.fromarray(np.array([[[1, 2, 3], [9, 9, 9]]], np.uint8))
    rgb.info["transparency"] = (1, 2, 3)
    assert _pixels(normalise(rgb))[0].tolist() == [[255, 255, 255], [9, 9, 9]]
    grey16 = Image.fromarray(np.array([[500, 65535]], np.uint16))
    grey16.info["transparency"] = 500
    assert _pixels(normalise(grey16))[0].tolist() == [[255, 255, 255], [255, 255, 255]]
    grey16.info["transparency"] = 65535
    assert _pixels(normalise(grey16))[0].tolist() == [[2, 2, 2], [255, 255, 255]]
    assert _pixels(normalise(Image.new("1", (2, 1), 1)))[0, 0].tolist() == [255, 255, 255]
    assert np.abs(_pixels(normalise(Image.new("LAB", (2, 1), (0, 128, 128))))[0, 0]).max() <= 2  # Lab black
    assert _pixels(normalise(Image.new("YCbCr", (2, 1), (76, 85, 255))))[0, 0, 0] > 250  # red in YCbCr


# --- EXIF orientation -------------------------------------------------------------------------------------------


def _rotated_jpeg(path: Path) -> Path:
    """A 40x24 JPEG, left half red, stored sideways with EXIF orientation 6 (turn 90 degrees clockwise)."""
    arr = np.full((24, 40, 3), 255, np.uint8)
    arr[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_applies_to_files_and_to_pil_images(tmp_path):  # noqa: ANN001
    p = _rotated_jpeg(tmp_path / "r.jpg")
    from_file = load_image(p)
    with Image.open(p) as opened:
        from_pil = normalise(opened)
        assert opened.size == (40, 24)  # the caller's image is left as it was
    for img in (from_file, from_pil):
        assert img.size == (24, 40)
        arr = _pixels(img)
        assert arr[5, 12, 1] < 30 and arr[35, 12, 1] > 225  # the red half is now on top
    assert np.array_equal(_pixels(from_file), _pixels(from_pil))
    assert np.array_equal(_pixels(normalise(from_pil)), _pixels(from_pil))  # turning happens once, not twice


def test_exif_orientation_applies_to_a_pil_image_passed_to_api_stylize(tmp_path):  # noqa: ANN001
    with Image.open(_rotated_jpeg(tmp_path / "r.jpg")) as opened:
        out = api.stylize(opened, preset="3")
    assert out.size == (24, 40)


# --- ICC profiles -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
def test_icc_tagged_rgb_is_converted_to_srgb_at_load(tmp_path, fmt):  # noqa: ANN001
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, :8] = (255, 0, 0)  # "red" in a space whose red primary is sRGB's green
    arr[:, 8:] = (0, 0, 255)  # blue stays blue
    p = tmp_path / f"wide.{fmt.lower()}"
    extra = {"quality": 100} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(arr).save(p, format=fmt, icc_profile=_swapped_primaries_profile(), **extra)
    assert Image.open(p).info.get("icc_profile")
    out = _pixels(load_image(p))
    tol = 8 if fmt in ("JPEG", "WEBP") else 1
    assert np.abs(out[4, 3] - [0, 255, 0]).max() <= tol, out[4, 3]  # loads as green: the converted colour
    assert np.abs(out[4, 12] - [0, 0, 255]).max() <= tol, out[4, 12]


def test_icc_conversion_also_for_pil_images_alpha_and_grey():
    rgba = Image.fromarray(np.array([[[255, 0, 0, 255], [255, 0, 0, 0]]], np.uint8), "RGBA")
    rgba.info["icc_profile"] = _swapped_primaries_profile()
    out = _pixels(normalise(rgba))
    assert np.abs(out[0, 0] - [0, 255, 0]).max() <= 1 and out[0, 1].tolist() == [255, 255, 255]
    assert "icc_profile" in rgba.info  # the caller's image is not changed
    grey = Image.new("L", (2, 2), 128)
    grey.info["icc_profile"] = _linear_grey_profile()
    value = _pixels(normalise(grey))[0, 0]
    assert value[0] == value[1] == value[2] and 180 <= value[0] <= 195  # linear 0.5 is sRGB ~188
    assert _pixels(normalise(Image.new("L", (2, 2), 128)))[0, 0].tolist() == [128] * 3  # untagged: as sRGB


def test_unusable_profile_is_ignored_with_a_warning(caplog):  # noqa: ANN001
    img = Image.new("RGB", (2, 2), (10, 20, 30))
    img.info["icc_profile"] = b"not a profile at all"
    assert _pixels(normalise(img))[0, 0].tolist() == [10, 20, 30]
    grey_profile_on_rgb = Image.new("RGB", (2, 2), (10, 20, 30))
    grey_profile_on_rgb.info["icc_profile"] = _linear_grey_profile()
    assert _pixels(normalise(grey_profile_on_rgb))[0, 0].tolist() == [10, 20, 30]
    assert sum("colour profile" in r.getMessage() for r in caplog.records) == 2


# --- outputs are sRGB and say so --------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_saved_outputs_carry_an_srgb_profile(tmp_path, ext):  # noqa: ANN001
    p = save_image(torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(0)), tmp_path / f"out{ext}")
    icc = Image.open(p).info.get("icc_profile")
    assert icc == srgb_profile()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile) and profile.profile.xcolor_space.strip() == "RGB"


def test_srgb_round_trip_is_exact_and_profiles_can_be_chosen(tmp_path):  # noqa: ANN001
    arr = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    p = save_image(Image.fromarray(arr), tmp_path / "a.png")
    assert np.array_equal(np.asarray(load_image(p)), arr)  # re-loading an output changes nothing
    assert save_image(Image.fromarray(arr), tmp_path / "b.png").read_bytes() == p.read_bytes()  # same bytes
    own = _swapped_primaries_profile()
    assert Image.open(save_image(Image.fromarray(arr), tmp_path / "c.png", icc_profile=own)).info["icc_profile"] == own
    assert "icc_profile" not in Image.open(save_image(Image.fromarray(arr), tmp_path / "d.png", icc_profile=b"")).info
    grey = save_image(Image.new("L", (3, 3), 7), tmp_path / "g.png")
    assert "icc_profile" not in Image.open(grey).info  # an RGB profile does not belong in a grey file
