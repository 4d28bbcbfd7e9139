"""``generate`` / ``interpolate`` / ``classes`` failure paths through the real CLI: bad input (one line, exit code,
nothing the user had touched), name clashes found before the work, read-only and full destinations, kill -9 and
``--resume``, and the explicit model cache."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import biggan_tiny as bt
import cli_proc
import filesystems
import numpy as np
import pytest
from PIL import Image

from impasto import api, media
from impasto.cli.main import main
from impasto.modelcache import ModelCache

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # the tiny model at a steady ~10 ms a sample
CPU = ["--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:  # noqa: ANN001
    return str(bt.write_dir(tmp_path_factory.mktemp("biggan") / "tiny", seed=2))


def one_error(err: str) -> str:
    """The single ``impasto: error:`` line of ``err`` (asserting there is exactly one line and no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("impasto: error:"), err
    return lines[0]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# --- bad input: exit code, one line, nothing touched --------------------------------------------------------------


@pytest.fixture
def user_files(tmp_path) -> Path:  # noqa: ANN001
    """A folder holding things the user made: an existing grid, an --each folder with a sample, a plain file."""
    (tmp_path / "old.png").write_bytes(b"keep")
    (tmp_path / "old.gif").write_bytes(b"keep gif")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "each").mkdir()
    (tmp_path / "each" / "008-hen-seed4-1.png").write_bytes(b"an earlier sample")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "md-empty").mkdir()
    return tmp_path


GEN = ["generate", "--class", "hen", "--seed", "4", "--samples", "2"]
INTERP = ["interpolate", "--from", "hen", "--to", "cock", "--steps", "3"]
BAD = [
    # (args with {d}: the user's folder, {m}: the tiny model folder), exit code, a phrase the line must hold
    (["generate", "--class", "cheesburger", "-o", "{d}/g.png"], 2, "cheeseburger"),
    (["generate", "--class", "1000", "-o", "{d}/g.png"], 2, "1000"),
    ([*GEN, "--truncation", "0", "-o", "{d}/g.png"], 2, "truncation"),
    ([*GEN, "--truncation", "1.5", "-o", "{d}/g.png"], 2, "truncation"),
    (["generate", "--class", "hen", "--samples", "0", "-o", "{d}/g.png"], 2, "samples"),
    ([*GEN, "--batch-size", "0", "-o", "{d}/g.png"], 2, "--batch-size"),
    (["generate", "--class", "hen", "--seed", "-1", "-o", "{d}/g.png"], 2, "--seed"),
    ([*GEN, "--samples", "two", "-o", "{d}/g.png"], 2, "--samples"),
    ([*GEN, "-o", "{d}/g.xyz"], 2, "unsupported output extension"),
    ([*GEN, "-o", "{d}/folder.png"], 2, "is a folder"),
    ([*GEN, "-o", "{d}/missing/g.png"], 2, "does not exist"),
    ([*GEN, "-o", "{d}/old.png"], 2, "--overwrite"),
    (GEN, 2, "--each"),  # neither -o nor --each
    ([*GEN, "--each", "{d}/notes.txt"], 2, "is a file"),
    ([*GEN, "--each", "{d}/missing/each"], 2, "does not exist"),
    ([*GEN, "--each", "{d}/each", "-o", "{d}/g.png"], 2, "008-hen-seed4-1.png already exists"),  # bug 3
    ([*GEN, "--resume", "-o", "{d}/g.png"], 2, "--each"),
    ([*GEN, "--class", "8", "--each", "{d}/new"], 2, "given twice"),
    ([*GEN, "--model-dir", "{d}/notes.txt", "-o", "{d}/g.png", "MODEL"], 2, "not a folder"),
    ([*GEN, "--model-dir", "{d}/md-empty", "-o", "{d}/g.png", "MODEL"], 1, "config.json"),
    ([*GEN, "--precision", "fp8", "-o", "{d}/g.png"], 2, "--precision"),
    ([*INTERP, "--steps", "1", "-o", "{d}/a.gif"], 2, "steps"),
    ([*INTERP, "--fps", "0", "-o", "{d}/a.gif"], 2, "--fps"),
    ([*INTERP, "-o", "{d}/a.avi"], 2, ".gif, .mp4"),
    ([*INTERP, "-o", "{d}/old.gif"], 2, "--overwrite"),
    ([*INTERP, "-o", "{d}/folder.png"], 2, "is a folder"),
    ([*INTERP, "-o", "{d}/missing/a.gif"], 2, "does not exist"),
    ([*INTERP, "--truncation", "1.5", "-o", "{d}/a.gif"], 2, "truncation"),
    ([*INTERP, "--samples", "0", "-o", "{d}/a.gif"], 2, "samples"),
    ([*INTERP, "--seed-from", "-3", "-o", "{d}/a.gif"], 2, "--seed-from"),
    (["interpolate", "--from", "hen", "--to", "zzzzqx", "-o", "{d}/a.gif"], 2, "zzzzqx"),
    (["interpolate", "--from", "hen", "-o", "{d}/a.gif"], 2, "--to"),
    (["classes", "cheesburger"], 2, "cheeseburger"),
    (["classes", "--bogus"], 2, "--bogus"),
]


