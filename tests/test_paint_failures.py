"""``impasto paint`` / ``neural-style`` when things go wrong: Ctrl-C, kill -9, existing files, unwritable or full disks.

Everything here runs the REAL CLI in a subprocess with REAL signals (tests/cli_proc.py); read-only and full
destinations are real file systems (tmpfs mounts: the tests run as root, where chmod does not stop a write) and are
skipped, saying why, where mounting is not permitted. The API tests at the end cover the loop's own rules (the
evaluation budget, the Preview type, process-wide flags, the result shape).
"""

from __future__ import annotations

import ast
import os
import re
import signal
import time
from pathlib import Path

import cli_proc
import filesystems
import pytest
import tiny_weights as tw
import torch
from PIL import Image

from impasto import api
from impasto.events import Preview, Progress
from impasto.gatys import checkpoint as ck
from impasto.gatys import optimize
from impasto.gatys.config import PaintConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("paint-failures")
    weights = tw.write(tw.vgg_state(), d / "weights.pth")
    tw.image(d / "c.png", size=(40, 32), seed=0)
    tw.image(d / "s.png", size=(36, 36), seed=1)
    return d, weights


def _args(d: Path, weights: Path, out: Path, *extra: str, iters: int = 4, size: int = 32) -> list[str]:
    return [
        "paint", str(d / "c.png"), "--style", str(d / "s.png"), "-o", str(out), "--model-file", str(weights),
        "--image-size", str(size), "--num-iterations", str(iters), "--save-iter", "0", "--print-iter", "0",
        "--gpu", "c", "--seed", "1", *extra,
    ]  # fmt: skip


