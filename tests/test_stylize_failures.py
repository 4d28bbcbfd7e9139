"""`impasto stylize` / `impasto presets` when things go wrong: bad input, Ctrl-C, kill -9 and --resume, a
read-only or full output folder.

Bad input goes through main(argv) (one line, exit code, nothing touched); the failure paths run the real CLI in a
subprocess with real signals (tests/cli_proc.py) and real read-only / full tmpfs mounts (skipped where mounting
is not permitted).
"""

from __future__ import annotations

import io
import re
import signal
from pathlib import Path

import cli_proc
import filesystems
import pytest
import tiny_weights as tw
from PIL import Image

from impasto.cli.main import main
from impasto.imaging import load_image
from impasto.media import stray_parts

# --- helpers ----------------------------------------------------------------------------------------------------


def _photos(folder: Path, n: int, size: tuple[int, int] = (64, 64)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"p{i:02d}.png" for i in range(n)]
    for i, p in enumerate(paths):
        tw.image(p, size=size, seed=i % 5)
    return paths


def _tree(folder: Path) -> tuple[dict[str, bytes], set[str]]:
    """Every file's bytes and every folder's name under ``folder``: what a failed command must leave alone."""
    return cli_proc.snapshot(folder), {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_dir()}


def _complete(path: Path) -> bool:
    try:
        load_image(path)
    except Exception:  # noqa: BLE001 - any failure to decode means torn
        return False
    return True


def _outputs(folder: Path) -> dict[str, Path]:
    """The files at output names (not the ``.NAME.XXXX.part`` temporaries)."""
    return {p.name: p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


# --- bad input: exit code, one line, no traceback, nothing touched -----------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tw.image(tmp_path / "photo.png", size=(48, 40), seed=1)
    tw.image(tmp_path / "style.png", size=(40, 40), seed=2)
    (tmp_path / "notimage.png").write_text("plain text, not a picture")
    (tmp_path / "exists.png").write_bytes(b"precious")
    (tmp_path / "empty").mkdir()
    (tmp_path / "sub").mkdir()
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        tw.image(tmp_path / d / "same.png", size=(40, 40))
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "photo_stylized.png").write_text("not an image either")
    monkeypatch.chdir(tmp_path)
    return tmp_path


STYLIZE_BAD = [
    # (argv after "stylize", exit code, words in the one line)
    (["photo.png", "--preset", "26"], 2, ["unknown preset 26", "0 to 25"]),
    (["photo.png", "--preset", "3:x"], 2, ["bad preset", "3:0.5,12:0.5"]),
    (["photo.png", "--preset", "3:-1"], 2, ["non-negative"]),
    (["photo.png", "--preset", "3:0,4:0"], 2, ["add up"]),
    (["photo.png", "--preset", "3", "--strength", "1.5"], 2, ["--strength", "between 0 and 1", "1.5"]),
    (["photo.png", "--preset", "3", "--strength=-0.1"], 2, ["--strength", "-0.1"]),
    (["photo.png", "--preset", "3", "--size", "8"], 2, ["--size", "at least 16", "8"]),
    (["photo.png", "--style", "style.png", "--style-weights", "1,1"], 2, ["2 style weights", "1 style"]),
    (["photo.png", "--style", "style.png", "--style-weights", "a,b"], 2, ["comma-separated numbers"]),
    (["photo.png", "--preset", "3", "--style-weights", "1"], 2, ["--style-weights needs --style"]),
    (["photo.png", "--style", "notimage.png"], 1, ["notimage.png", "not an image"]),
    (["photo.png", "--style", "nostyle.png"], 1, ["not found", "nostyle.png"]),
    (["missing.png", "--preset", "3"], 1, ["not found", "missing.png"]),
    (["empty", "--preset", "3", "--out-dir", "out"], 2, ["no images found", "empty"]),
    (["photo.png", "style.png", "--preset", "3", "-o", "x.png"], 2, ["-o names one file", "2 inputs"]),
    (["photo.png", "--preset", "3", "-o", "x.png", "--out-dir", "out"], 2, ["not both"]),
    (["photo.png", "--preset", "3", "-o", "exists.png"], 2, ["exists.png already exists", "--overwrite"]),
    (["photo.png", "--preset", "3", "-o", "out.xyz"], 2, ["out.xyz", ".png"]),
    (["photo.png", "--preset", "3", "-o", "sub"], 2, ["is a folder"]),
    (["photo.png", "--preset", "3", "-o", "nowhere/out.png"], 2, ["nowhere", "does not exist"]),
    (["photo.png", "--preset", "3", "--out-dir", "photo.png"], 2, ["is a file"]),
    (["a", "b", "--preset", "3", "--out-dir", "out"], 2, ["same.png", "would both be written", "rename"]),
    (["photo.png", "--preset", "3", "--out-dir", "done", "--resume", "--overwrite"], 2, ["--resume", "--overwrite"]),
    (["photo.png", "--preset", "3", "--out-dir", "done", "--resume"], 2, ["photo_stylized.png", "not a complete"]),
    (["photo.png"], 2, ["--style", "--preset"]),
    (["photo.png", "--preset", "3", "--style", "style.png"], 2, ["not allowed"]),
]

