"""``display_in_terminal``: the pure-Python sixel encoder (decoded back here), detection and the fallback line."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from impasto.gan import display_in_terminal
from impasto.gan import terminal as term


def decode_sixel(text: str) -> tuple[np.ndarray, dict[int, tuple[int, int, int]]]:
    """A small sixel decoder: (H, W) colour numbers (-1 where nothing was painted) and the colour registers
    (RGB percentages). Checks the structure as it goes: DCS introducer, raster attributes, string terminator."""
    assert text.startswith("\x1bP") and text.endswith("\x1b\\")
    head = re.match(r"\x1bP([\d;]*)q", text)
    assert head is not None
    body = text[head.end() : -2]
    raster = re.match(r'"(\d+);(\d+);(\d+);(\d+)', body)
    assert raster is not None, "raster attributes come first"
    pan, pad, width, height = map(int, raster.groups())
    assert (pan, pad) == (1, 1)
    image = np.full((height, width), -1, dtype=np.int64)
    colours: dict[int, tuple[int, int, int]] = {}
    i, x, top, colour = raster.end(), 0, 0, None
    while i < len(body):
        ch = body[i]
        if ch == "#":
            m = re.match(r"#(\d+)(?:;2;(\d+);(\d+);(\d+))?", body[i:])
            assert m is not None
            n = int(m.group(1))
            if m.group(2) is not None:
                rgb = tuple(int(v) for v in m.group(2, 3, 4))
                assert all(0 <= v <= 100 for v in rgb)
                colours[n] = rgb  # type: ignore[assignment]
            else:
                assert n in colours, "a colour is defined before it is used"
                colour = n
            i += m.end()
        elif ch == "$":
            x, i = 0, i + 1
        elif ch == "-":
            x, top, i = 0, top + 6, i + 1
        elif ch == "!" or "?" <= ch <= "~":
            count = 1
            if ch == "!":
                m = re.match(r"!(\d+)([?-~])", body[i:])
                assert m is not None
                count, ch = int(m.group(1)), m.group(2)
                i += m.end()
            else:
                i += 1
            bits = ord(ch) - 63
            assert colour is not None
            for _ in range(count):
                for k in range(6):
                    if bits >> k & 1:
                        assert top + k < height and x < width, "a sixel outside the raster"
                        image[top + k, x] = colour
                x += 1
        else:
            raise AssertionError(f"unexpected {ch!r} in the sixel body")
    return image, colours


def test_encode_decodes_back_exactly() -> None:
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 5, size=(13, 17))  # height not a multiple of six
    palette = rng.integers(0, 256, size=(8, 3)).astype(np.uint8)
    text = term.encode_sixel(indices, palette)
    decoded, colours = decode_sixel(text)
    assert np.array_equal(decoded, indices)
    assert set(colours) == set(np.unique(indices).tolist())
    for n, rgb in colours.items():
        assert rgb == tuple(round(int(v) * 100 / 255) for v in palette[n])


def test_runs_are_compressed() -> None:
    text = term.encode_sixel(np.zeros((6, 100), dtype=np.int64), np.array([[255, 0, 0]], dtype=np.uint8))
    assert "#0;2;100;0;0" in text and "!100~" in text
    decoded, _ = decode_sixel(text)
    assert (decoded == 0).all()


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="colour numbers"):
        term.encode_sixel(np.array([[0, 3]]), np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        term.encode_sixel(np.zeros((0, 4), dtype=np.int64), np.zeros((1, 3), dtype=np.uint8))


def test_image_to_sixel_keeps_the_colours() -> None:
    arr = np.zeros((10, 12, 3), dtype=np.uint8)
    arr[:, :4] = (255, 0, 0)
    arr[:, 4:8] = (0, 128, 255)
    arr[:, 8:] = (250, 250, 250)
    decoded, colours = decode_sixel(term.image_to_sixel(Image.fromarray(arr)))
    assert (decoded >= 0).all()  # every pixel painted
    rgb = np.array([[[v * 255 / 100 for v in colours[int(c)]] for c in row] for row in decoded])
    assert np.abs(rgb - arr).max() <= 2  # percentages lose at most 1.3 per channel


def test_display_writes_the_batch_side_by_side(monkeypatch) -> None:
    monkeypatch.setenv("IMPASTO_SIXEL", "1")
    out = io.StringIO()
    batch = torch.rand(3, 3, 8, 10) * 2 - 1  # BigGAN output: (N, 3, H, W) in [-1, 1]
    assert display_in_terminal(batch, stream=out) is True
    text = out.getvalue()
    assert text.endswith("\x1b\\\n")
    decoded, _ = decode_sixel(text[:-1])
    assert decoded.shape == (8, 30) and (decoded >= 0).all()
    out = io.StringIO()
    assert display_in_terminal(batch.numpy(), stream=out) and out.getvalue().startswith("\x1bP")
    out = io.StringIO()
    assert display_in_terminal([Image.new("RGB", (4, 6), "red"), Image.new("RGB", (5, 3), "blue")], stream=out)
    assert decode_sixel(out.getvalue()[:-1])[0].shape == (6, 9)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        display_in_terminal(np.zeros((2, 5)), stream=io.StringIO())


def test_fallback_message_when_the_terminal_cannot(monkeypatch, capsys) -> None:
    monkeypatch.setenv("IMPASTO_SIXEL", "0")
    out = io.StringIO()
    assert display_in_terminal(Image.new("RGB", (4, 4)), stream=out) is False
    assert out.getvalue() == ""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot show images" in err[0] and "save_as_images" in err[0]
    monkeypatch.delenv("IMPASTO_SIXEL")
    monkeypatch.setenv("TERM", "foot")
    assert display_in_terminal(Image.new("RGB", (4, 4)), stream=io.StringIO()) is False  # not a terminal
    assert "cannot show images" in capsys.readouterr().err


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("term_name", "program", "expected"),
    [("foot", "", True), ("mlterm", "", True), ("xterm-sixel", "", True), ("yaft-256color", "", True),
     ("xterm-256color", "WezTerm", True), ("xterm-256color", "", False), ("dumb", "", False)],
)  # fmt: skip
def test_detection_from_the_environment(monkeypatch, term_name: str, program: str, expected: bool) -> None:
    monkeypatch.delenv("IMPASTO_SIXEL", raising=False)
    monkeypatch.setenv("TERM", term_name)
    monkeypatch.setenv("TERM_PROGRAM", program)
    assert term.sixel_supported(FakeTTY()) is expected  # not stdout: never queries the terminal
    monkeypatch.setenv("IMPASTO_SIXEL", "1")
    assert term.sixel_supported(io.StringIO()) is True


def test_device_attributes_answer() -> None:
    assert term.da1_has_sixel(b"\x1b[?62;4;6;22c") and term.da1_has_sixel(b"junk\x1b[?4c")
    assert not term.da1_has_sixel(b"\x1b[?62;22c") and not term.da1_has_sixel(b"\x1b[?64;44c")
    assert not term.da1_has_sixel(b"")


@pytest.mark.parametrize(("answer", "expected"), [(b"\x1b[?62;4;22c", "1"), (b"\x1b[?62;22c", "0"), (None, "0")])
def test_device_attributes_query_through_a_pty(answer: bytes | None, expected: str) -> None:
    """The query is written to the terminal and the answer read back from it, within the timeout."""
    pty = pytest.importorskip("pty", reason="needs POSIX pseudo-terminals")
    import os
    import select
    import subprocess
    import sys

    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('t', sys.argv[1]); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "sys.stderr.write(str(int(m._query_da1(timeout=float(sys.argv[2])))))"
    )
    master, slave = pty.openpty()
    timeout = "5" if answer else "0.3"
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", code, term.__file__, timeout], stdin=slave, stdout=slave, stderr=subprocess.PIPE
        )
        os.close(slave)
        seen = b""
        while b"\x1b[c" not in seen:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "the query never came"
            seen += os.read(master, 64)
        if answer:
            os.write(master, answer)
        _, err = child.communicate(timeout=30)
    finally:
        os.close(master)
    assert err.decode().strip() == expected
