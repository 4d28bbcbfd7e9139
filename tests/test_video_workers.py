"""`impasto video --workers/--ray`: frames in chunks over workers, stitched in order with the frame rate and audio
kept; a lost worker's chunk redone, never duplicated; kill -9 then --resume redoes no finished chunk.

Order is read back from the frames themselves: the test clip carries each frame's index as eight black/white
stripes, and ``--preset N --strength 0`` hands every frame through the whole pipeline unchanged (the preset
result is mixed with weight 0), so a stitched video shows exactly which input frame sits where.
"""

from __future__ import annotations

import os
import signal
import subprocess
import zipfile
from fractions import Fraction
from pathlib import Path

import cli_proc
import numpy as np
import pytest
from PIL import Image

from impasto import api
from impasto.cli.main import main
from impasto.events import Progress
from impasto.media import ffmpeg_exe, numbered_frames, probe_video, read_frame, read_video
from impasto.workers import video as wv

W, H = 64, 48
BITS = 8  # stripes of W // BITS px: frame index in binary, most significant first


def index_frame(i: int) -> np.ndarray:
    """A (H, W, 3) uint8 frame showing ``i`` as BITS stripes (235 = 1, 20 = 0)."""
    bits = [(i >> (BITS - 1 - b)) & 1 for b in range(BITS)]
    row = np.repeat(np.array([235 if x else 20 for x in bits], np.uint8), W // BITS)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, None], (H, W, 3)))


def read_index(frame: np.ndarray) -> int:
    """The index :func:`index_frame` drew (read at each stripe's centre, robust to codec noise)."""
    step = W // BITS
    value = 0
    for b in range(BITS):
        value = value * 2 + int(frame[4:-4, b * step + 2 : (b + 1) * step - 2].mean() > 128)
    return value


def index_clip(path: Path, frames: int = 24, rate: str = "12") -> Path:
    """An H.264 + AAC clip whose frame k shows index k (near-lossless), with a 440 Hz tone."""
    pngs = path.parent / f"{path.stem}_src"
    pngs.mkdir()
    for i in range(frames):
        Image.fromarray(index_frame(i)).save(pngs / f"f_{i:04d}.png")
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-framerate", rate, "-i", str(pngs / "f_%04d.png"),
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={frames / float(Fraction(rate)) + 1}",
        "-frames:v", str(frames), "-c:v", "libx264", "-crf", "4", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
        str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def audio_streams(path: Path) -> list[str]:
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return [line.split("Audio:")[1].split()[0].strip(",") for line in err.splitlines() if "Audio:" in line]


def indices(path: Path) -> list[int]:
    return [read_index(f) for f in read_video(probe_video(path))]


def folder_frames(folder: Path) -> list[np.ndarray]:
    frames = numbered_frames(folder)
    assert sorted(frames) == list(range(len(frames)))
    return [read_frame(frames[i]).astype(np.int16) for i in range(len(frames))]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=40)


# --- the pieces ---------------------------------------------------------------------------------------------------


def test_the_index_pattern_survives_the_clip(clip: Path):
    assert indices(clip) == list(range(24))


def test_chunk_plan_covers_every_frame_once_and_warmup_follows_alpha():
    plan = wv.plan_chunks(23, 5)
    assert plan == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert [i for a, b in plan for i in range(a, b)] == list(range(23))
    assert wv.warmup_frames(None) == 0
    assert wv.warmup_frames(0.7) == 11 and 0.7**11 <= wv.SEAM_TOLERANCE < 0.7**10
    assert wv.warmup_frames(0.99) == wv.MAX_WARMUP
    assert wv.default_chunk_frames(1000, 2) == 125 and wv.default_chunk_frames(10, 4) == wv.MIN_CHUNK


def test_read_frame_range_gives_the_frames_read_video_gives(clip: Path, tmp_path: Path):
    everything = list(read_video(probe_video(clip), size=(40, 30)))
    part = list(wv.read_frame_range(clip, 7, 13, (40, 30)))
    assert len(part) == 6 and all(np.array_equal(a, b) for a, b in zip(part, everything[7:13], strict=True))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(index_frame(i)).save(folder / f"x{i}.png")
    assert [read_index(f) for f in wv.read_frame_range(folder, 2, 5, (W, H))] == [2, 3, 4]