PRESETS_BAD = [
    (["photo.png", "--tile", "16"], 2, ["--tile", "at least 32", "16"]),
    (["photo.png", "-o", "exists.png"], 2, ["exists.png already exists", "--overwrite"]),
    (["missing.png", "-o", "sheet.png"], 1, ["not found", "missing.png"]),
    (["notimage.png", "-o", "sheet.png"], 1, ["not an image"]),
    (["photo.png", "-o", "sheet.xyz"], 2, ["sheet.xyz"]),
    (["photo.png", "-o", "sub"], 2, ["is a folder"]),
    (["photo.png", "-o", "nowhere/sheet.png"], 2, ["does not exist"]),
]


@pytest.mark.parametrize(
    "command, argv, code, words",
    [("stylize", *case) for case in STYLIZE_BAD] + [("presets", *case) for case in PRESETS_BAD],
    ids=[f"stylize:{' '.join(c[0])}" for c in STYLIZE_BAD] + [f"presets:{' '.join(c[0])}" for c in PRESETS_BAD],
)
def test_bad_input_one_line_and_nothing_touched(workdir, capsys, command, argv, code, words):  # noqa: ANN001
    before = _tree(workdir)
    got = main([command, *argv])
    captured = capsys.readouterr()
    assert got == code, captured.err
    assert "Traceback" not in captured.err
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("impasto: error:"), captured.err
    for w in words:
        assert w in lines[0], lines[0]
    assert captured.out == ""
    assert _tree(workdir) == before  # no file changed or added, no folder made


def test_there_are_enough_bad_input_cases():
    assert len(STYLIZE_BAD) + len(PRESETS_BAD) >= 15


# --- Ctrl-C: keep the finished files, say how many, exit 130 -----------------------------------------------------


def test_ctrl_c_in_a_folder_keeps_finished_images_and_exits_130(tmp_path: Path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 30)
    # 96 px renders: slow enough on any machine that the signal lands while most photos are still to do
    run = cli_proc.Running(["stylize", str(src), "--preset", "3", "--size", "96", "--out-dir", str(out)])
    run.wait_for(r"\b[1-9]\d*/30\b")  # the bar has counted a finished image
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err
    printed = [Path(line) for line in done.out.splitlines() if line.strip()]
    assert 1 <= len(printed) < 30, done.out
    summary = [ln for ln in done.err.splitlines() if re.search(r"\d+ of 30 images written", ln)]
    assert len(summary) == 1 and f"{len(printed)} of 30 images written" in summary[0], done.err
    # the finished outputs are all there and complete; none exists for the photos not done; no temporaries left
    assert set(_outputs(out).values()) == set(printed)
    assert all(_complete(p) for p in printed)
    assert stray_parts(out) == []
    names = sorted(p.name for p in printed)
    assert names == [f"p{i:02d}_stylized.png" for i in range(len(printed))]  # in order: the first ones


def test_ctrl_c_in_presets_writes_no_sheet_and_exits_130(tmp_path: Path):
    tw.image(tmp_path / "photo.png", size=(64, 64))
    (tmp_path / "sheet.png").write_bytes(b"an earlier sheet")
    # 320 px tiles: at 96 px a quiet machine made all 26 before the bar showed one (the signal then came too late)
    run = cli_proc.Running(["presets", tmp_path / "photo.png", "--tile", "320", "-o", tmp_path / "sheet.png",
                            "--overwrite"])  # fmt: skip
    run.wait_for(r"\b([1-9]|1\d|2[0-5])/26\b")
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err and "no sheet written" in done.err
    assert (tmp_path / "sheet.png").read_bytes() == b"an earlier sheet"  # what the user had is untouched
    assert stray_parts(tmp_path) == []


def test_ctrl_c_inside_one_large_native_image_stops_between_its_tiles(tmp_path: Path):
    """A photo over the tiling threshold painted natively runs tile by tile; Ctrl-C lands inside it, and the run
    stops at the next tile (exit 130) instead of finishing the image: no output, no temporary left."""
    tw.image(tmp_path / "big.png", size=(2100, 2100), seed=3)  # 4.4 M pixels: over fast.tiling.TILE_ABOVE
    out = tmp_path / "big_stylized.png"
    run = cli_proc.Running(["--debug", "stylize", tmp_path / "big.png", "--preset", "3", "--working-size", "native",
                            "-o", out])  # fmt: skip
    run.wait_for(r"natively in \d+-px tiles")  # the tiled render has begun (its log line, with --debug)
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert not out.exists()  # before, the whole image was finished (and written) before the signal was seen
    assert stray_parts(tmp_path) == []


# --- kill -9: no torn file at any output name; --resume makes the rest without touching the finished ones ------


