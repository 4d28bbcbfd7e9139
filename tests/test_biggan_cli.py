"""``impasto generate | interpolate | classes`` end to end on a tiny random BigGAN, and their bad-input exits."""

from __future__ import annotations

import biggan_tiny as bt
import imageio_ffmpeg
import pytest
from PIL import Image

from impasto.cli.main import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):  # noqa: ANN001, ANN201
    return str(bt.write_dir(tmp_path_factory.mktemp("biggan") / "tiny", seed=2))


def test_generate_grid_and_each(model_dir, tmp_path, capsys) -> None:
    out, each = tmp_path / "grid.png", tmp_path / "each"
    args = ["generate", "--class", "cheeseburger", "--class", "8", "--samples", "3", "--truncation", "0.5",
            "--seed", "4", "--model-dir", model_dir, "-o", str(out), "--each", str(each), "-q"]  # fmt: skip
    assert main(args) == 0
    with Image.open(out) as im:
        assert im.size == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2)  # a row per class, a column per sample
    files = sorted(p.name for p in each.iterdir())
    assert len(files) == 6 and files[0].startswith("008-hen-seed4-") and "933-cheeseburger-seed4-2.png" in files
    assert str(out) in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0


def test_interpolate_gif_mp4_and_grid(model_dir, tmp_path) -> None:
    base = ["interpolate", "--from", "golden retriever", "--to", "hen", "--seed-from", "1", "--seed-to", "2",
            "--steps", "4", "--samples", "2", "--truncation", "0.2", "--model-dir", model_dir, "-q"]  # fmt: skip
    assert main(base + ["--slerp", "--bounce", "-o", str(tmp_path / "a.gif")]) == 0
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 6 and im.size == (2 * 16 + 3 * 2, 16 + 2 * 2)
    assert main(base + ["-o", str(tmp_path / "a.mp4")]) == 0
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "a.mp4"))
    next(reader)
    assert len(list(reader)) == 4
    assert main(base + ["-o", str(tmp_path / "a.png")]) == 0
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (4 * 16 + 5 * 2, 2 * 16 + 3 * 2)  # a row per sample, a column per step


def test_classes_command(capsys) -> None:
    assert main(["classes", "retriever"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and any("207  golden retriever" in line for line in lines)
    assert main(["classes"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1000
    assert main(["classes", "cheesburger"]) == 2
    assert "cheeseburger" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--class", "cheesburger"], "did you mean 'cheeseburger'"),
        (["--class", "hen", "--truncation", "0"], "truncation"),
        (["--class", "hen", "--truncation", "1.5"], "truncation"),
        (["--class", "hen", "--samples", "0"], "samples"),
        (["--class", "1000"], "out of range"),
    ],
)
def test_generate_bad_input_exits_2(model_dir, tmp_path, capsys, extra, needle) -> None:
    out = tmp_path / "g.png"
    assert main(["generate", *extra, "--model-dir", model_dir, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_output_problems_exit_2(model_dir, tmp_path, capsys) -> None:
    existing = tmp_path / "old.png"
    existing.write_bytes(b"keep")
    assert main(["generate", "--class", "hen", "--model-dir", model_dir, "-o", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err and existing.read_bytes() == b"keep"
    assert main(["generate", "--class", "hen", "--model-dir", model_dir, "-o", str(tmp_path / "g.xyz")]) == 2
    assert "unsupported output extension" in capsys.readouterr().err
    interp = ["interpolate", "--from", "hen", "--to", "cock", "--model-dir", model_dir]
    assert main([*interp, "--steps", "1", "-o", str(tmp_path / "a.gif")]) == 2
    assert "steps" in capsys.readouterr().err
    assert main([*interp, "-o", str(tmp_path / "a.avi")]) == 2
    assert ".gif, .mp4" in capsys.readouterr().err


def test_missing_checkpoint_names_the_fix(fresh_home, tmp_path, capsys) -> None:
    assert main(["generate", "--class", "hen", "--model", "biggan-deep.128", "-o", str(tmp_path / "g.png")]) == 1
    err = capsys.readouterr().err
    assert "impasto models download biggan-deep.128" in err and "impasto models import" in err
    assert (
        main(["generate", "--class", "hen", "--model-dir", str(tmp_path / "nope"), "-o", str(tmp_path / "g.png")]) == 2
    )


def test_ctrl_c_keeps_the_samples_made_so_far(model_dir, tmp_path, monkeypatch) -> None:
    import signal

    import impasto.cli.generate as gen
    from impasto.events import Progress

    def fake_bar(quiet, unit="img", desc=None):  # noqa: ANN001, ANN202, ARG001
        def callback(event) -> None:  # noqa: ANN001
            if isinstance(event, Progress) and event.step == 1:
                signal.raise_signal(signal.SIGINT)  # the first Ctrl-C: finish this batch, then stop

        return callback, lambda: None

    monkeypatch.setattr(gen, "progress_bar", fake_bar)
    out = tmp_path / "partial.png"
    args = ["generate", "--class", "hen", "--samples", "3", "--batch-size", "1", "--seed", "0",
            "--model-dir", model_dir, "-o", str(out)]  # fmt: skip
    assert main(args) == 130
    with Image.open(out) as im:
        assert im.size == (16 + 2 * 2, 16 + 2 * 2)  # one sample made before the stop
