"""With no VGG file installed, ``impasto.paint`` paints with the MobileNetV2 and its recommended settings.

A few dozen L-BFGS steps at 64 px on generated images (no files from ../shared): the run must say it used
``mobilenetv2.magenta`` (not VGG), the style loss must fall by a large factor, and the painting's colours must
move from the content photo's towards the style's.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from impasto import api
from impasto.nets import magenta


def _content() -> Image.Image:
    """A grey-blue "photo": a sky gradient over a darker ground with a pale block, 64x48."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    img = np.empty((48, 64, 3), np.float32)
    img[...] = (0.45 + 0.3 * (1 - y / 47))[..., None] * np.array([0.8, 0.9, 1.0], np.float32)
    img[y > 30] = [0.25, 0.3, 0.3]
    img[(y > 18) & (y < 36) & (x > 20) & (x < 40)] = [0.85, 0.85, 0.8]
    return Image.fromarray((img * 255).astype(np.uint8))


def _style() -> Image.Image:
    """Warm diagonal brush-stroke stripes (orange, crimson, yellow), 64x64."""
    y, x = np.mgrid[0:64, 0:64]
    palette = np.array([[230, 120, 20], [170, 20, 40], [250, 210, 60]], np.uint8)
    band = ((x + 2 * y) // 6 + (x // 16)) % 3
    return Image.fromarray(palette[band])


def _style_loss(record: dict[str, float]) -> float:
    return sum(v for k, v in record.items() if k.startswith("style:"))


def test_offline_default_paints_toward_the_style(fresh_home) -> None:  # noqa: ANN001
    content, style = _content(), _style()
    r = api.paint(content, style, image_size=64, num_iterations=40, seed=0, gpu="c", print_iter=0, save_iter=0)

    assert r.model.startswith("mobilenetv2.magenta") and "not VGG" in r.model
    # The network's recommendations were used (no VGG values), with its own layers.
    assert (r.config.init, r.config.style_loss) == ("stylized", "w2")  # strokes: the fast network's start, W2
    assert r.config.style_weight == magenta.STYLE_WEIGHTS["w2"]
    assert r.config.tv_weight == magenta.PAINT_DEFAULTS["tv_weight"]
    assert {f"style:{n}" for n in magenta.DEFAULT_STYLE_LAYERS} <= set(r.losses[0])

    first, last = _style_loss(r.losses[0]), _style_loss(r.losses[-1])
    assert last < first / 10, (first, last)  # from the stylised start: 29022 -> 1181 in 40 steps

    mean = lambda img: np.asarray(img, np.float32).reshape(-1, 3).mean(0) / 255  # noqa: E731
    painted = r.image[0].permute(1, 2, 0).numpy().reshape(-1, 3).mean(0)
    to_style = np.linalg.norm(painted - mean(style))
    assert to_style < 0.5 * np.linalg.norm(mean(content) - mean(style)), (painted, mean(content), mean(style))


def test_the_optimiser_study_on_the_offline_default_starts_from_noise(fresh_home) -> None:  # noqa: ANN001
    """The MobileNetV2 recommends the stylised start for paintings; the optimiser study still starts every
    optimiser from the same seeded noise (it once failed asking for the stylised image)."""
    content, style = _content(), _style()
    result = api.compare_optimizers(content, style, optimizers=["adam"], iterations=2, size=48, seed=0, gpu="c")
    (run,) = result.runs
    assert run.optimizer == "adam" and run.status == "finished" and len(run.records) == 2
    assert "not VGG" in result.network


def test_a_resumed_stylised_run_continues_without_making_its_start_again(fresh_home, tmp_path) -> None:  # noqa: ANN001
    """The stylised start is made when a run starts from it, not when it resumes from a checkpoint (the checkpoint
    holds the painting so far); the resumed run ends where an uninterrupted one does."""
    import torch

    from impasto.errors import Cancelled
    from impasto.events import CancelToken, Progress
    from impasto.modelcache import ModelCache

    content, style = _content(), _style()
    common = {"image_size": 48, "num_iterations": 10, "seed": 0, "gpu": "c", "print_iter": 0, "save_iter": 0}
    # checkpointing makes L-BFGS step one iteration at a time: the uninterrupted run checkpoints too
    straight = api.paint(content, style, models=ModelCache(), checkpoint_every=1,
                         checkpoint_path=str(tmp_path / "straight.ckpt"), **common)  # fmt: skip
    assert straight.config.init == "stylized"

    ckpt = tmp_path / "run.ckpt"
    token = CancelToken()

    def stop_at_7(event: object) -> None:  # its line search checkpoints every iteration: 2-5 evaluations
        if isinstance(event, Progress) and event.step >= 7:
            token.cancel()

    first_cache = ModelCache(capacity=16)
    with pytest.raises(Cancelled):
        api.paint(content, style, models=first_cache, callback=stop_at_7, cancel=token, checkpoint_every=1,
                  checkpoint_path=str(ckpt), **common)  # fmt: skip
    made_start = {k for k in first_cache.keys() if "magenta" in repr(k).lower()}
    assert 1 <= torch.load(ckpt, weights_only=True)["step"] < 10

    second_cache = ModelCache(capacity=16)
    resumed = api.paint(content, style, models=second_cache, checkpoint_every=1, checkpoint_path=str(ckpt),
                        resume=True, **common)  # fmt: skip
    # the feature network is loaded again; the arbitrary stylisation networks (predictor, transformer) are not
    stylisers = {k for k in made_start if "predictor" in repr(k).lower() or "transformer" in repr(k).lower()}
    assert stylisers, first_cache.keys()
    assert not stylisers & set(second_cache.keys()), second_cache.keys()
    assert len(resumed.losses) == len(straight.losses)
    assert torch.allclose(resumed.image, straight.image, atol=1e-4)
