"""The memory plan (impasto.gatys.memory): estimates, the order plans are tried in, refusals, and the CLI's line."""

from __future__ import annotations

import re

import cli_proc
import pytest
import tiny_weights as tw
import torch

from impasto.errors import ConfigError
from impasto.gatys import memory
from impasto.gatys.config import PaintConfig
from impasto.nets.vgg import VGG

CPU = torch.device("cpu")
PRINT = (2213, 4016)  # (H, W) of neural-style-pt's headline picture
LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
GB = 10**9


@pytest.fixture(scope="module")
def vgg19() -> memory.Profile:
    """The profile of a full-width VGG-19 (random weights: only the architecture matters here)."""
    return memory.profile(VGG(upto="relu5_1"), LAYERS)


def _choose(prof: memory.Profile, budget: float, size=PRINT, **cfg) -> memory.Plan:  # noqa: ANN001
    return memory.choose(PaintConfig(**cfg), prof, size, CPU, content_layers=["relu4_2"], budget=int(budget))


def test_estimate_terms_move_the_right_way(vgg19) -> None:
    est = lambda **kw: memory.estimate(vgg19, PRINT, content_layers=["relu4_2"], **kw)  # noqa: E731
    plain = est()
    assert est(checkpointing=True) < plain
    assert est(tile=1024, checkpointing=True) < est(checkpointing=True)
    assert est(tile=512, checkpointing=True) < est(tile=1024, checkpointing=True)
    n = 3 * PRINT[0] * PRINT[1]
    # the L-BFGS history is 2 m n values: fp32 -> bf16 saves 2 m n * 2 bytes exactly
    assert est(history_dtype="float32") - est(history_dtype="bfloat16") == 2 * 100 * n * 2
    assert est(history=50) < est(history=100)
    assert est(optimizer="adam") < est()
    # at print size the fp32 history alone is about 21 GB (the "100 x 2 x 27 M floats")
    assert 20 * GB < 2 * 100 * n * 4 < 22 * GB


def test_plans_are_tried_in_order(vgg19) -> None:
    small = (384, 512)
    assert _choose(vgg19, 100 * GB, small).describe() == "untiled, L-BFGS history 100 in fp32"
    plain = memory.estimate(vgg19, PRINT, content_layers=["relu4_2"])
    ck = memory.estimate(vgg19, PRINT, checkpointing=True, content_layers=["relu4_2"])
    p = _choose(vgg19, plain)
    assert (p.tile, p.checkpointing) == (0, False)
    p = _choose(vgg19, ck + 1)
    assert (p.tile, p.checkpointing, p.history_dtype) == (0, True, "float32")
    p = _choose(vgg19, ck - 1)  # tiles next, still fp32 history: the largest tile that fits
    assert p.tile > 0 and p.checkpointing and p.history_dtype == "float32"
    bigger = [t for t in memory.TILE_SIDES if t > p.tile]
    assert all(not _plan_fits(vgg19, t, ck - 1) for t in bigger)
    p = _choose(vgg19, 20 * GB)  # then the history in bf16
    assert p.history_dtype == "bfloat16" and p.history == 100 and p.tile > 0
    p = _choose(vgg19, 8 * GB)  # then a shorter history
    assert p.history < 100 and p.history_dtype == "bfloat16"
    assert p.estimate <= 8 * GB


def _plan_fits(prof: memory.Profile, tile: int, budget: float) -> bool:
    est = memory.estimate(prof, PRINT, tile=tile, checkpointing=True, content_layers=["relu4_2"])
    return est <= budget


def test_the_plan_line(vgg19) -> None:
    p = _choose(vgg19, 20.1 * 2**30)
    line = p.line()
    assert re.fullmatch(
        r"memory plan: 4016×2213, tiles \d+ px \(\d+\), checkpointed, L-BFGS history 100 in bf16 - about "
        r"\d+\.\d GiB of 20\.1 GiB",
        line,
    ), line
    assert f"({p.tiles})" in line and p.tiles > 1


def test_user_settings_are_kept(vgg19) -> None:
    p = _choose(vgg19, 20 * GB, tile_size=-1, lbfgs_num_correction=10)
    assert p.tile == 0
    p = _choose(vgg19, 100 * GB, tile_size=512)
    assert p.tile == 512
    p = _choose(vgg19, 15 * GB, network_checkpointing="off")
    assert not p.checkpointing
    with pytest.raises(ConfigError):
        _choose(vgg19, 15 * GB, lbfgs_history_dtype="float32", lbfgs_num_correction=100, tile_size=-1,
                network_checkpointing="off")  # fmt: skip