@pytest.mark.parametrize(("args", "code", "needle"), BAD, ids=[" ".join(a[2:5]) + f"-{i}" for i, (a, _, _) in
                                                               enumerate(BAD)])  # fmt: skip
def test_bad_input_one_line_and_nothing_touched(model_dir, user_files, capsys, args, code, needle) -> None:
    argv = [a.format(d=user_files) for a in args if a != "MODEL"]
    if args[0] != "classes" and "MODEL" not in args:
        argv += ["--model-dir", model_dir]
    before = cli_proc.snapshot(user_files)
    assert main(argv) == code
    captured = capsys.readouterr()
    assert needle in one_error(captured.err)
    assert cli_proc.snapshot(user_files) == before and captured.out == ""
    assert not (user_files / "g.png").exists() and not (user_files / "a.gif").exists()


def test_each_clash_is_found_before_the_work_and_the_grid_is_not_written(user_files, tmp_path_factory, capsys) -> None:
    """Bug 3: a clash in --each is reported before any work (the model is not even loaded), the grid is not
    written and the existing sample is unchanged."""
    fresh_model = bt.write_dir(tmp_path_factory.mktemp("unloaded") / "tiny", seed=7)
    before = cli_proc.snapshot(user_files)
    argv = [*GEN, "--each", user_files / "each", "-o", user_files / "g.png", "--model-dir", fresh_model, *CPU]
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    line = one_error(captured.err)
    assert "008-hen-seed4-1.png already exists" in line and "--overwrite" in line and "--resume" in line
    assert not any(str(fresh_model.resolve()) in str(key) for key in api.default_models.keys())  # never loaded
    assert not (user_files / "g.png").exists() and cli_proc.snapshot(user_files) == before and captured.out == ""


# --- destinations that cannot take the files ----------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path) -> Iterator[Path]:  # noqa: ANN001
    """A read-only file system (a tmpfs mounted ro; as root, chmod would not stop writes)."""
    with filesystems.tmpfs(tmp_path / "ro", "ro,size=1m") as mnt:
        yield mnt


