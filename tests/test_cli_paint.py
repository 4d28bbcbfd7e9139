"""``impasto paint`` and ``impasto neural-style``: outputs, naming, and one-line errors with the right exit code."""

from __future__ import annotations

import pytest
import tiny_weights as tw
import torch

from impasto.cli.main import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("cli-paint")
    weights = tw.write(tw.vgg_state(), d / "weights.pth")
    tw.image(d / "c.png", size=(40, 32), seed=0)
    tw.image(d / "s.png", size=(36, 36), seed=1)
    tw.image(d / "s2.png", size=(30, 40), seed=2)
    tw.write({"conv.weight": torch.zeros(2, 3, 3, 3)}, d / "odd.pth")
    return d, weights


def _paint_args(d, weights, out, *extra):  # noqa: ANN001, ANN002, ANN202
    return [
        "paint", str(d / "c.png"), "--style", str(d / "s.png"), "-o", str(out), "--model-file", str(weights),
        "--image-size", "32", "--num-iterations", "4", "--save-iter", "2", "--print-iter", "0", "--gpu", "c",
        "--seed", "1", *extra,
    ]  # fmt: skip


def _one_line_error(capsys, code: int, expected_code: int, needle: str) -> None:  # noqa: ANN001
    err = capsys.readouterr().err.strip()
    assert code == expected_code, err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and needle in err, err


def test_paint_writes_output_and_steps_and_refuses_to_overwrite(files, tmp_path, capsys) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "out.png"
    assert main(["-q", *_paint_args(d, weights, out)]) == 0
    assert out.exists() and (tmp_path / "out_2.png").exists() and not (tmp_path / "out_4.png").exists()
    capsys.readouterr()
    _one_line_error(capsys, main(_paint_args(d, weights, out)), 2, "already exists")
    assert (
        main(["-q", *_paint_args(d, weights, out, "--overwrite", "--original-colors", "--style-layers", "relu1_1")])
        == 0
    )


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["--content-layers", "relu9_1"], 2, "valid: conv1_1"),
        (["--style-blend-weights", "1,2"], 2, "style_blend_weights"),
        (["--image-size", "8"], 2, "at least 16"),
        (["--style-weight", "-3"], 2, ">= 0"),
        (["--gpu", "3"], 2, "device"),
        (["--optimizer", "sgd"], 2, "optimizer"),
        (["--num-iterations", "ten"], 2, "invalid int"),
    ],
)
def test_paint_bad_input(files, tmp_path, capsys, extra, code, needle) -> None:  # noqa: ANN001
    d, weights = files
    _one_line_error(capsys, main(_paint_args(d, weights, tmp_path / "o.png", *extra)), code, needle)
    assert not (tmp_path / "o.png").exists()


def test_paint_bad_files(files, tmp_path, capsys) -> None:  # noqa: ANN001
    d, weights = files
    args = _paint_args(d, weights, tmp_path / "o.png")
    _one_line_error(capsys, main([a if a != str(d / "c.png") else str(d / "nope.png") for a in args]), 1, "not found")
    _one_line_error(capsys, main([a if a != str(weights) else str(d / "odd.pth") for a in args]), 2, "cannot recognise")
    _one_line_error(capsys, main(_paint_args(d, weights, tmp_path / "o.xyz")), 2, "format")


def _ns_args(d, weights, out, *extra):  # noqa: ANN001, ANN002, ANN202
    return [
        "neural-style", "-content_image", str(d / "c.png"), "-style_image", f"{d / 's.png'},{d / 's2.png'}",
        "-output_image", str(out), "-model_file", str(weights), "-image_size", "32", "-num_iterations", "4",
        "-save_iter", "2", "-print_iter", "2", "-gpu", "c", "-seed", "3", *extra,
    ]  # fmt: skip


def test_neural_style_compat_naming_and_report(files, tmp_path, capsys) -> None:  # noqa: ANN001
    d, weights = files
    out = tmp_path / "out.png"
    assert main(_ns_args(d, weights, out, "-style_blend_weights", "3,7", "-original_colors", "1")) == 0
    assert out.exists() and (tmp_path / "out_2.png").exists()
    stdout = capsys.readouterr().out
    assert "Iteration 2 / 4" in stdout and "  Content 1 loss: " in stdout and "  Style 5 loss: " in stdout
    assert "  Total loss: " in stdout
    # a rerun of the same command line works, and the previous outputs are kept aside, not destroyed
    before = out.read_bytes()
    assert main(_ns_args(d, weights, out)) == 0
    assert "kept the existing" in capsys.readouterr().err
    assert (tmp_path / "out.~1~.png").read_bytes() == before and out.exists()
    assert (tmp_path / "out_2.~1~.png").exists()


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["-gpu", "3"], 2, "-gpu c"),
        (["-style_blend_weights", "1"], 2, "1 style_blend_weights given for 2"),
        (["-content_layers", "relu4_2,nope"], 2, "'nope'"),
        (["-multidevice_strategy", "3", "-gpu", "c,c,c"], 2, "split point"),
        (["-init", "bogus"], 2, "invalid choice"),
    ],
)
def test_neural_style_bad_input(files, tmp_path, capsys, extra, code, needle) -> None:  # noqa: ANN001
    d, weights = files
    _one_line_error(capsys, main(_ns_args(d, weights, tmp_path / "o.png", *extra)), code, needle)


def test_neural_style_missing_output_folder(files, tmp_path, capsys) -> None:  # noqa: ANN001
    d, weights = files
    _one_line_error(capsys, main(_ns_args(d, weights, tmp_path / "no" / "o.png")), 2, "does not exist")
