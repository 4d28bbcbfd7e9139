"""The workers (impasto.workers): the executor contract on the in-process executor and the local process pool, a
worker killed mid-job, and `stylize` / `generate` with --workers through the real CLI (same bytes as one process,
every output exactly once, Ctrl-C -> 130, kill -9 of a worker process -> still every output once)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import biggan_tiny as bt
import cli_proc
import numpy as np
import pytest
import tiny_weights as tw
from PIL import Image

from impasto import workers
from impasto.cli.main import main
from impasto.errors import Cancelled, ConfigError
from impasto.events import CancelToken, Finished, Progress, Started
from impasto.media import stray_parts
from impasto.workers import InProcessExecutor, Task, WorkerError, open_executor
from impasto.workers.local import LocalPoolExecutor

FN = "workers_fns:"


def _photos(folder: Path, n: int, size: tuple[int, int] = (48, 40)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"p{i:02d}.png" for i in range(n)]
    for i, p in enumerate(paths):
        tw.image(p, size=size, seed=i)
    return paths


def _complete(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
    except Exception:  # noqa: BLE001 - any failure to decode means torn
        return False
    return True


def _outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def pool():  # noqa: ANN201
    with LocalPoolExecutor(2, device="cpu") as ex:
        yield ex


# --- choosing an executor --------------------------------------------------------------------------------------


def test_open_executor_choices() -> None:
    assert isinstance(open_executor(1), InProcessExecutor)
    assert workers.default_workers("cpu") == max(1, workers.cpu_cores() // 2)
    with open_executor(3, device="cpu") as ex:  # nothing starts before run()
        assert isinstance(ex, LocalPoolExecutor) and ex.workers == 3 and ex.description == "3 local workers"
        assert ex.pids() == []
    with pytest.raises(ConfigError, match="at least 1, got 0"):
        open_executor(0)
    with pytest.raises(ConfigError, match="package.module:function"):
        list(InProcessExecutor().run([Task("a", "no_colon")]))


# --- the contract, in process and in the pool -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["in-process", "pool"])
def test_every_task_once_with_one_progress_stream(kind: str, pool: LocalPoolExecutor) -> None:
    ex = InProcessExecutor() if kind == "in-process" else pool
    events = []
    tasks = [Task(f"t{i}", FN + "square", {"x": i, "sleep": 0.05}) for i in range(7)]
    results = list(ex.run(tasks, callback=events.append))
    assert sorted(r.key for r in results) == [t.key for t in tasks]
    assert {r.key: r.value[0] for r in results} == {f"t{i}": i * i for i in range(7)}
    assert isinstance(events[0], Started) and events[0].total == 7 and isinstance(events[-1], Finished)
    assert [e.step for e in events if isinstance(e, Progress)] == list(range(1, 8))
    pids = {r.value[1] for r in results}
    if kind == "pool":
        assert os.getpid() not in pids and len({r.worker for r in results}) == 2  # both workers took tasks
    else:
        assert pids == {os.getpid()}


@pytest.mark.parametrize("kind", ["in-process", "pool"])
def test_a_task_error_is_raised_unchanged(kind: str, pool: LocalPoolExecutor) -> None:
    ex = InProcessExecutor() if kind == "in-process" else pool
    with pytest.raises(ConfigError) as info:
        list(ex.run([Task("a", FN + "square", {"x": 1}), Task("b", FN + "refuse", {"value": "x7"})]))
    assert str(info.value) == "value 'x7' is not allowed here"
    with pytest.raises(ZeroDivisionError, match="a bug in the task"):
        list(ex.run([Task("c", FN + "fail_hard")]))
    assert [r.value[0] for r in ex.run([Task("d", FN + "square", {"x": 3})])] == [9]  # still usable after


def test_cancel_stops_the_pool_at_once(pool: LocalPoolExecutor) -> None:
    token = CancelToken()
    tasks = [Task(f"t{i}", FN + "square", {"x": i, "sleep": 30.0 if i else 0.0}) for i in range(6)]
    got = []
    with pytest.raises(Cancelled):
        for r in pool.run(tasks, cancel=token):
            got.append(r.key)
            t0 = time.monotonic()
            token.cancel()  # after the first result: the 30 s tasks running now are stopped, not waited for
    assert got == ["t0"] and time.monotonic() - t0 < 10


def test_a_killed_worker_has_its_task_redone_once(tmp_path: Path) -> None:
    tasks = [Task(f"o{i}", FN + "write", {"path": str(tmp_path / f"o{i}.txt"), "text": f"{i}", "sleep": 0.3})
             for i in range(8)]  # fmt: skip
    with LocalPoolExecutor(2, device="cpu") as ex:
        results = []
        for r in ex.run(tasks):
            results.append(r)
            if len(results) == 1:
                os.kill(ex.pids()[0], signal.SIGKILL)  # mid-task: each worker has a task in hand
    assert sorted(r.key for r in results) == [t.key for t in tasks]  # each result once
    redone = [r for r in results if r.attempts == 2]
    assert len(redone) == 1 and redone[0].worker == "local-2"  # the lost task, on a fresh worker
    assert _outputs(tmp_path) == sorted([f"o{i}.txt" for i in range(8)] + [f"o{i}.txt.runs" for i in range(8)])
    assert all((tmp_path / f"o{i}.txt").read_text() == f"{i}" for i in range(8))
    assert stray_parts(tmp_path) == []


def test_a_task_that_kills_every_worker_gives_up_with_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    task = Task("doomed", FN + "die", {"marker": str(marker)})
    with LocalPoolExecutor(2, device="cpu") as ex, pytest.raises(WorkerError, match="doomed was tried 2 times"):
        list(ex.run([task], max_retries=1))
    assert marker.read_text() == "xx"


# --- stylize and generate with --workers: the same bytes as one process -----------------------------------------


@pytest.fixture
def worker_threads():  # noqa: ANN201
    """Run this process's torch at the thread count a worker of a 2-worker pool gets (cores // 2).

    CPU kernels may sum in a thread-dependent order (Magenta's style predictor differs by ~1e-6 between 1 and 2
    threads, which can move a pixel by a level or two), so "the same result" means: at the same thread count.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, workers.cpu_cores() // 2))
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("how", [["--style", "style.png"], ["--preset", "3:0.5,7:0.5"]])
def test_stylize_folder_on_workers_equals_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture, worker_threads: None, how: list[str], monkeypatch
) -> None:  # noqa: ANN001
    src = tmp_path / "photos"
    _photos(src, 5)
    tw.image(tmp_path / "style.png", size=(40, 40), seed=9)
    monkeypatch.chdir(tmp_path)
    common = ["stylize", str(src), *how, "--device", "cpu", "--strength", "0.8", "-q"]
    assert main([*common, "--out-dir", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main([*common, "--out-dir", str(tmp_path / "two"), "--workers", "2"]) == 0
    printed = capsys.readouterr().out.split()
    names = _outputs(tmp_path / "one")
    assert len(names) == 5 and _outputs(tmp_path / "two") == names
    assert sorted(printed) == sorted(str(tmp_path / "two" / n) for n in names)  # each printed once
    for n in names:
        assert (tmp_path / "two" / n).read_bytes() == (tmp_path / "one" / n).read_bytes(), n


def test_stylize_resume_on_workers_makes_only_the_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 4)
    args = ["stylize", str(src), "--preset", "3", "--out-dir", str(out), "--device", "cpu", "-q"]
    assert main(args) == 0
    kept = {n: (out / n).stat().st_mtime_ns for n in _outputs(out)}
    (out / "p01_stylized.png").unlink()
    capsys.readouterr()
    assert main([*args, "--resume", "--workers", "2"]) == 0
    assert capsys.readouterr().out.split() == [str(out / "p01_stylized.png")]
    assert {n: (out / n).stat().st_mtime_ns for n in _outputs(out) if n != "p01_stylized.png"} == {
        n: t for n, t in kept.items() if n != "p01_stylized.png"
    }


@pytest.fixture(scope="module")
def biggan_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(bt.write_dir(tmp_path_factory.mktemp("biggan") / "tiny", seed=2))


def test_generate_on_workers_equals_one_process(biggan_dir: str, tmp_path: Path, worker_threads: None) -> None:
    common = ["generate", "--class", "hen", "--class", "7", "--samples", "5", "--seed", "3", "--model-dir",
              biggan_dir, "--batch-size", "3", "--device", "cpu", "--precision", "fp32", "-q"]  # fmt: skip
    assert main([*common, "--each", str(tmp_path / "one"), "-o", str(tmp_path / "one.png")]) == 0
    assert main([*common, "--each", str(tmp_path / "two"), "-o", str(tmp_path / "two.png"), "--workers", "2"]) == 0
    names = _outputs(tmp_path / "one")
    assert len(names) == 10 and _outputs(tmp_path / "two") == names
    for n in names:  # same pixels and the same metadata chunk: the bytes
        assert (tmp_path / "two" / n).read_bytes() == (tmp_path / "one" / n).read_bytes(), n
    with Image.open(tmp_path / "one.png") as a, Image.open(tmp_path / "two.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_worker_options_refused_where_they_do_not_apply(biggan_dir: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["generate", "--class", "hen", "--model-dir", biggan_dir, "-o", str(tmp_path / "g.png"),
                 "--workers", "2"]) == 2  # fmt: skip
    assert "--each DIR" in capsys.readouterr().err
    tw.image(tmp_path / "p.png", size=(40, 40))
    assert main(["stylize", str(tmp_path / "p.png"), "--style", str(tmp_path / "p.png"), "--photoreal",
                 "--workers", "2"]) == 2  # fmt: skip
    assert "drop --workers" in capsys.readouterr().err
    assert main(["stylize", str(tmp_path / "p.png"), "--preset", "1", "--workers", "-1"]) == 2
    assert "expected a number of workers" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_stylized.png"))


