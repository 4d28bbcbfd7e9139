"""The stable facade. The CLI and the web studio call only these functions.

Each area appends its functions below in its own section; implementations live in the area's package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

from PIL import Image

from .errors import ConfigError
from .events import Callback, CancelToken, Finished, Preview, Progress, Started, Stopwatch, emit
from .imaging import load_image
from .modelcache import ModelCache

if TYPE_CHECKING:
    from .gatys.config import PaintConfig
    from .gatys.optimize import PaintResult
    from .study.records import StudyResult

ImageInput = Union[str, "os.PathLike[str]", Image.Image]

# The loaded networks of this process when a caller passes no ``models=``: a one-shot command uses it and exits; a
# long-lived process makes its own ModelCache and releases it (``release_models()`` empties this one).
default_models = ModelCache()


def release_models() -> None:
    """Free every network the default cache holds (GPU memory included)."""
    default_models.release()


def _as_image(item: ImageInput) -> Image.Image:
    """A PIL RGB image from a path or an image."""
    if isinstance(item, Image.Image):
        from .imaging import to_rgb

        return to_rgb(item)
    return load_image(item)


# --- fast style transfer (impasto.fast) -------------------------------------------------------------------


def stylize(
    content: ImageInput | Sequence[ImageInput],
    *,
    styles: Sequence[ImageInput] = (),
    style_weights: Sequence[float] | None = None,
    preset: str | None = None,
    size: int | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    device: str = "auto",
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> Image.Image | list[Image.Image]:
    """Fast stylisation with Magenta's networks (offline): ``styles`` (arbitrary style images) or ``preset``.

    ``content``: a path or PIL image, or a sequence of them (then a list is returned). ``style_weights`` blends
    several style images (normalised to sum 1). ``preset``: ``"7"`` or ``"3:0.5,12:0.5"`` (26 built-in
    styles). ``size``: longest output side in px (None keeps each input's size). ``strength`` in [0, 1].
    Emits Started, Progress (one per image) and Finished to ``callback``; checks ``cancel`` between images.
    """
    from .fast.magenta import MagentaStylizer, StylizeOptions, normalise_weights, parse_presets

    if (not styles) == (preset is None):
        raise ConfigError("give either style images or a preset, not both and not neither")
    opts = StylizeOptions(size=size, strength=strength, preserve_color=preserve_color)
    opts.validate()
    single = isinstance(content, (str, os.PathLike, Image.Image))
    items = [content] if single else list(content)  # type: ignore[list-item]
    stylizer = MagentaStylizer(device=device)
    watch = Stopwatch()
    if preset is not None:
        weights = parse_presets(preset)

        def render(img: Image.Image) -> Image.Image:
            return stylizer.with_preset(img, weights, opts)

    else:
        normalise_weights(style_weights, len(styles))  # fail before loading any model
        vector = stylizer.blend([_as_image(s) for s in styles], style_weights)

        def render(img: Image.Image) -> Image.Image:
            return stylizer.with_vector(img, vector, opts)

    emit(callback, Started(total=len(items), info={"device": str(stylizer.device)}))
    results: list[Image.Image] = []
    for i, item in enumerate(items):
        if cancel is not None:
            cancel.check(partial=results)
        out = render(_as_image(item))
        results.append(out)
        emit(callback, Preview(step=i + 1, image=out))  # each finished image, so callers can save as they go
        emit(callback, Progress(step=i + 1, total=len(items), elapsed=watch()))
    emit(callback, Finished(result=results, elapsed=watch()))
    return results[0] if single else results


def preset_sheet(content: ImageInput, *, tile: int = 256, device: str = "auto") -> Image.Image:
    """A contact sheet: the photo and the 26 built-in styles on it, each labelled with its preset number."""
    from .fast.magenta import MagentaStylizer, contact_sheet

    if tile < 32:
        raise ConfigError(f"tile must be at least 32 px, got {tile}")
    return contact_sheet(MagentaStylizer(device=device), _as_image(content), tile=tile)


# --- painting by optimisation (impasto.gatys) --------------------------------------------------------------


def _style_list(styles: ImageInput | Sequence[ImageInput]) -> list[Image.Image]:
    """Style images from a path, an image, a folder (its images, sorted) or a list of these."""
    from pathlib import Path

    from .imaging import expand_inputs

    items = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
    out: list[Image.Image] = []
    for item in items:
        if isinstance(item, Image.Image):
            out.append(_as_image(item))
        elif Path(item).is_dir():
            out.extend(load_image(p) for p in expand_inputs([str(item)]))
        else:
            out.append(load_image(item))
    if not out:
        raise ConfigError("at least one style image is needed")
    return out


def paint(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    config: PaintConfig | None = None,
    *,
    init_image: ImageInput | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    **options: object,
) -> PaintResult:
    """Paint ``content`` in the style of ``styles`` by optimisation (Gatys et al.; neural-style-pt's options).

    ``styles``: a path, an image, a folder or a list of these. ``config``: a :class:`PaintConfig`; keyword
    ``options`` override its fields (``paint(c, s, num_iterations=200, seed=1)``). ``init_image`` (or
    ``config.init_image``) is the start when ``init="image"``. Returns a PaintResult whose ``image`` is
    (1, 3, H, W) RGB in [0, 1]; events go to ``callback``; ``cancel`` raises Cancelled(partial image).
    """
    from .gatys.config import PaintConfig as _PaintConfig
    from .gatys.optimize import paint as _paint

    cfg = (config or _PaintConfig()).replace(**options) if options else (config or _PaintConfig())
    style_images = _style_list(styles)
    cfg.validate(num_styles=len(style_images))
    content_image = _as_image(content)
    init = init_image if init_image is not None else cfg.init_image
    init_pil = _as_image(init) if (init is not None and cfg.init == "image") else None
    return _paint(content_image, style_images, cfg, init_image=init_pil, callback=callback, cancel=cancel)


# --- optimiser study (impasto.study) -----------------------------------------------------------------------


def compare_optimizers(
    content: ImageInput,
    style: ImageInput,
    *,
    optimizers: Sequence[str] | None = None,
    lr: float | Mapping[str, float] = 10.0,
    iterations: int = 100,
    size: int = 300,
    model: str | None = None,
    model_file: str | None = None,
    seed: int = 0,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    **paint_options: object,
) -> StudyResult:
    """Run several optimisers on one painting loss from one starting image; returns every record.

    ``optimizers``: names from gd, adadelta, rmsprop, adam, adagrad, lbfgs (all by default); an entry may pin
    its rate as ``adam@1``. ``lr``: one rate for all, or a mapping per optimiser, in 0–255 pixel units as in
    the original study (converted internally to the network's range); L-BFGS takes 1 unless named. The loss is
    ``impasto paint``'s (same network choice, layers and weights; ``paint_options`` override PaintConfig
    fields). Events: a Started and Progress stream per optimiser (``info["optimizer"]``), then Finished.
    """
    import torch

    from .gatys.config import PaintConfig
    from .gatys.optimize import prepare
    from .study.compare import StudyConfig, compare
    from .study.objective import GatysObjective
    from .study.records import OPTIMIZERS

    if isinstance(lr, Mapping):
        study = StudyConfig(optimizers=tuple(optimizers or OPTIMIZERS), lr=dict(lr), iterations=iterations)
    else:
        study = StudyConfig(optimizers=tuple(optimizers or OPTIMIZERS), default_lr=float(lr), iterations=iterations)
    study.validate()
    cfg = PaintConfig(image_size=size, seed=seed, model=model, model_file=model_file, num_iterations=iterations)
    cfg = cfg.replace(**paint_options) if paint_options else cfg
    cfg.validate(num_styles=1)
    problem = prepare(_as_image(content), [_as_image(style)], cfg)
    objective = GatysObjective(problem)
    h, w = problem.content01.shape[-2:]
    with torch.enable_grad():
        result = compare(objective, study, size=(w, h), seed=seed, callback=callback, cancel=cancel)
    result.info.update(
        {
            "preprocessing": problem.contract,
            "layers": list(problem.order),
            "content_weight": problem.config.content_weight,
            "style_weight": problem.config.style_weight,
            "tv_weight": problem.config.tv_weight,
            "lr_units": "0-255 pixel levels",
            "device": str(problem.device),
        }
    )
    return result


# --- BigGAN (impasto.gan) ----------------------------------------------------------------------------------


def classes(query: str | int | None = None) -> list:
    """ImageNet classes matching ``query`` (all 1000 for None): a number, WordNet id or part of a name.

    Returns ``impasto.gan.ImageNetClass`` records (index, wnid, names), exact name matches first.
    """
    from .gan.classes import search

    return search(query)


def _biggan(model: str | os.PathLike[str], device: str, precision: str, bn_stats: str):  # noqa: ANN202
    """Load (or reuse the last loaded) BigGAN; the cache is keyed on the folder's files and their mtimes."""
    from pathlib import Path

    from .devices import resolve_device
    from .gan.model import load_model
    from .zoo import biggan_format

    folder = biggan_format.resolve(model)
    stamp = tuple(
        (Path(folder) / n).stat().st_mtime_ns for n in (biggan_format.CONFIG_NAME, biggan_format.WEIGHTS_NAME)
        if (Path(folder) / n).exists()
    )  # fmt: skip
    key = (str(Path(folder).resolve()), stamp, str(resolve_device(device)), precision, bn_stats)
    cached = _BIGGAN_CACHE.get("model")
    if cached is not None and cached[0] == key:
        return cached[1]
    net = load_model(folder, device=device, precision=precision, bn_stats=bn_stats)
    _BIGGAN_CACHE["model"] = (key, net)
    return net


_BIGGAN_CACHE: dict = {}  # the last loaded BigGAN only (a loaded model is not per-run state; weights are read-only)


def generate(
    class_names: str | int | Sequence[str | int],
    *,
    samples: int = 1,
    truncation: float = 0.4,
    seed: int | None = None,
    model: str | os.PathLike[str] = "biggan-deep.256",
    device: str = "auto",
    precision: str = "auto",
    bn_stats: str = "reference",
    batch_size: int = 8,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
):  # noqa: ANN201 - returns impasto.gan.GenerateResult (imported lazily)
    """BigGAN samples: ``samples`` images of each class (names, synonyms, numbers or WordNet ids).

    ``truncation`` in (0, 1]; ``seed`` None draws a fresh one (recorded in the result). ``model``: a registered
    name (``biggan-deep.128/256/512``) or a folder with config.json + pytorch_model.bin. ``precision``: auto
    (fp16 on CUDA, bf16 on CPUs with fast bf16, else fp32), fp32, bf16 or fp16. Returns ``GenerateResult``
    whose ``images`` are (len(classes) * samples, 3, H, W) float32 in [-1, 1], class-major. Inputs are checked
    before the model loads.
    """
    from .gan.classes import resolve
    from .gan.sampling import GenerateConfig
    from .gan.sampling import generate as _generate

    names = [class_names] if isinstance(class_names, (str, int)) else list(class_names)
    config = GenerateConfig(
        classes=tuple(resolve(c) for c in names), samples=samples, truncation=truncation, seed=seed,
        batch_size=batch_size,
    ).validated()  # fmt: skip
    net = _biggan(model, device, precision, bn_stats)
    return _generate(net, config, callback=callback, cancel=cancel)


def interpolate(
    from_class: str | int,
    to_class: str | int,
    *,
    seed_from: int | None = None,
    seed_to: int | None = None,
    steps: int = 10,
    samples: int = 1,
    truncation: float = 0.4,
    slerp: bool = False,
    model: str | os.PathLike[str] = "biggan-deep.256",
    device: str = "auto",
    precision: str = "auto",
    bn_stats: str = "reference",
    batch_size: int = 8,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
):  # noqa: ANN201 - returns impasto.gan.InterpolateResult (imported lazily)
    """Frames from (from_class, seed_from) to (to_class, seed_to; default seed_from), linear or spherical
    (``slerp``) in noise and class-embedding space. ``steps`` >= 2 frames include both endpoints, which equal
    the plain ``generate`` samples. Returns ``InterpolateResult`` with ``frames`` (steps, samples, 3, H, W)
    float32 in [-1, 1]."""
    from .gan.classes import resolve
    from .gan.interpolation import InterpolateConfig
    from .gan.interpolation import interpolate as _interpolate

    config = InterpolateConfig(
        class_from=resolve(from_class), class_to=resolve(to_class), seed_from=seed_from, seed_to=seed_to,
        steps=steps, samples=samples, truncation=truncation, spherical=slerp, batch_size=batch_size,
    ).validated()  # fmt: skip
    net = _biggan(model, device, precision, bn_stats)
    return _interpolate(net, config, callback=callback, cancel=cancel)
