"""compare-optimizers' failure paths: Ctrl-C keeps what ran, kill -9 tears nothing and resumes, bad input changes
nothing; the study leaves the process's matplotlib and flush-denormal state alone.

Signals go to the real CLI in a subprocess (tests/cli_proc.py). A first optimiser that ends at once is ``gd@1e6``
(plain GD at an absurd rate diverges within a few iterations, deterministically), so the optimiser after it is
surely still running when the signal arrives.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import os
import shutil
import signal
import sys
from pathlib import Path

import cli_proc
import pytest
import tiny_weights as tw
import torch
from PIL import Image

from impasto import api
from impasto.cli.main import main
from impasto.errors import Cancelled
from impasto.events import Progress
from impasto.media import stray_parts

OUTPUTS = ("losses.csv", "summary.json", "loss_vs_iteration.png", "loss_vs_time.png", "results.png", "records.json")


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("study-failures")
    weights = tw.write(tw.vgg_state(), d / "vgg19-d01eb7cb.pth")
    tw.image(d / "content.png", size=(40, 32), seed=0)
    tw.image(d / "style.png", size=(36, 36), seed=1)
    return d, str(weights)


def _argv(d: Path, weights: str, out: Path, *extra: str, iterations: int = 2, optimizers: str = "adam,lbfgs"
          ) -> list[str]:  # fmt: skip
    return [
        "compare-optimizers", str(d / "content.png"), str(d / "style.png"), "--model-file", weights, "--size", "32",
        "--iterations", str(iterations), "--optimizers", optimizers, "--device", "cpu", "-o", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_study(files):  # noqa: ANN001, ANN201
    """A complete study folder (adam, lbfgs; 2 iterations) with a file of the user's beside the results."""
    d, weights = files
    out = d / "finished"
    assert main([*_argv(d, weights, out), "-q"]) == 0
    (out / "notes.txt").write_text("my notes\n")
    return out


def _rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((folder / "losses.csv").read_text())))


def _check_no_torn_outputs(folder: Path) -> None:
    """Every output is absent or whole: JSON parses, PNGs decode, the CSV has its header."""
    for name in OUTPUTS:
        path = folder / name
        if not path.exists():
            continue
        if name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith(".png"):
            with Image.open(path) as im:
                im.load()
        else:
            assert path.read_text().startswith("optimizer,lr,iteration,total")
    # a killed writer may leave its temporary file, but never at an output's own name
    assert all(p.name.startswith(".") and p.name.endswith(".part") for p in stray_parts(folder))


# --- bug 13: Ctrl-C keeps every optimiser that ran ----------------------------------------------------------------


