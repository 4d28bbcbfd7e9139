"""``impasto sweep``: grid parsing, the entries and their files, ranking, resume, kill -9, Ctrl-C, bad input, and
equality with ``impasto paint`` (and with ``--workers 2``). Tiny random VGG weights, 32 px, a few steps."""

from __future__ import annotations

import csv
import json
import re
import signal
from pathlib import Path

import cli_proc
import numpy as np
import pytest
import tiny_weights as tw
from PIL import Image

from impasto import api
from impasto.errors import ConfigError
from impasto.study import sweep as SW

GRID = "style_weight=1e2,1e4 seed=0,1"
SLUGS = ["style_weight-1e2_seed-0", "style_weight-1e2_seed-1", "style_weight-1e4_seed-0", "style_weight-1e4_seed-1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("sweep")
    weights = tw.write(tw.vgg_state(), d / "weights.pth")
    tw.image(d / "c.png", size=(40, 32), seed=0)
    tw.image(d / "s.png", size=(36, 36), seed=1)
    return d, weights


def _fixed(weights: Path, iters: int = 3) -> list[str]:
    return ["--model-file", str(weights), "--image-size", "32", "--num-iterations", str(iters), "--gpu", "c"]


def _args(d: Path, weights: Path, out: Path, *extra: str, grid: str = GRID, iters: int = 3) -> list[str]:
    return ["sweep", str(d / "c.png"), "-s", str(d / "s.png"), "--grid", grid, "-o", str(out),
            *_fixed(weights, iters), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def swept(files):  # noqa: ANN001, ANN201
    """A 2x2 sweep run once in this process through the API (what the CLI calls)."""
    d, weights = files
    out = d / "swept"
    cfg = api.PaintConfig(model_file=str(weights), image_size=32, num_iterations=3, gpu="c")
    plan = api.sweep_plan(d / "c.png", d / "s.png", GRID, out, cfg)
    result = api.sweep(plan, api.sweep_check(plan))
    return out, result


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _stamps(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.glob("style_weight-*"))}


# --- the grid ----------------------------------------------------------------------------------------------------


def test_grid_values_are_read_with_the_field_types() -> None:
    axes = SW.parse_grid(
        "style-weight=1e2,1e3 content_layers=relu4_2+relu3_1,relu4_2 seed=0,1e1 original_colors=true,off "
        "tv_weight=none,0 scales=auto,16+32"
    )
    by = {a.name: a for a in axes}
    assert by["style_weight"].values == (100.0, 1000.0) and by["style_weight"].texts == ("1e2", "1e3")
    assert by["content_layers"].values == (["relu4_2", "relu3_1"], ["relu4_2"])
    assert by["seed"].values == (0, 10) and all(isinstance(v, int) for v in by["seed"].values)
    assert by["original_colors"].values == (True, False)
    assert by["tv_weight"].values == (None, 0.0)
    assert by["scales"].values == ("auto", [16, 32])
    entries = SW.grid_entries(axes)
    assert len(entries) == 2 * 2 * 2 * 2 * 2 * 2
    assert entries[0].settings["style_weight"] == 100.0 and entries[-1].settings["style_weight"] == 1000.0
    assert len({e.slug for e in entries}) == len(entries)


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        ("stile_weight=1,2", "is not a paint setting; allowed: "),
        ("gpu=0,1", "cannot be varied in a sweep"),
        ("seed=0,x", "is not a whole number"),
        ("style_weight=1e2,1e2.5", "is not a number"),
        ("seed=0,0", "are the same value"),
        ("seed", "is not NAME=VALUE"),
        ("seed=0, seed=1", "has an empty value"),
        ("style_layers=relu1_1++relu2_1", "empty list item"),
    ],
)
def test_bad_grids_are_one_sentence(grid: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)) as info:
        SW.parse_grid(grid)
    assert "\n" not in str(info.value)


# --- a sweep's files -----------------------------------------------------------------------------------------------


