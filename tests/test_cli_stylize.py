"""`impasto stylize` / `impasto presets` through main(argv): outputs, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from impasto.cli.main import main


def _photo(path, w=96, h=64, seed=0):  # noqa: ANN001, ANN202
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 5.0)], -1) * 200 + rng.normal(0, 10, (h, w, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def files(tmp_path):  # noqa: ANN001, ANN201
    content = _photo(tmp_path / "photo.png")
    style = _photo(tmp_path / "style.png", 80, 80, seed=3)
    return tmp_path, content, style


def _one_line_error(capsys, code, expected_code, *words):  # noqa: ANN001, ANN202
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert err.startswith("impasto: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["missing.png", "--preset", "3"], 1, ["not found"]),
        (["notimage.png", "--preset", "3"], 1, ["not an image"]),
        (["truncated.jpg", "--preset", "3"], 1, ["cannot read"]),
        (["tiny.png", "--preset", "3"], 1, ["at least"]),
        (["photo.png", "--preset", "26"], 2, ["unknown preset 26"]),
        (["photo.png", "--preset", "3:0,4:0"], 2, ["add up"]),
        (["photo.png", "--style", "style.png", "--style-weights", "0"], 2, ["add up"]),
        (["photo.png", "--style", "style.png", "--style-weights", "1,1"], 2, ["one weight per style"]),
        (["photo.png", "--preset", "3", "--strength", "1.5"], 2, ["between 0 and 1"]),
        (["photo.png", "--preset", "3", "--out-dir", "photo.png"], 2, ["is a file"]),
        (["photo.png", "--preset", "3", "-o", "."], 2, ["is a folder"]),
        (["photo.png", "--preset", "3", "-o", "exists.png"], 2, ["--overwrite"]),
        (["photo.png"], 2, ["--style", "--preset"]),
        (["photo.png", "--preset", "3", "--style", "style.png"], 2, ["not allowed"]),
    ],
)
def test_bad_input_gives_one_line_and_no_output(files, monkeypatch, capsys, argv, code, words):  # noqa: ANN001
    tmp, _content, _style = files
    (tmp / "notimage.png").write_text("plain text")
    import io

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="JPEG")
    (tmp / "truncated.jpg").write_bytes(buf.getvalue()[:200])
    Image.new("RGB", (1, 1)).save(tmp / "tiny.png")
    (tmp / "exists.png").write_bytes(b"precious")
    monkeypatch.chdir(tmp)
    before = {p.name: p.stat().st_mtime_ns for p in tmp.iterdir()}
    _one_line_error(capsys, main(["stylize", *argv]), code, *words)
    after = {p.name: p.stat().st_mtime_ns for p in tmp.iterdir()}
    assert after == before  # nothing written, nothing touched
    assert (tmp / "exists.png").read_bytes() == b"precious"


def test_out_dir_that_does_not_exist_is_created_with_the_outputs_inside(files, capsys):  # noqa: ANN001
    tmp, content, _style = files
    dest = tmp / "new" / "nested" / "out"
    assert not (tmp / "new").exists()
    assert main(["stylize", str(content), str(tmp / "style.png"), "--preset", "3", "--out-dir", str(dest), "-q"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["photo_stylized.png", "style_stylized.png"]
    assert Image.open(dest / "photo_stylized.png").size == (96, 64)
    assert capsys.readouterr().out.split() == [str(dest / "photo_stylized.png"), str(dest / "style_stylized.png")]


def test_a_refused_run_removes_the_out_dir_it_had_just_created(files, capsys):  # noqa: ANN001
    tmp, content, _style = files
    (tmp / "notimage.png").write_text("plain text")
    dest = tmp / "new" / "out"
    code = main(["stylize", str(content), "--style", str(tmp / "notimage.png"), "--out-dir", str(dest)])
    _one_line_error(capsys, code, 1, "not an image")
    assert not (tmp / "new").exists()