@pytest.mark.parametrize(
    "where",
    [
        [*GEN, "-o", "{ro}/g.png"],
        [*GEN, "--each", "{ro}"],  # an existing read-only folder
        [*GEN, "--each", "{ro}/new", "-o", "{d}/g.png"],  # a folder to create in a read-only one
        [*INTERP, "-o", "{ro}/a.gif"],
        [*INTERP, "-o", "{ro}/a.png"],
    ],
)
def test_unwritable_destination_is_one_line_before_any_work(model_dir, read_only, tmp_path, capsys, where) -> None:
    """Bug 4: a read-only output or --each folder is found before the model loads, in one line."""
    argv = [a.format(ro=read_only, d=tmp_path) for a in where] + ["--model-dir", model_dir, *CPU]
    assert main(argv) == 1
    captured = capsys.readouterr()
    line = one_error(captured.err)
    assert "cannot write to folder" in line and str(read_only) in line and "Read-only" in line
    assert captured.out == "" and not (tmp_path / "g.png").exists() and list(read_only.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:  # noqa: ANN001
    """A 1 MiB tmpfs (needs root; skipped otherwise)."""
    with filesystems.tmpfs(tmp_path / "small", "size=1m") as mnt:
        yield mnt


def test_a_full_disk_is_refused_before_any_work(model_dir, small_disk, capsys) -> None:
    filesystems.fill(small_disk)
    for where in (["-o", small_disk / "g.png"], ["--each", small_disk / "each"]):
        assert main([*GEN, *map(str, where), "--model-dir", model_dir]) == 1
        assert "KiB free" in one_error(capsys.readouterr().err)
    assert main([*INTERP, "-o", str(small_disk / "a.gif"), "--model-dir", model_dir]) == 1
    assert "KiB free" in one_error(capsys.readouterr().err)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("out", ["g.png", "a.gif"])
def test_disk_full_at_the_end_saves_in_the_temp_folder_and_says_where(model_dir, small_disk, tmp_path, out) -> None:
    """Bug 4: the disk fills up during the run, so the final write fails: the result goes to the temporary
    folder instead, named in one line (exit 1)."""
    spare = tmp_path / "tmp"
    spare.mkdir()
    if out == "g.png":
        cmd = ["generate", "--class", "hen", "--samples", "120", "--seed", "1"]
    else:
        cmd = ["interpolate", "--from", "hen", "--to", "cock", "--steps", "100", "--seed-from", "1"]
    run = cli_proc.Running([*cmd, "--batch-size", "1", "-o", small_disk / out, "--model-dir", model_dir, *CPU],
                           env={**ENV, "TMPDIR": str(spare)})  # fmt: skip
    run.wait_for(r"\b[1-9]\d*/1[02]0\b")
    filesystems.fill(small_disk)
    done = run.finish()
    assert done.code == 1, done.err
    line = done.one_line_error()
    assert str(small_disk / out) in line and str(spare / out) in line and "No space left" in line
    with Image.open(spare / out) as im:
        im.load()
    assert not (small_disk / out).exists() and media.stray_parts(small_disk) == []


# --- kill -9 and --resume ------------------------------------------------------------------------------------------


def sample_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if not p.name.startswith(".")}


def test_kill_9_leaves_only_whole_samples_and_resume_makes_the_same_images(model_dir, tmp_path, capsys) -> None:
    """Bug 14: SIGKILL mid-run leaves whole files only (and .part temporaries); --resume (finding the seed from
    the files) skips the samples already there and makes the rest exactly as an uninterrupted run does."""
    each, grid = tmp_path / "each", tmp_path / "grid.png"
    args = ["generate", "--class", "hen", "--class", "cock", "--samples", "60", "--batch-size", "1",
            "--model-dir", model_dir, *CPU, "--each", each, "-o", grid]  # fmt: skip
    run = cli_proc.Running(args, env=ENV)
    run.wait_for(r"\b([5-9]|\d\d+)/120\b")
    run.kill()
    assert run.proc.returncode == -9
    seed = int(re.search(r"seed (\d+)", run.finish().out).group(1))  # printed before the work
    files = sample_files(each)
    assert set(each.iterdir()) == set(files.values()) | set(media.stray_parts(each))  # nothing half-written
    assert 5 <= len(files) < 120 and not grid.exists()
    for name, path in files.items():
        assert re.fullmatch(rf"(008-hen|007-cock)-seed{seed}-\d+\.png", name)
        assert pixels(path).shape == (16, 16, 3)  # complete and readable
    kept = {name: (p.read_bytes(), p.stat().st_mtime_ns) for name, p in files.items()}

    argv = [str(a) for a in args]
    assert main([*argv, "--seed", str(seed)]) == 2  # no --resume: a clash, in one line, before any work
    assert "--resume" in one_error(capsys.readouterr().err)
    assert main([*argv, "--resume", "--truncation", "0.7"]) == 2  # other options than the files': refused
    assert "truncation 0.4" in one_error(capsys.readouterr().err)

    resumed = cli_proc.run([*args, "--resume"], env=ENV)
    assert resumed.code == 0, resumed.err
    assert f"{len(files)} of 120 samples already in" in resumed.err
    assert {n: (p.read_bytes(), p.stat().st_mtime_ns) for n, p in sample_files(each).items() if n in kept} == kept
    assert len(sample_files(each)) == 120 and media.stray_parts(each) == []

    each2, grid2 = tmp_path / "each2", tmp_path / "grid2.png"
    fresh = cli_proc.run([*args[:-4], "--seed", seed, "--each", each2, "-o", grid2], env=ENV)  # same threads
    assert fresh.code == 0, fresh.err
    for name, path in sample_files(each2).items():
        assert np.array_equal(pixels(path), pixels(each / name)), name
    assert np.array_equal(pixels(grid), pixels(grid2))