def _ns_args(d: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return [
        "neural-style", "-content_image", str(d / "c.png"), "-style_image", str(d / "s.png"), "-output_image",
        str(out), "-model_file", str(weights), "-image_size", "32", "-num_iterations", "3", "-save_iter", "0",
        "-print_iter", "0", "-gpu", "c", "-seed", "3", *extra,
    ]  # fmt: skip


def _existing_picture(path: Path) -> bytes:
    """A user's earlier result at ``path``; returns its bytes."""
    tw.image(size=(40, 32), seed=9).save(path)
    return path.read_bytes()


def _complete_image(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()  # a truncated file raises here
        return img.copy()


def _last_line(err: str) -> str:
    return [ln for ln in err.splitlines() if ln.strip()][-1]


# --- bug 1: Ctrl-C before the first step --------------------------------------------------------------------


def test_ctrl_c_before_first_step_keeps_existing_output(files, tmp_path) -> None:  # noqa: ANN001
    """SIGINT while the targets are computed (after Started, before step 1) must not save the starting noise."""
    d, weights = files
    out = tmp_path / "out.png"
    before = _existing_picture(out)
    # A large size: the targets take a second or more, so the signal lands after the announce and before step 1.
    proc = cli_proc.Running(_args(d, weights, out, "--overwrite", "--style-scale", "1.5", iters=50, size=1024))
    proc.wait_for(r"impasto paint: .+ on cpu")
    proc.send(signal.SIGINT)
    done = proc.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err
    assert out.read_bytes() == before
    assert f"impasto: interrupted before the first step; {out} left as it was" in done.err, done.err
    assert cli_proc.snapshot(tmp_path) == {"out.png": before}


def test_ctrl_c_after_steps_saves_the_latest_image(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "out.png"
    before = _existing_picture(out)
    proc = cli_proc.Running(_args(d, weights, out, "--overwrite", iters=100000, size=32))
    proc.wait_for(r"\b([3-9]|\d{2,})/100000\b")
    proc.send(signal.SIGINT)
    done = proc.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err and f"saved the latest image to {out}" in _last_line(done.err)
    assert out.read_bytes() != before and _complete_image(out).size == (32, 25)
    assert not list(tmp_path.glob(".*.part"))


# --- bug 2: --resume is not --overwrite ---------------------------------------------------------------------


def test_resume_without_checkpoint_refuses_to_replace_output(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "out.png"
    _existing_picture(out)
    before = cli_proc.snapshot(tmp_path)
    done = cli_proc.run(_args(d, weights, out, "--resume", "--checkpoint-every", "1"))
    assert done.code == 2
    line = done.one_line_error()
    assert "already exists and there is no checkpoint" in line and "--overwrite" in line, line
    assert cli_proc.snapshot(tmp_path) == before


def test_resume_with_matching_checkpoint_replaces_its_own_outputs(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "out.png"
    first = cli_proc.run(_args(d, weights, out, "--checkpoint-every", "1", "--save-iter", "2"))
    assert first.code == 0, first.err
    assert out.exists() and (tmp_path / "out_2.png").exists() and (tmp_path / "out.png.ckpt").exists()
    # The same run resumed: no --overwrite needed, the files are that run's.
    again = cli_proc.run(_args(d, weights, out, "--checkpoint-every", "1", "--save-iter", "2", "--resume"))
    assert again.code == 0, again.err
    assert "resuming at step 4 of 4" in again.err
    # Another run's settings: refused before anything is touched.
    before = cli_proc.snapshot(tmp_path)
    other = cli_proc.run(_args(d, weights, out, "--checkpoint-every", "1", "--resume", "--style-weight", "7"))
    assert other.code == 2 and "different settings" in other.one_line_error()
    assert cli_proc.snapshot(tmp_path) == before
    # A fresh checkpointed run does not silently replace an earlier run's checkpoint either.
    fresh = cli_proc.run(_args(d, weights, tmp_path / "new.png", "--checkpoint-every", "1",
                               "--checkpoint-path", str(tmp_path / "out.png.ckpt")))  # fmt: skip
    assert fresh.code == 2 and "pass --resume to continue it" in fresh.one_line_error()
    assert cli_proc.snapshot(tmp_path) == before


# --- bug 4: destinations that cannot take the file ----------------------------------------------------------


@pytest.mark.parametrize("command", ["paint", "neural-style"])
def test_read_only_output_folder_is_refused_before_the_work(files, tmp_path, command) -> None:  # noqa: ANN001
    d, weights = files
    with filesystems.tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        out = ro / "out.png"
        args = _args(d, weights, out) if command == "paint" else _ns_args(d, weights, out)
        done = cli_proc.run(args)
        assert done.code == 1, done.err
        line = done.one_line_error()
        assert f"cannot write to folder {ro}" in line and "Read-only" in line, line
        assert " on cpu" not in done.err  # refused before the network was even opened
        assert cli_proc.snapshot(ro) == {}


def test_read_only_checkpoint_folder_is_refused_before_the_work(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    with filesystems.tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        done = cli_proc.run(_args(d, weights, tmp_path / "out.png", "--checkpoint-every", "1",
                                  "--checkpoint-path", str(ro / "run.ckpt")))  # fmt: skip
        assert done.code == 1 and f"cannot write to folder {ro}" in done.one_line_error()
        assert not (tmp_path / "out.png").exists()


def test_chmod_read_only_folder_is_refused(files, tmp_path) -> None:  # noqa: ANN001
    if os.geteuid() == 0:
        pytest.skip("running as root, where chmod 0o555 does not stop writes (the tmpfs tests cover this)")
    d, weights = files
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        done = cli_proc.run(_args(d, weights, ro / "out.png"))
        assert done.code == 1 and "cannot write to folder" in done.one_line_error()
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("command", ["paint", "neural-style"])
def test_full_disk_is_refused_before_the_work(files, tmp_path, command) -> None:  # noqa: ANN001
    d, weights = files
    with filesystems.tmpfs(tmp_path / "full", "size=64k") as full:
        filesystems.fill(full)
        out = full / "out.png"
        done = cli_proc.run(_args(d, weights, out) if command == "paint" else _ns_args(d, weights, out))
        assert done.code == 1, done.err
        assert f"cannot write to folder {full}" in done.one_line_error()
        assert " on cpu" not in done.err
        assert sorted(p.name for p in full.iterdir()) == ["filler"]


@pytest.mark.parametrize("command", ["paint", "neural-style"])
def test_disk_full_at_the_end_saves_the_result_elsewhere(files, tmp_path, command) -> None:  # noqa: ANN001
    """The disk fills up while the run paints: the final write fails, the result goes to the temp folder, one line
    says where, exit code 1; no torn file is left where the output belongs."""
    d, weights = files
    spare = tmp_path / "spare"
    spare.mkdir()
    with filesystems.tmpfs(tmp_path / "full", "size=1m") as full:
        out = full / "out.png"
        if command == "paint":
            args = _args(d, weights, out, iters=3, size=512)
        else:
            args = _ns_args(d, weights, out, "-num_iterations", "3", "-image_size", "512")
        proc = cli_proc.Running(args, env={"TMPDIR": str(spare)})
        proc.wait_for(r"impasto (paint|neural-style): .+ on cpu")  # the work has started (checks passed)
        proc.send(signal.SIGSTOP)  # hold it while someone else's download fills the disk
        try:
            filesystems.fill(full)
        finally:
            proc.send(signal.SIGCONT)
        done = proc.finish()
        assert done.code == 1, done.err
        line = done.one_line_error()
        assert line == _last_line(done.err)
        assert f"could not write {out} (No space left on device); saved the result to {spare / 'out.png'}" in line
        assert _complete_image(spare / "out.png").size == (512, 409)
        assert sorted(p.name for p in full.iterdir()) == ["filler"]  # no torn out.png, no .part left


# --- bug 14: kill -9 in the middle, then --resume -----------------------------------------------------------


def _progress(err: str, total: int) -> int:
    steps = [int(m) for m in re.findall(rf"\b(\d+)/{total}\b", err)]
    return max(steps, default=0)


def test_kill_9_leaves_no_torn_file_and_resume_finishes(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "out.png"
    total = 20
    args = _args(d, weights, out, "--checkpoint-every", "1", "--save-iter", "2", iters=total, size=64)
    proc = cli_proc.Running(args)
    deadline = time.monotonic() + 120
    while _progress(proc.err, total) < 5 and time.monotonic() < deadline and proc.proc.poll() is None:
        time.sleep(0.02)
    assert proc.proc.poll() is None, proc.err  # still running: killed in the middle
    proc.send(signal.SIGKILL)
    killed = proc.finish()
    assert killed.code == -signal.SIGKILL

    ckpt = tmp_path / "out.png.ckpt"
    for p in tmp_path.iterdir():
        if p.name.startswith(".") and p.name.endswith(".part"):
            continue  # a writer's temporary: never at an output's own name
        if p == ckpt:
            state = torch.load(p, weights_only=True)
            assert state["format"] == ck.FORMAT and 1 <= state["step"] < total
        else:
            assert re.fullmatch(r"out(_\d+)?\.png", p.name), p.name
            assert _complete_image(p).size == (64, 51)
    assert not out.exists() or _complete_image(out)
    step = int(torch.load(ckpt, weights_only=True)["step"])

    resumed = cli_proc.run(_args(d, weights, out, "--checkpoint-every", "1", "--save-iter", "2", "--resume",
                                 iters=total, size=64))  # fmt: skip
    assert resumed.code == 0, resumed.err
    assert f"resuming at step {step} of {total}" in resumed.err
    assert f"{total} steps" in resumed.out
    final = torch.load(ckpt, weights_only=True)
    assert final["step"] == total and len(final["history"]) == total
    assert _complete_image(out).size == (64, 51)
    assert not list(tmp_path.glob(".*.part"))


# --- the CLI reaches the painting only through impasto.api ---------------------------------------------------


@pytest.mark.parametrize("module", ["paint", "neural_style"])
def test_cli_imports_no_algorithm_package(module: str) -> None:
    import impasto.cli

    source = Path(impasto.cli.__file__).with_name(f"{module}.py").read_text()
    imported = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported.append(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.extend(a.name for a in node.names)
    bad = [m for m in imported if re.search(r"(^|\.)(gatys|zoo|study|gan|fast)(\.|$)", m)]
    assert not bad, bad


# --- the loop's own rules (API) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(files):  # noqa: ANN001, ANN201
    d, weights = files
    cfg = PaintConfig(model_file=str(weights), image_size=32, print_iter=0, save_iter=0, seed=2, gpu="c")
    return cfg, tw.image(size=(40, 32), seed=0), tw.image(size=(36, 36), seed=1)


@pytest.mark.parametrize("line_search", ["none", "strong_wolfe"])
@pytest.mark.parametrize("checkpointed", [False, True])
@pytest.mark.parametrize("iterations", [1, 2, 5])
def test_num_iterations_is_the_number_of_evaluations(tiny, monkeypatch, line_search, checkpointed, iterations) -> None:  # noqa: ANN001
    """Bug 9: L-BFGS with num_iterations=1 ran two evaluations and reported step 2 of 1 (a line search overshot
    by one or two at any length)."""
    cfg, content, style = tiny
    calls = []
    real = optimize.evaluate

    def counting(problem, img):  # noqa: ANN001, ANN202
        calls.append(1)
        return real(problem, img)

    monkeypatch.setattr(optimize, "evaluate", counting)
    events: list = []
    extra = {"checkpointer": ck.MemoryCheckpointer()} if checkpointed else {}
    cfg = cfg.replace(num_iterations=iterations, lbfgs_line_search=line_search, checkpoint_every=int(checkpointed))
    result = optimize.paint(content, [style], cfg, callback=events.append, **extra)
    progress = [(e.step, e.total) for e in events if isinstance(e, Progress)]
    assert len(calls) == iterations
    assert progress == [(t, iterations) for t in range(1, iterations + 1)]
    assert result.steps == iterations and len(result.losses) == iterations


def test_preview_is_a_pil_image_with_the_raw_tensor(tiny) -> None:  # noqa: ANN001
    from impasto.media import tensor_to_pil

    cfg, content, style = tiny
    events: list = []
    optimize.paint(content, [style], cfg.replace(num_iterations=4, save_iter=2), callback=events.append)
    previews = [e for e in events if isinstance(e, Preview)]
    assert [e.step for e in previews] == [2]
    p = previews[0]
    assert isinstance(p.image, Image.Image) and p.image.mode == "RGB" and p.image.size == (32, 25)
    assert isinstance(p.raw, torch.Tensor) and p.raw.shape == (3, 25, 32) and p.raw.dtype == torch.float32
    assert 0 <= p.raw.min() and p.raw.max() <= 1
    assert p.image.tobytes() == tensor_to_pil(p.raw).tobytes()


def test_cpu_run_leaves_process_wide_flags_alone(tiny) -> None:  # noqa: ANN001
    """Bug 11 (cuDNN part): a CPU run touches no torch/cuDNN flag, even with cudnn_autotune and a seed."""
    cfg, content, style = tiny
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())  # fmt: skip
    unusual = (not saved[0], not saved[1])
    try:
        cudnn.benchmark, cudnn.deterministic = unusual
        torch.use_deterministic_algorithms(True, warn_only=True)
        optimize.paint(content, [style], cfg.replace(num_iterations=2, cudnn_autotune=True, seed=5))
        assert (cudnn.benchmark, cudnn.deterministic) == unusual
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.is_grad_enabled()
    finally:
        cudnn.benchmark, cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_cancel_before_any_step_has_no_partial(tiny) -> None:  # noqa: ANN001
    from impasto.errors import Cancelled
    from impasto.events import CancelToken

    cfg, content, style = tiny
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled) as err:
        optimize.paint(content, [style], cfg.replace(num_iterations=3), cancel=token)
    assert err.value.partial is None
    # After a resume, nothing new is not something to keep either.
    mem = ck.MemoryCheckpointer()
    optimize.paint(content, [style], cfg.replace(num_iterations=3, checkpoint_every=1), checkpointer=mem)
    with pytest.raises(Cancelled) as err:
        optimize.paint(content, [style], cfg.replace(num_iterations=3, checkpoint_every=1, resume=True),
                       checkpointer=mem, cancel=token)  # fmt: skip
    assert err.value.partial is None


def test_result_has_elapsed_info_and_pictures(tiny) -> None:  # noqa: ANN001
    cfg, content, style = tiny
    r = api.paint(content, style, cfg, num_iterations=2)
    assert r.elapsed > 0
    assert r.info["device"] == "cpu" and r.info["model"] == r.model and r.info["size"] == (25, 32)
    assert r.info["preprocessing"] == r.preprocessing and r.info["layers"]
    pictures = r.pictures()
    assert len(pictures) == 1 and pictures[0].mode == "RGB" and pictures[0].size == (32, 25)
    plan = api.paint_plan(cfg.replace(num_iterations=10, save_iter=3, scales="16,32", scale_iterations="4,6"))
    # intermediates at the final scale only (its steps are 5..10), unless every scale is asked for
    assert plan.total == 10 and plan.scales == ((16, 4), (32, 6)) and plan.preview_steps == (6, 9)
    every = api.paint_plan(cfg.replace(num_iterations=10, save_iter=3, scales="16,32", scale_iterations="4,6",
                                       save_all_scales=True))  # fmt: skip
    assert every.preview_steps == (3, 6, 9)