def test_kill_9_leaves_no_torn_output_and_resume_finishes_the_rest(tmp_path: Path):
    src, out, fresh = tmp_path / "photos", tmp_path / "out", tmp_path / "fresh"
    _photos(src, 40)
    args = ["stylize", str(src), "--preset", "3", "--out-dir", str(out)]
    run = cli_proc.Running(args)
    run.wait_for(r"(?m)(^.*_stylized\.png$\n){2}", stream="out")  # two finished files printed
    run.kill()  # SIGKILL: no handler runs
    run.finish()
    finished = _outputs(out)
    assert 2 <= len(finished) < 40, sorted(finished)
    assert all(_complete(p) for p in finished.values()), "a torn file sits at an output name"
    for part in stray_parts(out):  # what the writer was writing when killed: only ever a .part temporary
        assert part.name.startswith(".") and part.name.endswith(".part")
    before = {name: (p.read_bytes(), p.stat().st_mtime_ns) for name, p in finished.items()}
    (out / ".p11_stylized.png.0badc0de.part").write_bytes(b"\x89PNG torn")  # as a kill mid-write leaves
    (out / ".notes.txt.0badc0de.part").write_bytes(b"not ours")

    again = cli_proc.run([*args, "--resume"])
    assert again.code == 0, again.err
    made = {Path(line).name for line in again.out.splitlines() if line.strip()}
    assert made and made.isdisjoint(before)  # only the missing ones were made
    after = _outputs(out)
    assert {name: (after[name].read_bytes(), after[name].stat().st_mtime_ns) for name in before} == before
    assert all(_complete(p) for p in after.values())
    assert stray_parts(out) == [out / ".notes.txt.0badc0de.part"]  # our temporaries cleared, nothing else

    assert main(["stylize", str(src), "--preset", "3", "--out-dir", str(fresh), "--size", "16", "-q"]) == 0
    assert set(after) == set(_outputs(fresh))  # the same set of names as a fresh full run
    assert main([*args, "--resume", "-q"]) == 0  # nothing left: a no-op that leaves the folder alone
    assert {name: p.stat().st_mtime_ns for name, p in _outputs(out).items()} == {
        name: p.stat().st_mtime_ns for name, p in after.items()
    }


# --- a folder that cannot take the files -------------------------------------------------------------------------


def test_read_only_output_folder_is_refused_before_the_work(tmp_path: Path):
    tw.image(tmp_path / "photo.png", size=(64, 64))
    fallback = tmp_path / "fallback"
    fallback.mkdir()
    env = {"TMPDIR": str(fallback)}
    with filesystems.tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        cases = [
            (["stylize", tmp_path / "photo.png", "--preset", "3", "--out-dir", ro], [str(ro), "cannot write"]),
            (["stylize", tmp_path / "photo.png", "--preset", "3", "--out-dir", ro / "new" / "sub"], ["cannot create"]),
            (["presets", tmp_path / "photo.png", "-o", ro / "sheet.png"], [str(ro), "cannot write"]),
        ]
        for argv, words in cases:
            done = cli_proc.run(argv, env=env)
            assert done.code == 1, done.err
            line = done.one_line_error()
            assert all(w in line for w in words), line
            assert "/30" not in done.err and "stylize:" not in done.err  # refused before any image was made
        assert list(ro.iterdir()) == []
    assert list(fallback.iterdir()) == []


def test_disk_full_at_the_final_write_saves_in_the_temp_folder_and_says_where(tmp_path: Path):
    tw.image(tmp_path / "photo.png", size=(96, 64))
    src = tmp_path / "photos"
    _photos(src, 3, size=(96, 64))  # rendered at 640 px: each PNG is about 500 KiB of texture
    fallback = tmp_path / "fallback"
    fallback.mkdir()
    env = {"TMPDIR": str(fallback)}
    with filesystems.tmpfs(tmp_path / "full", "size=1m") as full:
        # enough free space to pass the check before the work, too little for an image
        filesystems.fill(full, 300 * 1024)
        # a folder: stops at the first image the disk cannot take, saves it in the temp folder, says how many were
        # written to the destination
        done = cli_proc.run(["stylize", src, "--preset", "3", "--size", "640", "--out-dir", full], env=env)
        assert done.code == 1, done.err
        line = done.one_line_error()
        assert f"could not write {full / 'p00_stylized.png'}" in line, line
        assert "0 of 3 images were written" in line and "--resume" in line, line
        assert set(_outputs(full)) == {"filler"}
        assert stray_parts(full) == []
        saved = re.search(r"saved the result to (\S+) instead", line)
        assert saved and _complete(Path(saved.group(1))) and Path(saved.group(1)).parent == fallback

        # the contact sheet (7x4 tiles of 128 px) does not fit either
        done = cli_proc.run(["presets", tmp_path / "photo.png", "--tile", "128", "-o", full / "sheet.png"], env=env)
        assert done.code == 1, done.err
        line = done.one_line_error()
        assert str(fallback / "sheet.png") in line, line
        assert _complete(fallback / "sheet.png") and not (full / "sheet.png").exists()


def test_truncated_file_is_not_complete():  # the helper the kill test relies on can tell a torn file
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "torn.png"
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        assert not _complete(p)
        p.write_bytes(buf.getvalue())
        assert _complete(p)