def test_kill_9_in_interpolate_leaves_nothing_at_the_output_name(model_dir, tmp_path) -> None:
    """Bug 14: the animation is written once, atomically, at the end: a kill leaves no file at its name, and a
    rerun needs no --overwrite."""
    out = tmp_path / "a.mp4"
    run = cli_proc.Running(["interpolate", "--from", "hen", "--to", "cock", "--steps", "300", "--batch-size", "1",
                            "--model-dir", model_dir, *CPU, "-o", out], env=ENV)  # fmt: skip
    run.wait_for(r"\b[1-9]\d*/300\b")
    run.kill()
    assert run.proc.returncode == -9 and not out.exists()
    assert set(tmp_path.iterdir()) <= set(media.stray_parts(tmp_path))
    rerun = cli_proc.run(["interpolate", "--from", "hen", "--to", "cock", "--steps", "3", "--model-dir", model_dir,
                          *CPU, "-o", out], env=ENV)  # fmt: skip
    assert rerun.code == 0, rerun.err
    assert out.stat().st_size > 0


def test_resume_without_files_is_a_fresh_run_and_overwrites_nothing(model_dir, tmp_path, capsys) -> None:
    """--resume is not --overwrite: with nothing to resume it makes every sample; an existing grid still needs
    --overwrite."""
    (tmp_path / "g.png").write_bytes(b"keep")
    base = [*GEN, "--model-dir", model_dir, *CPU, "--each", str(tmp_path / "each"), "--resume", "-q"]
    assert main([*base, "-o", str(tmp_path / "g.png")]) == 2
    assert "--overwrite" in one_error(capsys.readouterr().err) and (tmp_path / "g.png").read_bytes() == b"keep"
    assert main([*base, "-o", str(tmp_path / "g2.png")]) == 0
    assert sorted(sample_files(tmp_path / "each")) == ["008-hen-seed4-0.png", "008-hen-seed4-1.png"]


# --- the model cache ---------------------------------------------------------------------------------------------


def test_a_private_model_cache_holds_the_model_and_releases_it(model_dir) -> None:
    cache = ModelCache()
    opts = dict(model=model_dir, device="cpu", precision="fp32", seed=0)
    before = list(api.default_models.keys())
    first = api.generate("hen", models=cache, **opts)
    assert len(cache) == 1 and list(api.default_models.keys()) == before  # the default cache is not used
    (key,) = cache.keys()
    net = cache.get(key, lambda: pytest.fail("should be cached"))
    api.generate("cock", models=cache, **opts)
    api.interpolate("hen", "cock", steps=2, models=cache, model=model_dir, device="cpu", precision="fp32")
    assert cache.keys() == [key] and cache.get(key, lambda: None) is net  # the same key reuses the object
    api.generate("hen", models=cache, bn_stats="linear", **opts)
    assert len(cache) == 2  # another bn_stats rule: another key
    cache.release()
    assert len(cache) == 0
    again = api.generate("hen", models=cache, **opts)
    assert len(cache) == 1 and cache.get(cache.keys()[0], lambda: None) is not net
    assert np.array_equal(first.images.numpy(), again.images.numpy())
    assert first.info["model"] == model_dir and first.elapsed > 0 and len(first.pictures()) == 1


def test_a_changed_weights_file_is_a_new_cache_key(model_dir, tmp_path) -> None:
    folder = bt.write_dir(tmp_path / "m", seed=1)
    cache = ModelCache()
    api.generate("hen", model=folder, device="cpu", precision="fp32", seed=0, models=cache)
    os.utime(folder / "pytorch_model.bin", ns=(1, 1))
    api.generate("hen", model=folder, device="cpu", precision="fp32", seed=0, models=cache)
    assert len(cache) == 2