def test_ctrl_c_writes_what_ran_marked_incomplete_and_exits_130(files, tmp_path):  # noqa: ANN001
    d, weights = files
    out = tmp_path / "study"
    proc = cli_proc.Running(_argv(d, weights, out, iterations=100000, optimizers="gd@1e6,adam,adagrad"))
    proc.wait_for(r"impasto: gd@1e6 finished")
    proc.wait_for(r"adam\s*:.*\|\s*[1-9]\d*/100000")  # adam has taken a step
    proc.send(signal.SIGINT)
    done = proc.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err and "interrupted" in done.err
    rows = _rows(out)
    gd = [r for r in rows if r["optimizer"] == "gd@1e6"]
    adam = [r for r in rows if r["optimizer"] == "adam"]
    assert gd and {r["status"] for r in gd} == {"finished"} and [int(r["iteration"]) for r in gd][0] == 1
    assert 1 <= len(adam) < 100000 and {r["status"] for r in adam} == {"stopped"}
    assert not [r for r in rows if r["optimizer"] == "adagrad"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    assert {k: v["status"] for k, v in summary["optimizers"].items()} == {
        "gd@1e6": "finished", "adam": "stopped", "adagrad": "not run",
    }  # fmt: skip
    assert summary["optimizers"]["adam"]["iterations_done"] == len(adam)
    for name in ("loss_vs_iteration.png", "loss_vs_time.png", "results.png"):
        with Image.open(out / name) as im:
            im.verify()
    # the stopped optimiser is not saved as finished: --resume runs it again from the start
    saved = json.loads((out / "records.json").read_text())
    assert [r["optimizer"] for r in saved["runs"]] == ["gd@1e6"]


def test_ctrl_c_in_a_preset_keeps_finished_experiments(files, tmp_path):  # noqa: ANN001
    d, weights = files
    # a tiny stand-in for the seed-study preset, installed in the child by a sitecustomize module
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import json, os\n"
        "spec = os.environ.get('IMPASTO_TEST_PRESET')\n"
        "if spec:\n"
        "    from impasto.study import presets\n"
        "    presets.PRESETS['seed-study'] = tuple(\n"
        "        presets.Experiment(f, t, s, n, tuple(o)) for f, t, s, n, o in json.loads(spec))\n"
    )
    spec = [
        ["a-quick", "adam alone", 32, 3, ["adam@1"]],
        ["b-long", "gd then adam", 24, 100000, ["gd@1e6", "adam"]],
        ["c-later", "lbfgs alone", 32, 2, ["lbfgs"]],
    ]
    pythonpath = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)
    env = {"IMPASTO_TEST_PRESET": json.dumps(spec), "PYTHONPATH": pythonpath}
    out = tmp_path / "preset"
    args = ["compare-optimizers", d / "content.png", d / "style.png", "--model-file", weights, "--preset",
            "seed-study", "--device", "cpu", "-o", out]  # fmt: skip
    proc = cli_proc.Running(args, env=env)
    proc.wait_for(r"impasto: gd@1e6 finished")
    proc.wait_for(r"adam\s*:.*\|\s*[1-9]\d*/100000")
    proc.send(signal.SIGINT)
    done = proc.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err
    first = json.loads((out / "a-quick" / "summary.json").read_text())
    assert first["complete"] is True and first["optimizers"]["adam@1"]["iterations_done"] == 3
    second = json.loads((out / "b-long" / "summary.json").read_text())
    assert second["complete"] is False and second["optimizers"]["adam"]["status"] == "stopped"
    assert not (out / "c-later").exists()
    index = (out / "index.html").read_text()
    b_part = index[index.index("gd then adam") : index.index("lbfgs alone")]
    assert "stopped" in b_part and "a-quick/loss_vs_iteration.png" in index
    assert "not run" in index[index.index("lbfgs alone") :]


def test_cancel_partial_result_carries_every_finished_run(files):  # noqa: ANN001
    from impasto.events import CancelToken

    d, weights = files
    token = CancelToken()

    def callback(event: object) -> None:
        if isinstance(event, Progress) and event.info.get("optimizer") == "adagrad" and event.step == 3:
            token.cancel()

    with pytest.raises(Cancelled) as caught:
        api.compare_optimizers(
            d / "content.png", d / "style.png", model_file=weights, size=32, iterations=4, gpu="c",
            optimizers=["adam", "rmsprop", "adagrad", "lbfgs"], callback=callback, cancel=token,
        )  # fmt: skip
    partial = caught.value.partial
    assert partial is not None and not partial.complete
    assert [(r.optimizer, r.status, len(r.records)) for r in partial.runs] == [
        ("adam", "finished", 4), ("rmsprop", "finished", 4), ("adagrad", "stopped", 3), ("lbfgs", "not run", 0),
    ]  # fmt: skip
    assert partial.info["device"] == "cpu" and partial.elapsed > 0
    assert len(partial.pictures()) == 3  # the stopped one's latest image too


# --- bug 14: kill -9 leaves no torn file, and --resume does not rerun saved optimisers ------------------------------


def test_kill_9_tears_nothing_and_resume_skips_saved_optimisers(files, tmp_path):  # noqa: ANN001
    d, weights = files
    out = tmp_path / "killed"
    argv = _argv(d, weights, out, iterations=200, optimizers="gd@1e6,adam")
    proc = cli_proc.Running(argv)
    proc.wait_for(r"impasto: gd@1e6 finished")
    proc.send(signal.SIGKILL)
    assert proc.finish().code == -signal.SIGKILL
    _check_no_torn_outputs(out)
    saved = json.loads((out / "records.json").read_text())
    assert [r["optimizer"] for r in saved["runs"]] == ["gd@1e6"]
    gd_saved = saved["runs"][0]["records"]

    done = cli_proc.run([*argv, "--resume"])
    assert done.code == 0, done.err
    assert "kept gd@1e6" in done.err and "impasto: gd@1e6 finished" not in done.err
    rows = _rows(out)
    gd = [r for r in rows if r["optimizer"] == "gd@1e6"]
    # the same rows, wall times included: gd was not run again
    assert [(int(r["iteration"]), r["total"], r["wall_s"]) for r in gd] == [
        (it, f"{float(total):.6g}", f"{wall:.4f}") for it, total, _terms, wall, _evals in gd_saved
    ]
    assert len([r for r in rows if r["optimizer"] == "adam"]) == 200
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["resumed"] == ["gd@1e6"]
    assert not stray_parts(out) or all(p.name.endswith(".part") for p in stray_parts(out))


