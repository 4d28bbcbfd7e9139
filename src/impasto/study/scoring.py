"""Scores of a finished painting, for every paint result, sweep entry and study run.

The numbers are :mod:`impasto.score`'s, computed exactly as ``impasto score OUT --content C --style S`` computes
them (``impasto.api.score``): on the 8-bit picture that is saved (so a result's scores equal ``impasto score`` of
its file), content SSIM/PSNR on luminance against the content photo at the painting's size, and Gram / Gaussian
W2 distances in the network's *default* style layers plus the colour sliced Wasserstein distance against the style
image sized so its longest side is the painting's. The default style layers, not the run's own ``style_layers``,
so that runs with different layer choices are measured with the same ruler.

With several style images the style scores are the blend-weighted mean of each style's scores.

The feature network comes from a :class:`~impasto.modelcache.ModelCache`: the opened weights
(:func:`feature_source`) and the built scoring network are cached, so scoring a painting costs two forward passes
and no file reads once the cache is warm (a worker's cache keeps them between sweep entries).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .. import score as S
from ..errors import ConfigError
from ..imaging import pil_to_tensor
from ..modelcache import ModelCache

log = logging.getLogger(__name__)

__all__ = [
    "SCORE_NAMES", "feature_source", "flat_scores", "jsonable", "paint_record", "score_paint_result", "score_picture",
    "source_key",
]  # fmt: skip

# the scores a result carries, flattened: name -> True when higher is better
SCORE_NAMES: dict[str, bool] = {
    "ssim": True, "psnr": True, "lpips": False, "gram": False, "w2": False, "color_swd": False,
}  # fmt: skip


def source_key(model: str | None, model_file: str | os.PathLike[str] | None, disable_check: bool = False) -> tuple:
    """What decides an opened feature network: the registry name (the default resolved), or the file and its
    modification time."""
    from ..zoo import torch_formats

    if model_file is not None:
        path = Path(model_file)
        stamp = path.stat().st_mtime_ns if path.is_file() else None
        return ("file", str(path.resolve()), stamp, bool(disable_check), model)
    return ("name", torch_formats.resolve_model(model, None), bool(disable_check))


def feature_source(
    model: str | None,
    model_file: str | os.PathLike[str] | None,
    *,
    disable_check: bool = False,
    models: ModelCache | None = None,
) -> Any:  # noqa: ANN401 - a zoo.torch_formats.FeatureSource
    """The opened feature network for ``model``/``model_file`` (as ``paint`` resolves them), from ``models``
    when it holds one: the weights file is read once per cache."""
    from ..zoo import torch_formats

    def load() -> Any:  # noqa: ANN401
        return torch_formats.open_feature_source(model, model_file, disable_check=disable_check)

    if models is None:
        return load()
    return models.get(("feature-source", *source_key(model, model_file, disable_check)), load)


def score_picture(
    picture: Image.Image,
    content: Image.Image | None,
    styles: Sequence[Image.Image],
    *,
    source: Any,  # noqa: ANN401 - a FeatureSource
    name: str,
    key: Any,  # noqa: ANN401 - hashable: what decides ``source``
    device: str | torch.device = "cpu",
    blend: Sequence[float] | None = None,
    models: ModelCache | None = None,
    lpips: str | None = "auto",
) -> dict:
    """``{"content": {"ssim", "psnr"[, "lpips"]} | None, "style": {"gram", "w2", "color_swd"} | None,
    "network": str}`` for ``picture`` (an 8-bit RGB PIL image, as saved) -- the shape ``impasto.api.score``
    returns.

    ``styles``: the style images (RGB PIL), ``blend`` their weights (normalised here; equal when None).
    ``source``/``name``/``key``: the opened feature network, its name and cache key; ``device``: where the
    scoring networks run. ``models``: where the scoring networks are kept (None: built for this call only).
    ``lpips``: "alex" or "vgg" adds LPIPS against the content (``"skipped": {"lpips": reason}`` when its weights
    are not installed); "auto" adds LPIPS-alex only where it is installed, silently; None never.
    """
    from ..gatys.preprocess import neural_style_size, preprocess, resize_like_neural_style

    dev = torch.device(device)
    out = pil_to_tensor(picture)  # (1, 3, H, W) in [0, 1]
    result: dict = {"content": None, "style": None, "network": None}
    if content is not None:
        content01 = pil_to_tensor(content)
        result["content"] = S.content_scores(out, content01)
        _add_lpips(result, lpips, out, content01, dev, models)
    if not styles:
        return result
    layers = list(source.default_style_layers)
    cache_key = ("score-net", key, str(dev))
    net = models.get(cache_key, lambda: source.build(layers, dev)) if models is not None else source.build(layers, dev)
    weights = [1.0] * len(styles) if blend is None else [float(w) for w in blend]
    total = sum(weights) or 1.0
    summed = {"gram": 0.0, "w2": 0.0, "color_swd": 0.0}
    try:
        with torch.no_grad():
            feats_out = net.features(preprocess(out, source.preprocessing).to(dev), layers)
            for style, weight in zip(styles, weights, strict=True):
                style01 = resize_like_neural_style(style, neural_style_size(style.size, max(picture.size)))
                feats_style = net.features(preprocess(style01, source.preprocessing).to(dev), layers)
                one = S.style_scores(feats_out, feats_style, layers)
                one["color_swd"] = S.color_swd(out, style01)
                for k in summed:
                    summed[k] += one[k] * weight / total
    except RuntimeError as exc:
        if "too small" not in str(exc) and "Kernel size can't be greater" not in str(exc):
            raise
        raise ConfigError(
            f"the painting ({picture.size[0]}x{picture.size[1]}) is too small for {source.display}'s style layers "
            "to score it"
        ) from None
    result["style"] = summed
    result["network"] = name
    return result


def _add_lpips(
    result: dict, lpips: str | None, out: torch.Tensor, content01: torch.Tensor, dev: torch.device,
    models: ModelCache | None,
) -> None:  # fmt: skip
    """``result["content"]["lpips"]`` (see :func:`score_picture`'s ``lpips``), or the reason it was skipped."""
    from ..zoo import lpips_format

    if lpips is None:
        return
    net = "alex" if lpips == "auto" else lpips
    missing = lpips_format.missing_sets(net)
    if missing:
        if lpips != "auto":
            result["skipped"] = {"lpips": "LPIPS skipped: " + (lpips_format.missing_message(net) or "not installed")}
        return

    def load() -> Any:  # noqa: ANN401 - an impasto.nets.lpips.LPIPS
        return lpips_format.load_lpips(net, dev)

    model = models.get(("lpips", net, str(dev)), load) if models is not None else load()
    try:
        result["content"]["lpips"] = S.lpips_distance(model, out, content01)
    except RuntimeError as exc:
        if "too small" not in str(exc) and "Kernel size can't be greater" not in str(exc):
            raise
        if lpips != "auto":
            raise ConfigError(
                f"the output ({out.shape[-1]}x{out.shape[-2]}) is too small for LPIPS ({net}); score a larger image"
            ) from None


def flat_scores(scores: dict | None) -> dict[str, float | None]:
    """``{"ssim", "psnr", "gram", "w2", "color_swd"}`` from a nested scores dict (None where not measured)."""
    flat: dict[str, float | None] = dict.fromkeys(SCORE_NAMES)
    for group in ("content", "style"):
        for k, v in ((scores or {}).get(group) or {}).items():
            if k in flat:
                flat[k] = v
    return flat


def jsonable(value: Any) -> Any:  # noqa: ANN401
    """Infinite and NaN floats as the strings "inf"/"-inf"/"nan" (JSON has none), recursively; tuples as lists."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def score_paint_result(
    result: Any,  # noqa: ANN401 - a gatys.optimize.PaintResult
    content: Image.Image,
    styles: Sequence[Image.Image],
    *,
    source: Any,  # noqa: ANN401 - the FeatureSource the painting used
    models: ModelCache | None = None,
) -> dict:
    """The scores of a finished painting (its 8-bit picture, as saved) in the network it was painted with, on the
    painting's first device; see :func:`score_picture`."""
    from ..gatys.multidevice import parse_devices
    from ..media import tensor_to_pil

    cfg = result.config
    return score_picture(
        tensor_to_pil(result.image), content, styles, source=source, name=source.display,
        key=source_key(cfg.model, cfg.model_file, cfg.disable_check), device=parse_devices(cfg.gpu)[0],
        blend=cfg.blend_weights(len(styles)), models=models,
    )  # fmt: skip


def paint_record(result: Any, output: str | os.PathLike[str] | None = None) -> dict:  # noqa: ANN401
    """A painting's settings and scores as a JSON-ready dict (what ``impasto paint`` writes to ``OUT.json``):
    ``output``, ``settings`` (the PaintConfig fields that differ from the defaults), ``config`` (every field),
    ``scores`` (``result.info["scores"]`` when scored, else None), ``seconds``, ``steps``, ``final_loss``,
    ``model``. Infinite numbers are written as strings (:func:`jsonable`)."""
    import dataclasses

    from ..gatys.config import PaintConfig

    cfg, defaults = result.config, PaintConfig()
    config = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    settings = {k: v for k, v in config.items() if v != getattr(defaults, k)}
    return jsonable({
        "output": None if output is None else os.fspath(output),
        "settings": settings,
        "config": config,
        "scores": result.info.get("scores"),
        "seconds": round(float(result.elapsed), 3),
        "steps": result.steps,
        "final_loss": result.final_loss,
        "model": result.model,
    })  # fmt: skip
