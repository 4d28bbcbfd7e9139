"""Task functions: what one worker does for one :class:`~impasto.workers.Task`, writing its own output.

Each takes plain arguments (paths, numbers, strings, dicts), does its piece with the same calls the single-process
API makes (:mod:`impasto.fast`, :mod:`impasto.gan`; not :mod:`impasto.api`, which sits above the workers), writes
its output atomically through :mod:`impasto.media` and returns the path(s) it wrote. Networks (and a prepared
style) live in :func:`~impasto.workers.worker_models`, so a worker loads them once for all its tasks.

The outputs equal the single-process run's for the same inputs and seed (tests/test_workers.py checks it): the
style is prepared exactly as ``api.stylize`` prepares it (once, from the same images and weights), and BigGAN
rows are drawn in the same batches ``api.generate`` draws them in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from . import worker_cancel, worker_device, worker_models


def _stamp(paths: Sequence[str]) -> tuple:
    """What decides a file's content for caching: its resolved path, size and mtime."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _renderer(
    *, styles: Sequence[str], style_weights: Sequence[float] | None, preset: str | None, options: Mapping[str, Any],
    method: str, layer: str, device: str,
) -> Callable[[Image.Image], Image.Image]:  # fmt: skip
    """``render(PIL) -> PIL`` for these settings, made once per worker (the style vector / matrices included).

    The same renderer as ``api.stylize`` builds (:func:`impasto.fast.render.style_side`), with the same options.
    """
    from ..fast.magenta import StylizeOptions
    from ..fast.render import style_side
    from ..imaging import load_image

    models = worker_models()
    opts = StylizeOptions(**dict(options))  # checked by style_side
    key = ("stylize-renderer", method, layer, device, preset, _stamp(styles), tuple(style_weights or ()), opts)

    def make() -> Callable[[Image.Image], Image.Image]:
        return style_side(
            method=method, layer=layer, styles=styles, style_weights=style_weights, preset=preset, opts=opts,
            device=device, models=models, read=load_image,
        ).image()  # fmt: skip

    return models.get(key, make)


def stylize_image(
    input: str,  # noqa: A002 - the task's input file
    output: str,
    *,
    styles: Sequence[str] = (),
    style_weights: Sequence[float] | None = None,
    preset: str | None = None,
    options: Mapping[str, Any] | None = None,
    method: str = "magenta",
    layer: str = "r41",
    device: str = "auto",
) -> str:
    """Stylise the photo at ``input`` and write it (atomically) to ``output``; returns ``output``.

    ``styles``: style image paths (or ``preset`` ``"7"`` / ``"3:0.5,12:0.5"``); ``options``: the fields of
    :class:`impasto.fast.magenta.StylizeOptions` (size, strength, preserve_color, ...); ``method``: ``"magenta"``
    or ``"linear"`` (decided by the caller, so every worker uses the same); ``device`` as for ``api.stylize``
    (``"auto"`` becomes this worker's device).
    """
    from ..imaging import load_image
    from ..media import save_image

    render = _renderer(
        styles=list(styles), style_weights=style_weights, preset=preset, options=options or {}, method=method,
        layer=layer, device=worker_device(device),
    )  # fmt: skip
    picture = render(load_image(input))
    save_image(picture, output)
    return output


def _biggan(model: str, device: str, precision: str, bn_stats: str) -> Any:
    """The BigGAN of ``model`` (a registered name or a folder), loaded once per worker; the same key rule as
    ``api._biggan`` (folder, its files' mtimes, device, precision, batch-norm statistics rule)."""
    from ..devices import resolve_device
    from ..gan.model import load_model
    from ..zoo import biggan_format

    folder = biggan_format.resolve(model)
    stamp = tuple(
        (Path(folder) / n).stat().st_mtime_ns for n in (biggan_format.CONFIG_NAME, biggan_format.WEIGHTS_NAME)
        if (Path(folder) / n).exists()
    )  # fmt: skip
    key = ("biggan", str(Path(folder).resolve()), stamp, str(resolve_device(device)), precision, bn_stats)
    return worker_models().get(key, lambda: load_model(folder, device=device, precision=precision, bn_stats=bn_stats))


def generate_rows(
    *,
    classes: Sequence[int],
    samples: int,
    rows: Sequence[int],
    paths: Mapping[int, str],
    seed: int,
    truncation: float = 0.4,
    model: str = "biggan-deep.256",
    device: str = "auto",
    precision: str = "auto",
    bn_stats: str = "reference",
    batch_size: int = 8,
    meta: Mapping[str, Any] | None = None,
    meta_key: str = "impasto",
) -> list[str]:
    """Draw the BigGAN ``rows`` (``i * samples + j``: class ``classes[i]``, sample ``j``) and write row ``r`` to
    ``paths[r]`` as PNG (atomically), with ``meta`` plus the row's class and sample as JSON in the text chunk
    ``meta_key``. Returns the paths written, in row order.

    The noise depends only on ``seed`` and ``samples``; a task of ``batch_size`` consecutive rows is one batch,
    exactly as ``api.generate`` draws those rows, so the pictures are bit-identical to the single-process run.
    """
    from PIL.PngImagePlugin import PngInfo

    from ..events import Preview
    from ..gan.sampling import GenerateConfig
    from ..gan.sampling import generate as _generate
    from ..media import atomic_write

    wanted = {int(r) for r in rows}
    skip = frozenset(r for r in range(len(classes) * samples) if r not in wanted)
    config = GenerateConfig(
        classes=tuple(int(c) for c in classes), samples=samples, truncation=truncation, seed=seed,
        batch_size=batch_size, skip=skip,
    ).validated()  # fmt: skip
    net = _biggan(model, worker_device(device), precision, bn_stats)
    written: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, Preview) and "row" in event.info:
            row = int(event.info["row"])
            info = PngInfo()
            info.add_text(meta_key, json.dumps({**(meta or {}), "class": event.info["class"],
                                                "sample": event.info["sample"]}))  # fmt: skip
            picture = event.image
            atomic_write(paths[row], lambda tmp: picture.save(tmp, format="PNG", pnginfo=info))
            written.append(str(paths[row]))

    _generate(net, config, callback=on_event, cancel=worker_cancel())
    return written