def test_stitch_reads_each_range_once_in_plan_order(tmp_path: Path):
    plan = wv.plan_chunks(10, 4)  # (0, 4) (4, 8) (8, 10)

    def write(a: int, b: int) -> None:
        with zipfile.ZipFile(tmp_path / wv.chunk_name(a, b), "w") as zf:
            for i in range(a, b):
                zf.writestr(f"frame_{i + 1:06d}.png", wv._png(index_frame(i)))
            zf.writestr(wv.CHUNK_INFO, f'{{"start": {a}, "stop": {b}, "frames": {b - a}}}')

    for a, b in reversed(plan):  # finished in any order, one of them twice (a retried task)
        write(a, b)
    write(*plan[1])
    (tmp_path / wv.chunk_name(0, 5)).write_bytes(b"a chunk of some other plan")  # not in the plan: never read
    (tmp_path / f".{wv.chunk_name(4, 8)}.abcd1234.part").write_bytes(b"torn")
    assert wv.finished_chunks(tmp_path, plan) == {(0, 4): 4, (4, 8): 4, (8, 10): 2}
    assert [read_index(f) for f in wv.stitch_frames(tmp_path, plan)] == list(range(10))
    # a torn chunk (no chunk.json) is not finished, and stitching stops before it: the prefix only
    with zipfile.ZipFile(tmp_path / wv.chunk_name(4, 8), "w") as zf:
        zf.writestr("frame_000005.png", wv._png(index_frame(4)))
    assert (4, 8) not in wv.finished_chunks(tmp_path, plan)
    assert [read_index(f) for f in wv.stitch_frames(tmp_path, plan)] == [0, 1, 2, 3]


# --- through the CLI ----------------------------------------------------------------------------------------------


def test_workers_keep_every_frame_once_in_order_with_fps_and_audio(tmp_path: Path, clip: Path):
    out = tmp_path / "out.mp4"
    args = ["video", str(clip), "-o", str(out), "--preset", "3", "--strength", "0", "-q"]
    assert main([*args, "--workers", "2", "--chunk-frames", "5"]) == 0
    got = probe_video(out)
    assert got.frames == 24 and got.fps == Fraction(12) and got.size == (W, H)
    assert audio_streams(out) == ["aac"] and got.duration == pytest.approx(2.0, abs=0.1)
    assert indices(out) == list(range(24))
    assert not Path(f"{out}.chunks").exists()  # the work folder is gone after the stitch


def test_chunked_output_equals_the_single_process_output(tmp_path: Path, clip: Path):
    base = ["video", str(clip), "--preset", "3", "--size", "48", "-q"]
    assert main([*base, "-o", str(tmp_path / "single")]) == 0
    assert main([*base, "-o", str(tmp_path / "inproc"), "--workers", "1", "--chunk-frames", "5"]) == 0
    assert main([*base, "-o", str(tmp_path / "pool"), "--workers", "2", "--chunk-frames", "7"]) == 0
    single = folder_frames(tmp_path / "single")
    assert len(single) == 24 and all(np.abs(a - b).mean() > 1 for a, b in zip(single, single[1:], strict=False))
    inproc, pool = folder_frames(tmp_path / "inproc"), folder_frames(tmp_path / "pool")
    assert all(np.array_equal(a, b) for a, b in zip(single, inproc, strict=True))  # same process: same pixels
    # another process with another torch thread count sums in another order: at most a level of rounding
    assert max(int(np.abs(a - b).max()) for a, b in zip(single, pool, strict=True)) <= 1

    assert main([*base, "-o", str(tmp_path / "single.mp4")]) == 0
    assert main([*base, "-o", str(tmp_path / "pool.mp4"), "--workers", "2", "--chunk-frames", "7"]) == 0
    a = [f.astype(np.int16) for f in read_video(probe_video(tmp_path / "single.mp4"))]
    b = [f.astype(np.int16) for f in read_video(probe_video(tmp_path / "pool.mp4"))]
    assert len(a) == len(b) == 24 and max(float(np.abs(x - y).mean()) for x, y in zip(a, b, strict=True)) < 1.0


@pytest.mark.slow
def test_stabilized_chunks_start_early_so_the_seams_match(tmp_path: Path, clip: Path):
    pytest.importorskip("cv2", reason="the stabiliser needs OpenCV (impasto[video])")
    base = ["video", str(clip), "--preset", "3", "--size", "48", "--stabilize", "-q"]
    assert main([*base, "-o", str(tmp_path / "single")]) == 0
    assert main([*base, "-o", str(tmp_path / "chunks"), "--workers", "1", "--chunk-frames", "6"]) == 0
    single, chunks = folder_frames(tmp_path / "single"), folder_frames(tmp_path / "chunks")
    assert len(chunks) == 24
    assert all(np.array_equal(a, b) for a, b in zip(single[:6], chunks[:6], strict=True))  # the first chunk
    seams = [float(np.abs(single[i] - chunks[i]).mean()) for i in (6, 12, 18)]
    assert max(seams) < 1.0, seams  # the warm-up leaves (far) less than SEAM_TOLERANCE of the start-up error


def test_a_lost_worker_has_its_chunk_redone_never_duplicated(tmp_path: Path, clip: Path):
    out = tmp_path / "out.mp4"
    killed: list[int] = []
    with api.open_executor(2, device="cpu") as ex:

        def kill_one(event: object) -> None:  # after the first finished chunk: SIGKILL a worker mid-task
            if isinstance(event, Progress) and event.info.get("chunks") and not killed:
                killed.append(ex.pids()[0])
                os.kill(killed[0], signal.SIGKILL)

        result = api.video(clip, out, preset="3", strength=0.0, executor=ex, chunk_frames=3, callback=kill_one,
                           device="cpu")  # fmt: skip
    assert killed and result.complete and result.frames == 24
    assert indices(out) == list(range(24)) and audio_streams(out) == ["aac"]


