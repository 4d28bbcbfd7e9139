"""`impasto bench`: the JSON has every section with positive figures, a bad --only is one error line (exit 2),
Ctrl-C (a real SIGINT) writes the sections finished so far and exits 130. No timing is asserted: only that the
figures are there and positive."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import cli_proc
import pytest

from impasto import api
from impasto.errors import ConfigError


def _numbers(section: dict) -> list[float]:
    rows = section["results"]
    assert rows, section
    return [v for row in rows for k, v in row.items() if isinstance(v, float)]


def test_sections_are_parsed_in_suite_order_and_a_bad_one_is_named():
    assert api.bench_sections(None) == ("stylize", "paint", "biggan", "workers")
    assert api.bench_sections("workers, stylize") == ("stylize", "workers")
    with pytest.raises(ConfigError, match="gpu.*choose from stylize, paint, biggan, workers"):
        api.bench_sections("stylize,gpu")
    with pytest.raises(ConfigError):
        api.bench_sections(",")


def test_stylize_section_through_the_cli(tmp_path: Path):
    got = cli_proc.run(["bench", "--quick", "--only", "stylize", "-o", "b.json", "--device", "cpu"], cwd=tmp_path)
    assert got.code == 0, got.err
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["complete"] is True and list(report["sections"]) == ["stylize"]
    stylize = report["sections"]["stylize"]
    assert "magenta" in stylize["weights"] and all(x > 0 for x in _numbers(stylize))
    assert {r["mode"] for r in stylize["results"]} == {"arbitrary", "preset"}
    assert "frames/s" in got.out and got.out.strip().splitlines()[-1] == "b.json"  # the table, then the file


@pytest.mark.slow
def test_quick_suite_has_every_section_with_positive_figures(tmp_path: Path):
    got = cli_proc.run(["bench", "--quick", "-o", "all.json", "--device", "cpu"], cwd=tmp_path)
    assert got.code == 0, got.err
    report = json.loads((tmp_path / "all.json").read_text())
    assert list(report["sections"]) == ["stylize", "paint", "biggan", "workers"] and report["quick"] is True
    for name, section in report["sections"].items():
        assert section["weights"] and section["elapsed_s"] > 0, name
        assert all(x > 0 for x in _numbers(section)), (name, section)
    # no paint or BigGAN weights in a test's IMPASTO_HOME: random weights of the real size, and it says so
    assert "random" in report["sections"]["paint"]["weights"]
    assert "random" in report["sections"]["biggan"]["weights"]
    assert [r["workers"] for r in report["sections"]["workers"]["results"]] == [1, 2]
    assert report["sections"]["paint"]["fast_speedup"] > 0
    for word in ("stylize", "paint", "biggan", "workers", "s/iteration", "samples/s", "images/s"):
        assert word in got.out


BAD = [
    (["--only", "stylize,gpu"], ["unknown bench section gpu", "stylize, paint, biggan, workers"]),
    (["--only", "stylize", "-o", "mine.json"], ["mine.json already exists", "--overwrite"]),
    (["--only", "stylize", "-o", "out.txt"], ["'.txt'", ".json"]),
    (["--only", "stylize", "-o", "nowhere/b.json"], ["nowhere", "does not exist"]),
    (["--quick", "--fast"], ["unrecognized arguments: --fast"]),
]


@pytest.mark.parametrize("argv, words", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_touched(tmp_path: Path, argv, words):  # noqa: ANN001
    (tmp_path / "mine.json").write_text('{"the user": "s"}')
    before = cli_proc.snapshot(tmp_path)
    got = cli_proc.run(["bench", *argv], cwd=tmp_path)
    assert got.code == 2
    line = got.one_line_error()
    assert all(w in line for w in words), line
    assert got.out == ""
    assert cli_proc.snapshot(tmp_path) == before


def test_ctrl_c_writes_the_finished_sections_and_exits_130(tmp_path: Path):
    run = cli_proc.Running(["bench", "--quick", "--only", "stylize,paint", "-o", "b.json", "--device", "cpu"],
                           cwd=tmp_path)  # fmt: skip
    run.wait_for(r"bench: stylize done")  # stylize finished, paint running
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err and "written to b.json" in done.err
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["complete"] is False and list(report["sections"]) == ["stylize"]
    assert all(x > 0 for x in _numbers(report["sections"]["stylize"]))
    assert "frames/s" in done.out
    assert sorted(cli_proc.snapshot(tmp_path)) == ["b.json"]  # no stray temporaries beside it