def test_a_2x2_grid_gives_4_entries_sheet_and_matching_results(swept) -> None:  # noqa: ANN001
    out, result = swept
    assert result.complete and result.painted == 4 and result.kept == 0
    for slug in SLUGS:
        assert (out / f"{slug}.png").is_file()
        record = json.loads((out / f"{slug}.png.json").read_text())
        assert set(record["scores"]["content"]) == {"ssim", "psnr"}
        assert set(record["scores"]["style"]) == {"gram", "w2", "color_swd"}
    with Image.open(out / "contact-sheet.jpg") as sheet:
        assert sheet.width > 2 * 32 and sheet.height > 2 * 32
    doc = json.loads((out / "results.json").read_text())
    rows = list(csv.DictReader((out / "results.csv").open()))
    page = (out / "index.html").read_text()
    assert doc["complete"] is True and len(doc["entries"]) == 4 and len(rows) == 4
    assert [e["output"] for e in doc["entries"]] == [r["output"] for r in rows]
    assert {r["output"] for r in rows} == {f"{s}.png" for s in SLUGS}
    for e, r in zip(doc["entries"], rows, strict=True):
        assert float(r["w2"]) == pytest.approx(e["scores"]["w2"], rel=1e-5)
        assert r["style_weight"] == e["labels"]["style_weight"] and r["seed"] == e["labels"]["seed"]
        assert f'src="{e["output"]}"' in page
    assert page.count("<tr>") == 1 + 4 and "http://" not in page and "https://" not in page


@pytest.mark.parametrize("by", api.sweep_ranks())
def test_rank_order_follows_the_score(swept, by: str) -> None:  # noqa: ANN001
    _, result = swept
    rows = SW.rank_rows(result.rows, by)
    if by == "lpips":  # no LPIPS weights in this test's zoo: no entry has the score, none is ranked by it
        assert [r["rank"] for r in rows] == [None] * 4 and [r["entry"] for r in rows] == [1, 2, 3, 4]
        return
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    if by == "balanced":
        ssim = SW._ranks(rows, "ssim")
        w2 = SW._ranks(rows, "w2")
        keys = [(ssim[r["entry"]] + w2[r["entry"]]) / 2 for r in rows]
        assert keys == sorted(keys)
        return
    values = [r["seconds"] if by == "seconds" else r["scores"][by] for r in rows]
    higher = SW.SCORE_NAMES.get(by, False)
    assert values == sorted(values, reverse=higher)


def test_results_csv_is_in_rank_by_order(files, swept) -> None:  # noqa: ANN001
    """Re-ranking a finished sweep through the CLI paints nothing and writes the csv in the new order."""
    d, weights = files
    out, _ = swept
    before = _stamps(out)
    done = cli_proc.run(_args(d, weights, out, "--resume", "--rank-by", "color_swd"))
    assert done.code == 0, done.err
    assert _stamps(out) == before
    values = [float(r["color_swd"]) for r in csv.DictReader((out / "results.csv").open())]
    assert values == sorted(values) and len(values) == 4
    assert "4 entries (4 finished earlier, kept)" in done.err