def test_resume_of_a_finished_study_runs_nothing_again(files, finished_study, tmp_path):  # noqa: ANN001
    d, weights = files
    out = tmp_path / "again"
    shutil.copytree(finished_study, out)
    before = (out / "losses.csv").read_bytes()
    assert main([*_argv(d, weights, out, "--resume"), "-q"]) == 0
    assert (out / "losses.csv").read_bytes() == before  # same wall times: nothing was rerun
    assert json.loads((out / "summary.json").read_text())["resumed"] == ["adam", "lbfgs"]


# --- bad input: one line, right exit code, nothing the user had is touched ---------------------------------------


BAD_INPUT = [
    # (name, extra args, expected exit code, words in the message)
    ("unknown-optimizer", ["--optimizers", "sgdm", "--overwrite"], 2, "unknown optimiser"),
    ("bad-lr-pair", ["--lr", "adam=x", "--overwrite"], 2, "NAME=RATE"),
    ("bad-lr-number", ["--lr", "fast", "--overwrite"], 2, "--lr must be a number"),
    ("negative-lr", ["--lr", "-3", "--overwrite"], 2, "positive"),
    ("lr-for-unknown", ["--lr", "sgdm=1", "--overwrite"], 2, "unknown optimiser"),
    ("bad-pinned-rate", ["--optimizers", "adam@fast", "--overwrite"], 2, "NAME@RATE"),
    ("twice", ["--optimizers", "adam,adam", "--overwrite"], 2, "twice"),
    ("negative-iterations", ["--iterations", "-5", "--overwrite"], 2, "at least 1"),
    ("iterations-not-a-number", ["--iterations", "ten", "--overwrite"], 2, "invalid int"),
    ("size-too-small", ["--size", "4", "--overwrite"], 2, "at least 16"),
    ("missing-content", ["CONTENT=missing.png", "--overwrite"], 1, "not found"),
    ("style-not-an-image", ["STYLE=notes.txt", "--overwrite"], 1, "not an image"),
    ("missing-weights", ["--model-file", "/nonexistent/vgg.pth", "--overwrite"], 1, "not found"),
    ("unknown-model", ["--model", "nosuch.caffe", "--overwrite"], 2, "unknown weight set"),
    ("unknown-preset", ["--preset", "nosuch"], 2, "invalid choice"),
    ("existing-results", [], 2, "--overwrite"),
    ("resume-and-overwrite", ["--resume", "--overwrite"], 2, "not both"),
    ("resume-other-settings", ["--resume", "--iterations", "3"], 2, "other settings (iterations: 2 then, 3 now)"),
    ("resume-without-records", ["--resume", "NO-RECORDS"], 2, "no records.json"),
    ("resume-corrupt-records", ["--resume", "CORRUPT-RECORDS"], 2, "not an impasto study record"),
    ("output-is-a-file", ["OUT=notes.txt"], 2, "not a folder"),
    ("output-parent-missing", ["OUT=missing/deeper"], 2, "does not exist"),
]