# --- the real CLI: Ctrl-C and kill -9 of a worker process -------------------------------------------------------

CLI_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _worker_pids(parent: int) -> list[int]:
    """The pool processes of ``parent`` (spawned: their command line runs multiprocessing's spawn_main)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmd:
            found.append(int(entry.name))
    return found


def test_ctrl_c_stops_every_worker_keeps_finished_and_exits_130(tmp_path: Path) -> None:
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 30, size=(96, 96))
    run = cli_proc.Running(["stylize", str(src), "--preset", "3", "--out-dir", str(out), "--device", "cpu",
                            "--workers", "2"], env=CLI_ENV)  # fmt: skip
    run.wait_for(r"_stylized\.png", stream="out")  # a first image finished
    workers_then = _worker_pids(run.proc.pid)
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err
    printed = done.out.split()
    assert 1 <= len(printed) < 30 and len(set(printed)) == len(printed)
    m = re.search(r"stopped; (\d+) of 30 images written", done.err)
    assert m and int(m.group(1)) == len(printed), done.err
    # every finished one kept (a worker may finish its file in the instant the job stops: kept too), no other
    kept = _outputs(out)
    assert set(Path(p).name for p in printed) <= set(kept) and len(kept) <= len(printed) + 2
    assert all(_complete(out / n) for n in kept)
    assert stray_parts(out) == []
    assert workers_then and not any(Path(f"/proc/{pid}").exists() for pid in workers_then)  # no worker left


def test_kill_9_of_a_worker_still_makes_every_output_once(tmp_path: Path) -> None:
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 12, size=(96, 96))
    run = cli_proc.Running(["stylize", str(src), "--preset", "3", "--out-dir", str(out), "--device", "cpu",
                            "--workers", "2"], env=CLI_ENV)  # fmt: skip
    run.wait_for(r"_stylized\.png", stream="out")
    pids = _worker_pids(run.proc.pid)
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    done = run.finish()
    assert done.code == 0, done.err
    printed = done.out.split()
    assert sorted(printed) == sorted(set(printed)) and len(printed) == 12  # every output printed exactly once
    assert _outputs(out) == [f"p{i:02d}_stylized.png" for i in range(12)]
    assert stray_parts(out) == []
