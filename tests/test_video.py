"""`impasto video`: containers, frame rate, frame count and audio kept; Ctrl-C and kill -9 through the real CLI;
--resume; the stabiliser and the stability metric; bad input (one line, exit code, nothing touched).

Clips are generated here with the bundled ffmpeg (testsrc + a 440 Hz sine); the Magenta networks (the offline
default) run at tiny sizes.
"""

from __future__ import annotations

import json
import signal
import subprocess
from fractions import Fraction
from pathlib import Path

import cli_proc
import numpy as np
import pytest
import tiny_weights as tw
import torch

from impasto.cli.main import main
from impasto.errors import Cancelled
from impasto.events import CancelToken, Progress
from impasto.fast import video as fv
from impasto.media import ffmpeg_exe, numbered_frames, probe_video, read_video

cv2 = pytest.importorskip("cv2", reason="the stabiliser needs OpenCV (impasto[video])")


def make_clip(path: Path, *, frames: int = 12, size: tuple[int, int] = (48, 32), rate: str = "25/2",
              audio: bool = True) -> Path:  # fmt: skip
    """A testsrc clip of exactly ``frames`` frames at ``rate`` with (optionally) a sine audio track."""
    w, h = size
    cmd = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={rate}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={frames / float(Fraction(rate)) + 1}"]
    cmd += ["-frames:v", str(frames), "-pix_fmt", "yuv420p"]
    if path.suffix == ".webm":
        cmd += ["-c:v", "libvpx-vp9", "-c:a", "libopus"]
    elif path.suffix != ".gif":
        cmd += ["-c:v", "libx264", "-c:a", "aac"]
    cmd += ["-shortest", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def audio_streams(path: Path) -> list[str]:
    """The codecs of ``path``'s audio streams, from ffmpeg's own listing."""
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return [line.split("Audio:")[1].split()[0].strip(",") for line in err.splitlines() if "Audio:" in line]


def audio_seconds(path: Path) -> float:
    """Duration of ``path``'s audio stream, decoded."""
    p = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    times = [ln.split("time=")[1].split()[0] for ln in p.stderr.replace("\r", "\n").splitlines() if "time=" in ln]
    h, m, s = times[-1].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


# --- containers: frame rate, frame count, audio ------------------------------------------------------------------


@pytest.mark.parametrize("ext, audio", [(".mp4", "aac"), (".mov", "aac"), (".webm", "opus")])
def test_video_to_video_keeps_fps_frames_and_audio(tmp_path: Path, clip: Path, ext: str, audio: str):
    out = tmp_path / f"out{ext}"
    assert main(["video", str(clip), "-o", str(out), "--preset", "3", "-q"]) == 0
    got = probe_video(out)
    assert got.frames == 12 and got.fps == Fraction(25, 2) and got.size == (48, 32)
    assert audio_streams(out) == [audio]
    assert not Path(f"{out}.frames").exists()  # the work folder is gone after a successful encode
    frames = list(read_video(got))
    assert len(frames) == 12 and frames[0].std() > 5  # stylised frames, not blank ones


def test_ntsc_rate_is_kept_as_a_rational_and_odd_sizes_are_padded(tmp_path: Path, capsys):  # noqa: ANN001
    src = make_clip(tmp_path / "ntsc.mp4", frames=9, size=(48, 32), rate="30000/1001")
    out, style = tmp_path / "out.mp4", tmp_path / "style.png"
    tw.image(style, seed=3)
    assert main(["video", str(src), "-o", str(out), "--style", str(style), "--size", "33"]) == 0
    err = capsys.readouterr().err
    got = probe_video(out)
    assert got.fps == Fraction(30000, 1001) and got.frames == 9
    assert got.size == (34, 22)  # 33x22 stylised, padded to even for yuv420p ...
    assert "padded to 34x22" in err  # ... and it says so


def test_folder_to_folder_and_mp4_to_folder_and_folder_to_gif(tmp_path: Path, clip: Path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        tw.image(frames / f"shot{i:02d}.png", size=(40, 30), seed=i)
    (frames / "notes.txt").write_text("not a frame")
    out = tmp_path / "styled"
    assert main(["video", str(frames), "-o", str(out), "--preset", "5", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 6)]

    out2 = tmp_path / "from_mp4"
    assert main(["video", str(clip), "-o", str(out2), "--preset", "5", "--size", "32", "-q"]) == 0
    assert sorted(numbered_frames(out2)) == list(range(12))
    assert not (out2 / ".impasto-video.json").exists()

    gif = tmp_path / "out.gif"
    assert main(["video", str(frames), "-o", str(gif), "--preset", "5", "--fps", "10", "-q"]) == 0
    got = probe_video(gif)
    assert got.frames == 5 and got.fps == Fraction(10) and got.size == (40, 30) and audio_streams(gif) == []


def test_api_video_result_and_events(tmp_path: Path, clip: Path):
    from impasto import api

    events: list = []
    result = api.video(clip, tmp_path / "o.mp4", preset="3", size=32, callback=events.append, measure_stability=True)
    assert result.complete and result.frames == result.total == 12 and result.fps == Fraction(25, 2)
    assert result.info["rendered"] == 12 and result.info["audio"] == "aac" and result.info["stability"] > 0
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps == list(range(1, 13)) and all(e.info["fps"] > 0 for e in events if isinstance(e, Progress))
    pictures = result.pictures(3)
    assert len(pictures) == 3 and pictures[0].size == (32, 22)

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled) as exc:
        api.video(clip, tmp_path / "c.mp4", preset="3", size=32, cancel=token)
    assert exc.value.partial.frames == 0 and not (tmp_path / "c.mp4").exists()
    assert not (tmp_path / "c.mp4.frames").exists()  # nothing made, nothing left


def test_linear_method_renders_video_with_random_weights(tmp_path: Path, clip: Path, fresh_home: Path):
    import linear_tiny

    from impasto import api

    style = tmp_path / "style.png"
    tw.image(style, size=(40, 40), seed=5)
    missing = cli_proc.run(["video", clip, "-o", tmp_path / "x.mp4", "--style", style, "--method", "linear"],
                           env={"IMPASTO_HOME": str(fresh_home)})  # fmt: skip
    assert missing.code == 1 and "impasto models download linear.r41" in missing.one_line_error()
    folder = linear_tiny.write_all(tmp_path / "lw", files=("vgg_r41.pth", "dec_r41.pth", "r41.pth"))
    api.models.import_file("linear.r41", folder)
    result = api.video(clip, tmp_path / "lin.mp4", styles=[style], method="linear", size=32, stabilize=True)
    assert result.info["model"] == "linear.r41" and result.frames == 12 and result.fps == Fraction(25, 2)
    assert probe_video(tmp_path / "lin.mp4").frames == 12
    # with linear installed, an explicit magenta run must stay Magenta (it used to run linear r41)
    magenta = api.video(clip, tmp_path / "mag.mp4", styles=[style], method="magenta", size=32)
    assert "magenta" in magenta.info["model"] and "linear" not in magenta.info["model"]


# --- Ctrl-C, kill -9, --resume through the real CLI ----------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=80, size=(96, 64))


@pytest.mark.slow
def test_ctrl_c_keeps_a_playable_partial_video_with_its_audio(tmp_path: Path, long_clip: Path):
    out = tmp_path / "out.mp4"
    run = cli_proc.Running(["video", long_clip, "-o", out, "--preset", "3"])
    run.wait_for(r"\b([3-9]|[1-9]\d)/80\b")
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err and "partial video of" in done.err
    got = probe_video(out)  # playable: ffmpeg decodes every frame of it
    assert 3 <= got.frames < 80 and got.fps == Fraction(25, 2)
    assert audio_streams(out) == ["aac"]
    assert abs(audio_seconds(out) - got.frames / 12.5) < 0.15  # the audio is cut to the frames' length
    assert len(numbered_frames(Path(f"{out}.frames"))) >= got.frames  # kept for --resume


@pytest.mark.slow
def test_kill_9_then_resume_redoes_no_finished_frame(tmp_path: Path, long_clip: Path):
    out = tmp_path / "out.mp4"
    work = Path(f"{out}.frames")
    args = ["video", long_clip, "-o", out, "--preset", "3", "--size", "64"]
    run = cli_proc.Running(args)
    run.wait_for(r"\b([3-9]|[1-9]\d)/80\b")
    run.kill()
    run.finish()
    assert not out.exists()
    before = {i: p.stat().st_mtime_ns for i, p in numbered_frames(work).items()}
    assert 3 <= len(before) < 80 and sorted(before) == list(range(len(before)))

    # other settings: refused in one line, nothing touched
    changed = cli_proc.run([*args[:4], "--preset", "4", "--size", "64", "--resume"])
    assert changed.code == 2 and "cannot resume" in changed.one_line_error() and "preset" in changed.one_line_error()
    assert {i: p.stat().st_mtime_ns for i, p in numbered_frames(work).items()} == before
    # no --resume: refused too (the frames of the interrupted run are not thrown away silently)
    again = cli_proc.run(args)
    assert again.code == 2 and "--resume" in again.one_line_error()

    resumed = cli_proc.run([*args, "--resume", "--keep-frames"])
    assert resumed.code == 0, resumed.err
    after = numbered_frames(work)
    assert sorted(after) == list(range(80))
    assert {i: after[i].stat().st_mtime_ns for i in before} == before  # no finished frame redone
    got = probe_video(out)
    assert got.frames == 80 and audio_streams(out) == ["aac"]


# --- the stabiliser and the metric ---------------------------------------------------------------------------------


def _panning_clip(n: int = 10, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """A smooth textured picture sliding right by 1 px a frame (what optical flow can follow)."""
    w, h = size
    big = np.asarray(tw.image(None, size=(w + n, h), seed=2)).astype(np.float32)
    big = cv2.GaussianBlur(big, (0, 0), 1.5).astype(np.uint8)
    return [np.ascontiguousarray(big[:, n - i : n - i + w]) for i in range(n)]


def test_stability_ratio_of_a_copy_is_one_and_of_a_flicker_above():
    clip = _panning_clip()
    assert fv.stability_ratio(clip, clip) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in clip]
    assert fv.stability_ratio(clip, noisy) > 2.0


def test_stabilizer_reduces_the_flicker_of_a_noisy_renderer():
    clip = _panning_clip(12)
    gen = torch.Generator().manual_seed(0)

    def flicker(x: torch.Tensor) -> torch.Tensor:  # a renderer whose every frame gets fresh noise
        return (x + 0.08 * torch.randn(x.shape, generator=gen)).clamp(0, 1)

    def run(stabilize: fv.StabilizeOptions | None) -> list[np.ndarray]:
        got: dict[int, np.ndarray] = {}
        fv.stylize_frames(clip, flicker, on_frame=got.__setitem__, total=len(clip), stabilize=stabilize)
        return [got[i] for i in range(len(clip))]

    plain = fv.stability_ratio(clip, run(None))
    steady = fv.stability_ratio(clip, run(fv.StabilizeOptions()))
    assert steady < 0.75 * plain, (plain, steady)


def test_stabilizer_keeps_new_content_and_blends_consistent_content():
    a = _panning_clip(2)
    prev_in, cur_in = a[0], a[1]
    result = np.full_like(cur_in, 200)
    prev_out = np.full_like(cur_in, 100)
    blended = fv.stabilize_frame(cur_in, prev_in, result, prev_out, fv.StabilizeOptions(alpha=0.5))
    centre = blended[8:-8, 8:-8].astype(float)
    assert 140 < centre.mean() < 160  # consistent content: about half of the warped previous result
    cut = 255 - cur_in  # a scene cut: nothing matches, the frame's own result is kept
    kept = fv.stabilize_frame(cut, prev_in, result, prev_out, fv.StabilizeOptions(alpha=0.5))
    assert np.abs(kept.astype(float) - 200).mean() < 10


def test_cancel_in_the_frame_loop_reports_the_frames_handed_over():
    clip = _panning_clip(6)
    token = CancelToken()
    got: dict[int, np.ndarray] = {}

    def on_frame(i: int, frame: np.ndarray) -> None:
        got[i] = frame
        if i == 2:
            token.cancel()

    with pytest.raises(Cancelled) as exc:
        fv.stylize_frames(clip, lambda x: x, on_frame=on_frame, total=6, cancel=token)
    assert exc.value.partial.count == 3 and sorted(got) == [0, 1, 2]
    # resuming: frames 0-2 are not rendered again
    rendered: list[int] = []

    def counting(x: torch.Tensor) -> torch.Tensor:
        rendered.append(1)
        return x

    res = fv.stylize_frames(clip, counting, on_frame=got.__setitem__, done={0, 1, 2}, load_done=got.__getitem__,
                            stabilize=fv.StabilizeOptions())  # fmt: skip
    assert res.reused == 3 and res.rendered == 3 and len(rendered) == 3 and sorted(got) == list(range(6))


# --- bad input: exit code, one line, no traceback, nothing touched -------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clip: Path) -> Path:
    (tmp_path / "clip.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "notvideo.mp4").write_text("plain text, not a video")
    tw.image(tmp_path / "photo.png", size=(40, 30))
    tw.image(tmp_path / "style.png", size=(40, 30), seed=4)
    (tmp_path / "exists.mp4").write_bytes(b"precious")
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("the user's")
    (tmp_path / "busy.mp4.frames").mkdir()
    (tmp_path / "busy.mp4.frames" / ".impasto-video.json").write_text(json.dumps({"fingerprint": {}}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


VIDEO_BAD = [
    (["missing.mp4", "-o", "o.mp4", "--preset", "3"], 1, ["video not found", "missing.mp4"]),
    (["notvideo.mp4", "-o", "o.mp4", "--preset", "3"], 1, ["notvideo.mp4", "not a video"]),
    (["photo.png", "-o", "o.mp4", "--preset", "3"], 2, ["'.png'", "folder of frames"]),
    (["clip.mp4", "-o", "exists.mp4", "--preset", "3"], 2, ["exists.mp4 already exists", "--overwrite"]),
    (["clip.mp4", "-o", "o.avi", "--preset", "3"], 2, ["'.avi'", ".mp4"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "3", "--style", "style.png"], 2, ["not allowed"]),
    (["clip.mp4", "-o", "o.mp4"], 2, ["--style", "--preset"]),
    (["empty", "-o", "o.mp4", "--preset", "3"], 2, ["no frames found", "empty"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "26"], 2, ["unknown preset 26"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "3", "--size", "8"], 2, ["--size", "at least 16"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "3", "--strength", "2"], 2, ["--strength", "between 0 and 1"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "3", "--resume", "--overwrite"], 2, ["--resume", "--overwrite"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "3", "--stabilize-alpha", "0.5"], 2, ["needs --stabilize"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "3", "--stabilize", "--stabilize-alpha", "1"], 2, ["below 1"]),
    (["clip.mp4", "-o", "o.mp4", "--style", "style.png", "--style-weights", "1,2"], 2, ["2 style weights"]),
    (["clip.mp4", "-o", "o.mp4", "--preset", "3", "--method", "linear"], 2, ["--preset", "linear"]),
    (["clip.mp4", "-o", "o.mp4", "--style", "nostyle.png"], 1, ["not found", "nostyle.png"]),
    (["clip.mp4", "-o", "full", "--preset", "3"], 2, ["full", "not empty", "--overwrite"]),
    (["clip.mp4", "-o", "nowhere/o.mp4", "--preset", "3"], 2, ["nowhere", "does not exist"]),
    (["clip.mp4", "-o", "clip.mp4", "--preset", "3", "--overwrite"], 2, ["is the input"]),
    (["clip.mp4", "-o", "busy.mp4", "--preset", "3"], 2, ["busy.mp4.frames", "interrupted run", "--resume"]),
    (["clip.mp4", "-o", "busy.mp4", "--preset", "3", "--resume"], 2, ["cannot resume", "other settings"]),
]


@pytest.mark.parametrize("argv, code, words", VIDEO_BAD, ids=[" ".join(c[0]) for c in VIDEO_BAD])
def test_bad_input_one_line_and_nothing_touched(workdir: Path, capsys, argv, code, words):  # noqa: ANN001
    before = cli_proc.snapshot(workdir), sorted(p for p in workdir.rglob("*") if p.is_dir())
    got = main(["video", *argv])
    captured = capsys.readouterr()
    assert got == code, captured.err
    assert "Traceback" not in captured.err
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("impasto: error:"), captured.err
    for w in words:
        assert w in lines[0], lines[0]
    assert captured.out == ""
    assert (cli_proc.snapshot(workdir), sorted(p for p in workdir.rglob("*") if p.is_dir())) == before