@pytest.mark.parametrize("extra, code, words", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_changes_nothing(files, finished_study, tmp_path, capsys, extra, code, words):  # noqa: ANN001
    d, weights = files
    work = tmp_path / "user"
    shutil.copytree(finished_study, work)
    out, content, style = work, d / "content.png", d / "style.png"
    args: list[str] = []
    for item in extra:
        if item.startswith("OUT="):
            out = work / item[4:]
        elif item.startswith("CONTENT="):
            content = work / item[8:]
        elif item.startswith("STYLE="):
            style = work / item[6:]
        elif item == "NO-RECORDS":
            (work / "records.json").unlink()
        elif item == "CORRUPT-RECORDS":
            (work / "records.json").write_text('{"format": 1, "runs": [')
        else:
            args.append(item)
    before = cli_proc.snapshot(work)
    argv = _argv(d, weights, out, *args)
    argv[1:3] = [str(content), str(style)]
    capsys.readouterr()
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("impasto: error:"), captured.err
    assert words in lines[0] and "Traceback" not in captured.err and not captured.out
    assert cli_proc.snapshot(work) == before


def test_bad_input_through_the_real_process(files, finished_study, tmp_path):  # noqa: ANN001
    d, weights = files
    work = tmp_path / "user"
    shutil.copytree(finished_study, work)
    before = cli_proc.snapshot(work)
    done = cli_proc.run(_argv(d, weights, work, "--optimizers", "adam,sgdm", "--overwrite"))
    assert done.code == 2 and "unknown optimiser(s) sgdm" in done.one_line_error()
    assert cli_proc.snapshot(work) == before


# --- bug 11: the study leaves process-wide state alone ----------------------------------------------------------


def _tiny_result():  # noqa: ANN202 - a StudyResult
    from impasto.study.records import Record, Run, StudyResult

    run = Run("adam", 1.0, [Record("adam", i, 10.0 / i, {"style": 1.0 / i}, 0.01 * i, i) for i in (1, 2, 3)])
    run.image = torch.rand(1, 3, 8, 8)
    stopped = Run("gd", 10.0, [Record("gd", 1, 12.0, {"style": 1.0}, 0.01, 1)], status="stopped")
    return StudyResult([run, stopped], "quadratic", (8, 8), 0, 3)


def test_plots_leave_the_matplotlib_backend_alone(monkeypatch):  # noqa: ANN001
    import matplotlib

    monkeypatch.setitem(matplotlib.rcParams, "backend", "svg")
    had_pyplot = "matplotlib.pyplot" in sys.modules
    files = api.study_files(_tiny_result())
    assert matplotlib.rcParams["backend"] == "svg"
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules
    for name in ("loss_vs_iteration.png", "loss_vs_time.png", "results.png"):
        with Image.open(io.BytesIO(files[name])) as im:
            assert im.format == "PNG" and im.size[0] > 100
    summary = json.loads(files["summary.json"])
    assert summary["complete"] is False and summary["optimizers"]["gd"]["status"] == "stopped"
    assert summary["winner"] == "adam"  # a stopped run is never the winner


DENORMAL = 1e-39  # below float32's smallest normal (1.18e-38)


def _flushes() -> bool:
    return float(torch.tensor([DENORMAL], dtype=torch.float32) * 1.0) == 0.0


def test_study_leaves_flush_denormal_as_it_found_it(files):  # noqa: ANN001
    d, weights = files
    seen: list[bool] = []

    def study() -> None:
        api.compare_optimizers(
            d / "content.png", d / "style.png", model_file=weights, size=32, iterations=2, gpu="c",
            optimizers=["adam", "lbfgs"], callback=lambda e: seen.append(_flushes()),
        )  # fmt: skip

    assert not _flushes()
    study()
    assert not _flushes() and not any(seen)  # never switched on during the run either
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        seen.clear()
        study()
        assert _flushes() and all(seen)  # a caller's choice is kept, not reset to False
    finally:
        torch.set_flush_denormal(False)


def test_subnormals_are_zeroed_locally_in_the_iterate_and_optimiser_state():
    from impasto.study.compare import _zero_subnormals

    x = torch.tensor([1.0, DENORMAL, -DENORMAL, 3e-38, 0.0])
    state = {"exp_avg_sq": torch.tensor([DENORMAL, 2.0, 0.0, -DENORMAL, 1e-30]), "step": torch.tensor(5.0)}
    _zero_subnormals(x, state)
    assert x.tolist() == pytest.approx([1.0, 0.0, 0.0, 3e-38, 0.0], abs=0, rel=1e-6)
    assert state["exp_avg_sq"].tolist() == pytest.approx([0.0, 2.0, 0.0, 0.0, 1e-30], abs=0, rel=1e-6)
    assert float(state["step"]) == 5.0


# --- the result shape and the CLI's layering --------------------------------------------------------------------


def test_study_result_has_the_common_shape(files):  # noqa: ANN001
    d, weights = files
    result = api.compare_optimizers(
        d / "content.png", d / "style.png", model_file=weights, size=32, iterations=2, gpu="c",
        optimizers=["adam", "lbfgs"],
    )  # fmt: skip
    assert result.complete and result.elapsed > 0 and result.info["device"] == "cpu"
    pictures = result.pictures()
    assert [p.mode for p in pictures] == ["RGB", "RGB"] and pictures[0].size == (32, 25)
    assert set(result.fingerprint) >= {"content", "style", "size", "seed", "iterations", "optimizers"}
    assert math.isfinite(result.runs[0].final_loss)


def test_the_cli_reaches_the_study_only_through_the_api():
    import impasto.cli.compare_optimizers as cli

    tree = ast.parse(Path(cli.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if "study" in m or "gatys" in m], imported
    assert "atomic_write" not in Path(cli.__file__).read_text()