def test_resume_paints_nothing_new(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "sw"
    first = cli_proc.run(_args(d, weights, out))
    assert first.code == 0, first.err
    before = _stamps(out)
    assert len(before) == 8
    again = cli_proc.run(_args(d, weights, out, "--resume"))
    assert again.code == 0, again.err
    assert _stamps(out) == before
    assert "impasto sweep: 1/4" not in again.err  # no entry painted
    # other fixed settings are refused: the finished entries were painted with these
    other = cli_proc.run(_args(d, weights, out, "--resume", "--style-scale", "0.9"))
    assert other.code == 2 and "painted with other settings (style_scale" in other.one_line_error()
    assert _stamps(out) == before


def test_kill_9_half_way_then_resume_finishes_each_entry_once(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "sw"
    run = cli_proc.Running(_args(d, weights, out, iters=6))
    run.wait_for(r"impasto sweep: 1/4 ")
    run.send(signal.SIGKILL)
    run.finish()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png.json")}
    assert 1 <= len(kept) < 4
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and partial["finished"] == len(kept)
    done = cli_proc.run(_args(d, weights, out, "--resume", iters=6))
    assert done.code == 0, done.err
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{s}.png" for s in SLUGS)
    assert not list(out.glob(".*.part"))
    for name, stamp in kept.items():  # painted once: the entries finished before the kill were not redone
        assert (out / name).stat().st_mtime_ns == stamp
    assert f"({len(kept)} finished earlier, kept)" in done.err
    assert json.loads((out / "results.json").read_text())["complete"] is True


def test_ctrl_c_keeps_finished_entries_and_writes_incomplete_results(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "sw"
    run = cli_proc.Running(_args(d, weights, out, iters=15))
    run.wait_for(r"impasto sweep: 1/4 ")
    run.send(signal.SIGINT)
    done = run.finish()
    assert done.code == 130, done.err
    assert "Traceback" not in done.err and "marked incomplete" in done.err
    doc = json.loads((out / "results.json").read_text())
    finished = [e for e in doc["entries"] if e["status"] == "finished"]
    assert doc["complete"] is False and 1 <= len(finished) < 4
    assert {p.name for p in out.glob("*.png")} == {e["output"] for e in finished}
    assert "(incomplete)" in (out / "index.html").read_text()
    assert (out / "contact-sheet.jpg").is_file()


@pytest.mark.parametrize(
    ("extra", "grid", "needle"),
    [
        ((), "stile_weight=1,2", "'stile_weight' is not a paint setting; allowed: "),
        ((), "style_weight=1e2,lots", "'lots' is not a number"),
        ((), "content_layers=relu4_2,relu9_9", "unknown VGG-19 content layer(s) 'relu9_9'; valid: "),
        (("--rank-by", "beauty"), GRID, "--rank-by 'beauty' is not a score; choose one of balanced, ssim"),
        (("--resume", "--overwrite"), GRID, "not both"),
        (("--seed", "3"), GRID, "seed is in the grid and also fixed by --seed; give it in one place"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(files, tmp_path, extra, grid, needle) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "sw"
    before = cli_proc.snapshot(tmp_path)
    done = cli_proc.run(_args(d, weights, out, *extra, grid=grid))
    assert done.code == 2
    assert needle in done.one_line_error()
    assert not out.exists() and cli_proc.snapshot(tmp_path) == before


def test_a_folder_with_other_content_is_refused(files, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "sw"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"mine")
    before = cli_proc.snapshot(tmp_path)
    done = cli_proc.run(_args(d, weights, out))
    assert done.code == 2 and "is not empty (it has holiday.jpg)" in done.one_line_error()
    assert cli_proc.snapshot(tmp_path) == before


def test_an_entry_equals_impasto_paint_with_the_same_settings(files, swept, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out, _ = swept
    single = tmp_path / "single.png"
    done = cli_proc.run(["paint", str(d / "c.png"), "-s", str(d / "s.png"), "-o", str(single), *_fixed(weights),
                         "--style-weight", "1e4", "--seed", "1", "--save-iter", "0"])  # fmt: skip
    assert done.code == 0, done.err
    entry = out / "style_weight-1e4_seed-1.png"
    assert np.array_equal(_pixels(single), _pixels(entry))
    mine = json.loads((out / f"{entry.name}.json").read_text())["scores"]
    theirs = json.loads(Path(f"{single}.json").read_text())["scores"]
    assert mine["content"] == pytest.approx(theirs["content"]) and mine["style"] == pytest.approx(theirs["style"])


def _have_local_pool() -> bool:
    try:
        from impasto.workers import open_executor  # noqa: F401
        from impasto.workers.local import LocalPoolExecutor  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _have_local_pool(), reason="the local worker pool (impasto.workers.local) is not there yet")
def test_workers_2_gives_the_same_outputs(files, swept, tmp_path) -> None:  # noqa: ANN001
    d, weights = files
    out, _ = swept
    pool = tmp_path / "pool"
    done = cli_proc.run(_args(d, weights, pool, "--workers", "2"))
    assert done.code == 0, done.err
    assert sorted(p.name for p in pool.glob("*.png")) == sorted(f"{s}.png" for s in SLUGS)
    for slug in SLUGS:
        assert np.array_equal(_pixels(pool / f"{slug}.png"), _pixels(out / f"{slug}.png")), slug
    a = json.loads((pool / "results.json").read_text())["entries"]
    b = json.loads((out / "results.json").read_text())["entries"]
    assert [e["output"] for e in a] == [e["output"] for e in b]


def test_sweep_and_bench_into_a_read_only_folder_stop_in_one_line_before_any_work(files, tmp_path) -> None:  # noqa: ANN001
    import filesystems

    d, weights = files
    with filesystems.tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        for argv in (_args(d, weights, ro / "sweep"), ["bench", "--quick", "--out", ro / "bench.json"]):
            done = cli_proc.run(argv)
            assert done.code == 1, done.err
            line = done.one_line_error()
            assert "cannot write to folder" in line and str(ro) in line, line
            assert "Traceback" not in done.err
        assert list(ro.iterdir()) == []