def test_refusal_is_one_line_with_the_size_that_fits_and_flags(vgg19) -> None:
    with pytest.raises(ConfigError) as info:
        _choose(vgg19, 2 * GB)
    msg = str(info.value)
    assert "\n" not in msg
    assert "4016×2213" in msg and f"{2 * GB / 2**30:.1f} GiB" in msg
    m = re.search(r"--image-size (\d+)", msg)
    assert m, msg
    fits = int(m.group(1))
    assert 256 < fits < 4016
    # that size does fit with the leanest plan, and a little more does not
    h, w = round(2213 * fits / 4016), fits
    _choose(vgg19, 2 * GB, (h, w))
    with pytest.raises(ConfigError):
        _choose(vgg19, 2 * GB, (round(2213 * (fits + 64) / 4016), fits + 64))
    # Adam keeps no history: with a budget between the two it fits where L-BFGS cannot, so the refusal names it
    kw = dict(tile=512, checkpointing=True, content_layers=["relu4_2"])
    adam = memory.estimate(vgg19, PRINT, optimizer="adam", **kw)
    lean = memory.estimate(vgg19, PRINT, history=memory.MIN_HISTORY, **kw)
    assert adam < lean
    with pytest.raises(ConfigError, match="--optimizer adam"):
        _choose(vgg19, (adam + lean) / 2, tile_size=512, lbfgs_history_dtype="float32")


def test_max_memory_caps_the_budget(vgg19) -> None:
    p = memory.choose(PaintConfig(max_memory="2G"), vgg19, (256, 256), CPU, budget=100 * GB)
    assert p.budget == 2**31
    with pytest.raises(ConfigError, match="--max-memory"):
        memory.choose(PaintConfig(max_memory="1G"), vgg19, PRINT, CPU)


def test_available_memory_is_positive() -> None:
    assert memory.available_memory(CPU) > 2**20


def test_mobilenet_profile_and_tiles() -> None:
    from impasto.nets import magenta

    net = magenta.StylePredictor()
    prof = memory.profile(net, list(magenta.DEFAULT_STYLE_LAYERS))
    assert prof.geometry is not None and prof.geometry.stride == 16
    assert prof.layers[-1][0] == "block11_expand"
    p = memory.choose(PaintConfig(lbfgs_history_dtype="float32"), prof, PRINT, CPU, budget=30 * GB)
    assert p.fits


# --- through the real CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):  # noqa: ANN001, ANN201
    d = tmp_path_factory.mktemp("memory-plan")
    weights = tw.write(tw.vgg_state(), d / "vgg19-d01eb7cb.pth")
    tw.image(d / "c.png", size=(40, 32), seed=0)
    tw.image(d / "s.png", size=(36, 36), seed=1)
    return d, weights


def _args(d, weights, out, *extra: str) -> list[str]:  # noqa: ANN001
    return [
        "paint", str(d / "c.png"), "--style", str(d / "s.png"), "-o", str(out), "--model-file", str(weights),
        "--image-size", "40", "--num-iterations", "2", "--save-iter", "0", "--print-iter", "0", "--gpu", "c",
        "--seed", "1", *extra,
    ]  # fmt: skip


def test_cli_prints_the_plan_once(files) -> None:
    d, weights = files
    out = d / "ok.png"
    done = cli_proc.run(_args(d, weights, out))
    assert done.code == 0, done.err
    lines = [ln for ln in done.err.splitlines() if "memory plan:" in ln]
    assert len(lines) == 1 and re.search(r"memory plan: 40×32, untiled, L-BFGS history 100 in fp32 - about", lines[0])
    assert out.exists()


def test_cli_refuses_what_cannot_fit_in_one_line(files) -> None:
    d, weights = files
    out = d / "refused.png"
    before = cli_proc.snapshot(d)
    done = cli_proc.run(_args(d, weights, out, "--max-memory", "100M"))
    assert done.code == 2
    line = done.one_line_error()
    assert "needs about" in line and "--max-memory" in line
    assert "Traceback" not in done.err
    assert cli_proc.snapshot(d) == before
    assert not out.exists()


def test_with_plan_sets_only_what_the_plan_changed(vgg19) -> None:
    cfg = PaintConfig()
    plain = _choose(vgg19, 100 * GB, (256, 256))
    assert memory.with_plan(cfg, plain) is cfg  # nothing changed: "auto" stays "auto"
    lean = _choose(vgg19, 8 * GB)
    changed = memory.with_plan(cfg, lean)
    assert changed.lbfgs_history_dtype == "bfloat16" and changed.lbfgs_num_correction == lean.history < 100
    assert memory.with_plan(cfg.replace(optimizer="adam"), lean).lbfgs_history_dtype == "auto"


def test_multiscale_run_shows_the_last_scales_plan(files) -> None:
    from impasto.events import Started
    from impasto.gatys.optimize import paint

    d, weights = files
    cfg = PaintConfig(model_file=str(weights), image_size=48, scales=(24, 48), num_iterations=2, print_iter=0,
                      save_iter=0, gpu="c", seed=0)  # fmt: skip
    events: list = []
    paint(tw.image(size=(48, 36)), [tw.image(size=(30, 30), seed=1)], cfg, callback=events.append)
    started = [e for e in events if isinstance(e, Started)]
    assert len(started) == 1
    assert started[0].info["memory_plan"].startswith("memory plan: 48×36 (the last of 2 scales), untiled")
    with pytest.raises(ConfigError, match="needs about"):  # the final scale is checked before the first runs
        paint(tw.image(size=(48, 36)), [tw.image(size=(30, 30), seed=1)], cfg.replace(max_memory="1M"))
