"""``impasto generate | interpolate | classes`` end to end on a tiny random BigGAN, and their bad-input exits."""

from __future__ import annotations

import re
import signal

import biggan_tiny as bt
import cli_proc
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image, ImageSequence

from impasto import media
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


# --- Ctrl-C through the real CLI: a subprocess and a real SIGINT ------------------------------------------------
# One thread: the tiny model then takes ~10 ms a sample, steadily; hundreds of batches of one keep the run going
# well past the moment the signal lands, so the test sees a real mid-run stop (asserted: fewer than all made).

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CPU = ["--device", "cpu", "--precision", "fp32", "--batch-size", "1"]


def _stopped(err: str, what: str) -> tuple[int, int]:
    m = re.search(rf"stopped: (\d+) of (\d+) {what} made", err)
    assert m, err
    return int(m.group(1)), int(m.group(2))


def test_ctrl_c_keeps_the_samples_made_so_far(model_dir, tmp_path) -> None:
    out, each = tmp_path / "partial.png", tmp_path / "each"
    run = cli_proc.Running(["generate", "--class", "hen", "--samples", "400", "--seed", "0", "--model-dir", model_dir,
                            "-o", out, "--each", each, *CPU], env=ENV)  # fmt: skip
    run.wait_for(r"\b[1-9]\d*/400\b")  # the first batches are done
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "stopping after this batch" in done.err and "Traceback" not in done.err
    made, total = _stopped(done.err, "samples")
    files = sorted(each.glob("*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert total == 400 and 1 <= made < 400 and len(files) == made
    assert [p.name for p in files] == [f"008-hen-seed0-{j}.png" for j in range(made)]  # the first ones, in order
    assert media.stray_parts(each) == [] and str(out) in done.out
    with Image.open(out) as im:
        grid = np.asarray(im.convert("RGB"))
    assert grid.shape == (16 + 2 * 2, made * 16 + (made + 1) * 2, 3)  # one row: the samples made so far
    for j, path in enumerate(files):  # tile j of the grid is sample j's file
        with Image.open(path) as im:
            assert np.array_equal(grid[2:18, 2 + 18 * j : 18 + 18 * j], np.asarray(im.convert("RGB")))


@pytest.mark.parametrize("ext", [".gif", ".mp4"])
def test_ctrl_c_in_interpolate_writes_a_playable_partial_animation(model_dir, tmp_path, ext: str) -> None:
    out = tmp_path / f"partial{ext}"
    run = cli_proc.Running(["interpolate", "--from", "hen", "--to", "cock", "--steps", "300", "--seed-from", "1",
                            "--seed-to", "2", "--model-dir", model_dir, "-o", out, *CPU], env=ENV)  # fmt: skip
    run.wait_for(r"\b[1-9]\d*/300\b")
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    made, total = _stopped(done.err, "frames")
    assert total == 300 and 1 <= made < 300
    assert media.stray_parts(tmp_path) == [] and str(out) in done.out
    if ext == ".gif":
        with Image.open(out) as im:
            frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
        assert len(frames) == made and frames[-1].size == (20, 20)
    else:
        reader = imageio_ffmpeg.read_frames(str(out))
        meta = next(reader)
        assert meta["size"] == (20, 20) and len(list(reader)) == made


def test_a_word_says_which_class_it_became(model_dir, tmp_path, capsys) -> None:
    from impasto import api

    expected = api.explain_class("dog")
    if expected is None:
        pytest.skip("impasto.gan.classes has no WordNet explanation yet")
    args = ["generate", "--class", "dog", "--class", "hen", "--samples", "1", "--seed", "0", "--model-dir", model_dir,
            "-o", str(tmp_path / "g.png")]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"impasto: {expected}" in err and err.count("is not an ImageNet class name") == 1  # hen is a class
