"""The optimiser study on a tiny random VGG in neural-style-pt's format: records, divergence, outputs."""

from __future__ import annotations

import csv
import json
import math

import pytest
import tiny_weights as tw
import torch
from PIL import Image

from impasto import api
from impasto.cli.main import main
from impasto.errors import ConfigError
from impasto.study.compare import StudyConfig, run_one
from impasto.study.records import divergence


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("study")
    weights = tw.write(tw.vgg_state(), d / "vgg19-d01eb7cb.pth")
    content = tw.image(d / "content.png", size=(40, 32), seed=0)
    style = tw.image(d / "style.png", size=(36, 36), seed=1)
    return d, str(weights), content, style


def test_all_six_run_from_the_same_start_and_mostly_descend(files):  # noqa: ANN001
    _, weights, content, style = files
    result = api.compare_optimizers(
        content, style, model_file=weights, size=32, iterations=15, seed=3, gpu="c", lbfgs_line_search="strong_wolfe"
    )
    assert [r.optimizer for r in result.runs] == ["gd", "adadelta", "rmsprop", "adam", "adagrad", "lbfgs"]
    firsts = {r.optimizer: r.records[0].total for r in result.runs}
    # the same starting image and the same loss: every optimiser's first evaluation is the same number
    assert max(firsts.values()) == pytest.approx(min(firsts.values()), rel=1e-6)
    for run in result.runs:
        assert set(run.records[0].terms) == {"content", "style", "tv"}
    final = {r.optimizer: r.final_loss for r in result.runs}
    runs = {r.optimizer: r for r in result.runs}
    for name in ("rmsprop", "adam", "adagrad"):  # these converge at lr 10 on 0-255 pixels
        assert not runs[name].diverged
        assert final[name] < 0.1 * firsts[name], (name, final[name], firsts[name])
    assert not runs["lbfgs"].diverged and final["lbfgs"] < 0.5 * firsts["lbfgs"]
    assert runs["gd"].diverged  # plain GD at lr 10 blows up, as in the original study
    evals = [rec.func_evals for rec in runs["lbfgs"].records]
    # strong Wolfe: several evaluations per iteration, capped (as impasto paint does) at the iterations asked for
    assert evals == sorted(evals) and len(evals) < evals[-1] <= 15 + 1  # torch checks the cap between iterations
    assert result.network.startswith("VGG-19")
    img = runs["lbfgs"].image
    assert img.shape == (1, 3, 25, 32) and 0 <= float(img.min()) <= float(img.max()) <= 1


def test_divergence_is_detected_and_the_others_carry_on(files):  # noqa: ANN001
    _, weights, content, style = files
    # GD at an absurd rate on 0-255 pixels explodes; Adam at a sane one does not
    result = api.compare_optimizers(
        content, style, model_file=weights, size=32, iterations=12, optimizers=["gd@1e6", "adam@1"], seed=0, gpu="c"
    )
    gd, adam = result.runs
    assert gd.diverged and ("grew" in gd.reason or "nan" in gd.reason.lower() or "inf" in gd.reason.lower())
    assert len(gd.records) < 12
    assert not adam.diverged and len(adam.records) == 12


def test_divergence_rule():
    assert divergence(float("nan"), 1.0)
    assert divergence(float("inf"), 1.0)
    assert divergence(101.0, 1.0)
    assert not divergence(99.0, 1.0)
    assert not divergence(5.0, math.inf)  # first step: nothing to compare with


def test_study_config_validation():
    with pytest.raises(ConfigError, match="unknown optimiser"):
        StudyConfig(optimizers=("sgdm",)).validate()
    with pytest.raises(ConfigError, match="positive"):
        StudyConfig(default_lr=-1).validate()
    with pytest.raises(ConfigError, match="NAME@RATE"):
        StudyConfig(optimizers=("adam@fast",)).validate()
    assert StudyConfig(lr={"adam": 2}).rate("adam") == 2
    assert StudyConfig().rate("lbfgs") == 1.0 and StudyConfig().rate("gd") == 10.0
    assert StudyConfig().rate("adam@0.5") == 0.5


class _Quadratic:
    """loss = |x - 3|^2 summed: a known objective for the runner alone."""

    network = "quadratic"

    def initial(self) -> torch.Tensor:
        return torch.zeros(1, 3, 2, 2)

    def __call__(self, x: torch.Tensor):  # noqa: ANN204
        loss = ((x - 3) ** 2).sum()
        return loss, {"content": float(loss.detach())}

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x / 255).clamp(0, 1)