@pytest.mark.slow
def test_kill_9_then_resume_redoes_no_finished_chunk(tmp_path: Path, long_clip: Path):
    out = tmp_path / "out.mp4"
    work = Path(f"{out}.chunks")
    args = ["video", long_clip, "-o", out, "--preset", "3", "--strength", "0", "--workers", "2", "--chunk-frames", "4"]
    run = cli_proc.Running(args)
    run.wait_for(r"\b(1[2-9]|[23]\d)/40\b")  # three chunks or more finished
    run.kill()
    run.finish()
    assert not out.exists()
    plan = wv.plan_chunks(40, 4)
    before = {r: (work / wv.chunk_name(*r)).stat().st_mtime_ns for r in wv.finished_chunks(work, plan)}
    # on a quiet machine the workers may finish every chunk before the kill lands (the bar lags): the encode is
    # then what was killed, and the resume must still redo no chunk
    assert 3 <= len(before) <= len(plan)

    again = cli_proc.run(args)  # without --resume: refused in one line, nothing thrown away
    assert again.code == 2 and "--resume" in again.one_line_error()
    plain = cli_proc.run([*args[:-4], "--resume"])  # chunks are resumed over workers, not frame by frame
    assert plain.code == 2 and "resume it with --workers" in plain.one_line_error()
    # a resume may use another number of workers: the saved chunk plan is kept
    resumed = cli_proc.run([*args[:-4], "--workers", "1", "--resume", "--keep-frames"])
    assert resumed.code == 0, resumed.err
    after = wv.finished_chunks(work, plan)
    assert sorted(after) == plan
    assert {r: (work / wv.chunk_name(*r)).stat().st_mtime_ns for r in before} == before  # none redone
    assert indices(out) == list(range(40)) and audio_streams(out) == ["aac"]


@pytest.mark.slow
def test_ctrl_c_with_workers_keeps_the_finished_chunks_as_a_partial_video(tmp_path: Path, long_clip: Path):
    out = tmp_path / "out.mp4"
    run = cli_proc.Running(["video", long_clip, "-o", out, "--preset", "3", "--strength", "0", "--workers", "2",
                            "--chunk-frames", "4"])  # fmt: skip
    run.wait_for(r"\b([4-9]|[1-3]\d)/40\b")
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err and "--resume" in done.err
    got = indices(out)  # playable, the finished chunks at the start, in order
    assert 4 <= len(got) < 40 and got == list(range(len(got))) and audio_streams(out) == ["aac"]


BAD = [
    (["--chunk-frames", "4"], 2, ["--chunk-frames", "--workers"]),
    (["--workers", "2", "--chunk-frames", "0"], 2, ["--chunk-frames", "at least 1"]),
    (["--workers", "-1"], 2, ["--workers", "-1"]),
]


@pytest.mark.parametrize("extra, code, words", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_worker_options_one_line_and_nothing_touched(tmp_path: Path, clip: Path, extra, code, words):  # noqa: ANN001
    (tmp_path / "clip.mp4").write_bytes(clip.read_bytes())
    before = cli_proc.snapshot(tmp_path)
    got = cli_proc.run(["video", "clip.mp4", "-o", "o.mp4", "--preset", "3", *extra], cwd=tmp_path)
    assert got.code == code
    line = got.one_line_error()
    assert all(w in line for w in words), line
    assert cli_proc.snapshot(tmp_path) == before


def test_chunked_video_into_a_read_only_or_full_folder_is_one_line_before_any_work(tmp_path: Path, clip: Path):
    """Over workers as in one process: a read-only destination, a folder to create in one, and a disk with no room
    are refused in one line before a chunk is rendered, with nothing left behind (no chunk folder, no temp files)."""
    import filesystems

    (tmp_path / "clip.mp4").write_bytes(clip.read_bytes())
    before = cli_proc.snapshot(tmp_path)
    ro_at, full_at = tmp_path / "ro", tmp_path / "full"
    with filesystems.tmpfs(ro_at, "ro,size=1m") as ro, filesystems.tmpfs(full_at, "size=1m") as full:
        filesystems.fill(full, leave=64 * 1024)
        cases = [
            (ro / "o.mp4", 1, [str(ro), "Read-only"]),
            (ro / "frames", 1, [str(ro), "Read-only"]),
            (ro / "new" / "o.mp4", 2, ["does not exist"]),
            (full / "o.mp4", 1, [str(full), "free"]),
        ]
        for out, code, words in cases:
            got = cli_proc.run(["video", "clip.mp4", "-o", str(out), "--preset", "3", "--workers", "2"], cwd=tmp_path)
            assert got.code == code, got.err
            line = got.one_line_error()
            assert all(w in line for w in words), line
            assert "frame/s" not in got.err  # refused before any frame was rendered
        assert list(ro.iterdir()) == []
        assert sorted(p.name for p in full.iterdir()) == ["filler"]
    assert cli_proc.snapshot(tmp_path) == before  # the clip untouched, no chunk folder or temporary beside it