def test_runner_on_a_known_objective():
    run = run_one("gd", _Quadratic(), StudyConfig(iterations=20, lr={"gd": 0.1}))
    # GD with lr 0.1 on |x-3|^2: x_k = 3 (1 - 0.8^k); loss after step k-1 evaluation = 12 * 3^2 * 0.64^(k-1) / 12...
    expected_first = 12 * 9.0
    assert run.records[0].total == pytest.approx(expected_first)
    assert run.records[5].total == pytest.approx(expected_first * 0.64**5, rel=1e-5)


def test_lbfgs_without_line_search_counts_one_evaluation_per_iteration(files):  # noqa: ANN001
    _, weights, content, style = files
    result = api.compare_optimizers(
        content, style, model_file=weights, size=32, iterations=6, seed=3, gpu="c", optimizers=["lbfgs"]
    )
    records = result.runs[0].records
    assert [rec.func_evals for rec in records] == [rec.iteration for rec in records] == list(range(1, len(records) + 1))


def test_cli_writes_csv_json_plots_and_grid(files, capsys):  # noqa: ANN001
    d, weights, _, _ = files
    out = d / "run1"
    argv = [
        "compare-optimizers",
        str(d / "content.png"),
        str(d / "style.png"),
        "--model-file",
        weights,
        "--size",
        "32",
        "--iterations",
        "5",
        "--optimizers",
        "adam,lbfgs",
        "--lr",
        "adam=1",
        "-o",
        str(out),
        "--device",
        "cpu",
        "-q",
    ]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "losses.csv")))  # noqa: SIM115
    assert list(rows[0]) == [
        "optimizer",
        "lr",
        "iteration",
        "total",
        "content",
        "style",
        "tv",
        "wall_s",
        "func_evals",
        "diverged",
        "status",
    ]
    assert len(rows) == 10 and {r["optimizer"] for r in rows} == {"adam", "lbfgs"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["network"].startswith("VGG-19") and summary["winner"] in ("adam", "lbfgs")
    assert summary["optimizers"]["adam"]["lr"] == 1.0
    for name in ("loss_vs_iteration.png", "loss_vs_time.png", "results.png"):
        with Image.open(out / name) as im:
            im.verify()
            assert im.format == "PNG"
    # a second run into the same folder is refused without --overwrite, and the results are kept
    before = (out / "losses.csv").read_text()
    capsys.readouterr()
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "losses.csv").read_text() == before


@pytest.mark.parametrize(
    "extra, words",
    [(["--optimizers", "sgdm"], "unknown optimiser"), (["--lr", "adam=x"], "NAME=RATE"), (["--lr", "-3"], "positive")],
)
def test_cli_bad_input(files, capsys, extra, words):  # noqa: ANN001
    d, weights, _, _ = files
    code = main(
        [
            "compare-optimizers",
            str(d / "content.png"),
            str(d / "style.png"),
            "--model-file",
            weights,
            "--size",
            "32",
            "--iterations",
            "2",
            "-o",
            str(d / "bad"),
            *extra,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1


def test_preset_writes_each_experiment_and_an_index(files, monkeypatch, capsys):  # noqa: ANN001
    from impasto.study import presets

    d, weights, _, _ = files
    tiny = (
        presets.Experiment("a-all", "two optimisers", 32, 3, ("adam", "lbfgs")),
        presets.Experiment("b-rates", "adam at two rates", 24, 2, ("adam@1", "adam@10")),
    )
    monkeypatch.setitem(presets.PRESETS, "seed-study", tiny)
    out = d / "preset"
    argv = ["compare-optimizers", str(d / "content.png"), str(d / "style.png"), "--model-file", weights,
            "--preset", "seed-study", "-o", str(out), "--device", "cpu", "-q"]  # fmt: skip
    assert main(argv) == 0
    index = (out / "index.html").read_text()
    for exp in tiny:
        assert (out / exp.folder / "losses.csv").exists() and (out / exp.folder / "results.png").exists()
        assert f"{exp.folder}/loss_vs_iteration.png" in index and exp.title in index
    summary = json.loads((out / "b-rates" / "summary.json").read_text())
    assert set(summary["optimizers"]) == {"adam@1", "adam@10"} and summary["size"][0] == 24
    assert {v["lr"] for v in summary["optimizers"].values()} == {1.0, 10.0}
    assert main(argv) == 2  # the folder now holds results: refused without --overwrite


def test_the_seed_study_preset_is_the_six_experiments():
    from impasto.study.presets import SEED_STUDY

    assert len(SEED_STUDY) == 6
    assert {e.size for e in SEED_STUDY} == {300, 600}
    assert {e.iterations for e in SEED_STUDY} == {100, 500, 1000}
    assert ("adam@1", "adam@10") in [e.optimizers for e in SEED_STUDY]
