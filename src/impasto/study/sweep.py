"""Sweeps: every combination of some painting settings, painted, scored, ranked and laid out to browse.

A grid is a list of items ``NAME=V1,V2,...`` naming :class:`~impasto.gatys.config.PaintConfig` fields (``-`` and
``_`` alike); each value is read with the field's type (``1e3`` for a float, ``2`` for an int, ``true``/``false``
for a flag, ``none`` for "the network's default"). A list field (``content_layers``, ``style_layers``, ``scales``,
``scale_iterations``, ``style_blend_weights``) takes one list per value, its items joined with ``+``:
``style_layers=relu1_1+relu2_1,relu3_1+relu4_1`` is two values. The entries are the Cartesian product, the first
item varying slowest.

Each entry is one task, :func:`run_entry` (``"impasto.study.sweep:run_entry"``), run in this process or in a
worker (:mod:`impasto.workers`): it paints with :func:`impasto.gatys.optimize.paint` exactly as ``impasto paint``
does with the same settings (same pixels), writes ``<slug>.png`` and then ``<slug>.png.json`` (its settings, the full
config, the inputs' hashes, the scores of :mod:`impasto.study.scoring` and the seconds) beside it, both atomically.
An entry is finished when both files are there and the json's config and inputs are this sweep's: a re-run with
``resume=True`` keeps it, so a stopped or killed sweep paints only what is missing, and an entry that ran twice
(a retried worker) is still present exactly once.

:func:`run_sweep` writes, into the sweep's folder, ``results.json`` and ``results.csv`` (rewritten as each entry
finishes, ``"complete": false`` until every entry has), and at the end (or after Ctrl-C) ``contact-sheet.jpg``
(the entries in rank order, each labelled with its settings and scores) and ``index.html`` (a static page: the
images and a table sortable by any column; nothing is fetched from the network). Orchestration writes files, as
:func:`impasto.api.video` does: its outputs ARE files.

Ranking (``rank_by``): a score from :data:`RANK_NAMES` -- ``ssim``/``psnr`` higher is better, ``gram``, ``w2``,
``color_swd`` and ``seconds`` lower is better -- or ``balanced`` (the default): the mean of an entry's rank by
content SSIM and its rank by style W2 distance, so the top entries keep the photo AND match the style.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import io
import itertools
import json
import logging
import math
import os
import re
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from PIL import Image, ImageDraw, ImageFont

from ..errors import Cancelled, ConfigError
from ..events import Callback, CancelToken, Progress, Started, emit
from ..modelcache import ModelCache
from .scoring import SCORE_NAMES, feature_source, flat_scores, jsonable, score_picture, source_key

log = logging.getLogger(__name__)

__all__ = [
    "ENTRY_FN", "GRID_EXCLUDED", "RANK_NAMES", "RESULT_FILES", "Axis", "Entry", "SweepPlan", "SweepResult",
    "check_folder", "contact_sheet", "grid_fields", "index_html", "parse_grid", "plan_sweep", "rank_rows",
    "results_csv", "results_json", "run_entry", "run_sweep",
]  # fmt: skip

ENTRY_FN = "impasto.study.sweep:run_entry"
RANK_NAMES = ("balanced", *SCORE_NAMES, "seconds")
RESULTS_JSON, RESULTS_CSV, CONTACT_SHEET, INDEX_HTML = "results.json", "results.csv", "contact-sheet.jpg", "index.html"
RESULT_FILES = (RESULTS_JSON, RESULTS_CSV, CONTACT_SHEET, INDEX_HTML)
# fields a grid cannot vary: where it runs, what it writes, how it resumes (a sweep resumes entry by entry)
GRID_EXCLUDED = frozenset(
    {"gpu", "multidevice_strategy", "backend", "cudnn_autotune", "print_iter", "save_iter", "save_all_scales",
     "checkpoint_every", "checkpoint_path", "resume", "disable_check", "max_memory"}
)  # fmt: skip
# an entry saves no step images and has no checkpoint: it is redone whole when it did not finish
_PER_ENTRY = {"save_iter": 0, "resume": False, "checkpoint_every": 0, "checkpoint_path": None}
_TRUE, _FALSE, _NONE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}, {"none", "default"}


# --- the grid -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One grid item: a PaintConfig field and its values (read with the field's type) as written."""

    name: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    """One combination: ``settings`` field -> value (JSON-ready: lists for tuples), ``labels`` field -> the value
    as written, ``slug`` the file name stem (``style_weight-1e3_seed-0``)."""

    settings: Mapping[str, Any]
    labels: Mapping[str, str]
    slug: str

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.labels.items())


def _kind(hint: Any) -> tuple[type, bool, bool]:  # noqa: ANN401
    """(item type, is a list, may be None) of a PaintConfig type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and len(typing.get_args(hint)) > len(args)
    if optional and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def grid_fields() -> dict[str, tuple[type, bool, bool]]:
    """The PaintConfig fields a grid may vary: name -> (item type, is a list, may be None)."""
    from ..gatys.config import PaintConfig

    hints = typing.get_type_hints(PaintConfig)
    return {
        f.name: _kind(hints[f.name])
        for f in dataclasses.fields(PaintConfig)
        if f.name not in GRID_EXCLUDED and f.metadata.get("cli", True)
    }


def _read_item(text: str, kind: type, name: str, item: str) -> Any:  # noqa: ANN401
    def bad(what: str) -> ConfigError:
        return ConfigError(f"grid item {item!r}: {text!r} is not {what} (the type of {name})")

    if kind is bool:
        low = text.lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise bad("true or false")
    if kind is int:
        try:
            number = float(text)
        except ValueError:
            raise bad("a whole number") from None
        if not number.is_integer():
            raise bad("a whole number")
        return int(number)
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise bad("a number") from None
        if not math.isfinite(number):
            raise bad("a finite number")
        return number
    return text


def _read_value(text: str, spec: tuple[type, bool, bool], name: str, item: str) -> Any:  # noqa: ANN401
    kind, is_list, optional = spec
    if optional and text.lower() in _NONE:
        return None
    if is_list:
        if name == "scales" and text.lower() == "auto":
            return "auto"
        parts = [p.strip() for p in text.split("+")]
        if any(not p for p in parts):
            raise ConfigError(f"grid item {item!r}: {text!r} has an empty list item; join a list's items with +")
        return [_read_item(p, kind, name, item) for p in parts]
    return _read_item(text, kind, name, item)


def parse_grid(items: Sequence[str] | str) -> list[Axis]:
    """``["style_weight=1e2,1e3", "seed=0,1"]`` (or one string, items separated by spaces) -> axes.

    Raises ConfigError (one sentence) for an item that is not NAME=VALUES, an unknown or excluded field (listing
    the allowed names), a value the field's type cannot read, a field given twice or a value given twice.
    """
    texts = items.split() if isinstance(items, str) else [t for s in items for t in s.split()]
    fields = grid_fields()
    axes: list[Axis] = []
    if not texts:
        raise ConfigError("the grid is empty; give items like style_weight=1e2,1e3 seed=0,1")
    for item in texts:
        name, eq, rest = item.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or not name:
            raise ConfigError(f"grid item {item!r} is not NAME=VALUE,VALUE,... (e.g. style_weight=1e2,1e3)")
        if name not in fields:
            why = "cannot be varied in a sweep" if name in GRID_EXCLUDED else "is not a paint setting"
            raise ConfigError(f"grid item {item!r}: {name!r} {why}; allowed: {', '.join(sorted(fields))}")
        if any(a.name == name for a in axes):
            raise ConfigError(f"grid item {item!r}: {name} is already in the grid; give all its values in one item")
        raw = [v.strip() for v in rest.split(",")]
        if not rest.strip() or any(not v for v in raw):
            raise ConfigError(f"grid item {item!r} has an empty value; give values like {name}=A,B")
        values = [_read_value(v, fields[name], name, item) for v in raw]
        seen: dict[str, str] = {}
        for v, t in zip(values, raw, strict=True):
            key = json.dumps(v)
            if key in seen:
                raise ConfigError(f"grid item {item!r}: {t!r} and {seen[key]!r} are the same value")
            seen[key] = t
        axes.append(Axis(name, tuple(values), tuple(raw)))
    return axes


_UNSAFE = re.compile(r"[^A-Za-z0-9.+_-]+")


def _slug(labels: Mapping[str, str]) -> str:
    parts = [f"{k}-{_UNSAFE.sub('-', v).strip('-.') or 'x'}" for k, v in labels.items()]
    return "_".join(parts)[:200] or "entry"


def grid_entries(axes: Sequence[Axis]) -> list[Entry]:
    """Every combination of the axes' values, the first axis varying slowest."""
    entries: list[Entry] = []
    for combo in itertools.product(*(range(len(a.values)) for a in axes)):
        settings = {a.name: a.values[i] for a, i in zip(axes, combo, strict=True)}
        labels = {a.name: a.texts[i] for a, i in zip(axes, combo, strict=True)}
        entries.append(Entry(settings, labels, _slug(labels)))
    slugs: dict[str, Entry] = {}
    for e in entries:
        if e.slug.lower() in slugs:
            raise ConfigError(
                f"grid entries {slugs[e.slug.lower()].label()!r} and {e.label()!r} would have the same file name "
                f"{e.slug}.png; write the values differently"
            )
        slugs[e.slug.lower()] = e
    return entries


# --- the plan: entries, configs, inputs, checks -----------------------------------------------------------------


def _jsonable_config(cfg: Any) -> dict[str, Any]:  # noqa: ANN401 - a PaintConfig
    """A PaintConfig as a plain dict (tuples as lists), for a task's kwargs and the entry's json."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def file_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (first 20 hex digits): what a resumed entry's inputs must match."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


@dataclass
class SweepPlan:
    """What a sweep will paint, checked before any work."""

    content: str  # absolute paths
    styles: list[str]
    axes: list[Axis]
    entries: list[Entry]
    configs: list[dict[str, Any]]  # per entry: the full PaintConfig as a plain dict
    fixed: dict[str, Any]  # the settings given outside the grid (non-default fields)
    inputs: dict[str, Any]  # content and style hashes
    score_network: dict[str, Any]  # {"model", "model_file"}: one network scores every entry
    folder: Path

    def output(self, entry: Entry) -> Path:
        return self.folder / f"{entry.slug}.png"


def plan_sweep(
    content: str | os.PathLike[str],
    styles: Sequence[str | os.PathLike[str]],
    base: Any,  # noqa: ANN401 - a PaintConfig: the fixed settings
    grid: Sequence[str] | str | Sequence[Axis],
    folder: str | os.PathLike[str],
    *,
    models: ModelCache | None = None,
) -> SweepPlan:
    """Parse the grid, build and validate every entry's config (layer names against the network), hash the inputs.

    ``styles``: style image files (folders already expanded). Raises ConfigError before anything is written.
    """
    from ..gatys.config import PaintConfig
    from ..imaging import load_image

    axes: list[Axis] = (
        list(cast("Sequence[Axis]", grid)) if grid and isinstance(next(iter(grid)), Axis) else parse_grid(grid)  # type: ignore[arg-type]
    )
    entries = grid_entries(axes)
    content_path = str(Path(content).resolve())
    style_paths = [str(Path(s).resolve()) for s in styles]
    if not style_paths:
        raise ConfigError("at least one style image is needed")
    for p in (content_path, *style_paths):
        load_image(p)  # ImageError / ConfigError for a file that is not a readable image
    defaults = PaintConfig()
    fixed = {
        f.name: getattr(base, f.name)
        for f in dataclasses.fields(base)
        if getattr(base, f.name) != getattr(defaults, f.name) and f.name not in ("save_iter", "print_iter")
    }
    configs: list[dict[str, Any]] = []
    checked: set[tuple] = set()
    for entry in entries:
        try:
            cfg = PaintConfig(**{**_jsonable_config(base), **entry.settings, **_PER_ENTRY})
            cfg.validate(num_styles=len(style_paths))
        except ConfigError as exc:
            raise ConfigError(f"grid entry {entry.label()}: {exc}") from None
        if cfg.init == "image" and cfg.init_image is not None:
            load_image(cfg.init_image)
        source = feature_source(cfg.model, cfg.model_file, disable_check=cfg.disable_check, models=models)
        layers = (tuple(cfg.content_layers or ()), tuple(cfg.style_layers or ()), cfg.model, cfg.model_file)
        if layers not in checked:
            checked.add(layers)
            try:
                source.check_layers(list(cfg.content_layers or source.default_content_layers), "content layer")
                source.check_layers(list(cfg.style_layers or source.default_style_layers), "style layer")
            except ConfigError as exc:
                raise ConfigError(f"grid entry {entry.label()}: {exc}") from None
        configs.append(_jsonable_config(cfg.resolve_choices(source.recommended)))  # the start and loss it paints
    varied = {a.name for a in axes}
    network = {"model": None, "model_file": None}
    if not varied & {"model", "model_file"}:  # one network for all: score in it; else in the default one
        network = {"model": base.model, "model_file": base.model_file}
    inputs = {"content": file_hash(content_path), "styles": [file_hash(p) for p in style_paths]}
    return SweepPlan(
        content_path, style_paths, axes, entries, configs, fixed, inputs, network, Path(folder)
    )  # fmt: skip


def _stray_parts_of(folder: Path, names: Sequence[str]) -> list[Path]:
    from ..media import stray_parts

    mine = set(names)
    out = []
    for part in stray_parts(folder):
        # ".NAME.XXXX.part" -> NAME
        stem = part.name[1:].rsplit(".", 2)[0] if part.name.count(".") >= 3 else ""
        if stem in mine:
            out.append(part)
    return out


def _sidecar(output: Path) -> Path:
    """Where a painting's record sits: beside it, its file name + ``.json`` (as ``impasto paint``'s OUT.json)."""
    return output.with_name(output.name + ".json")


def _finished(plan: SweepPlan, index: int) -> dict | None:
    """The record of entry ``index`` when its image and json are there and were made with this sweep's config and
    inputs; None when it is not finished. ConfigError when it was made with other settings or inputs."""
    out = plan.output(plan.entries[index])
    side = _sidecar(out)
    if not (out.is_file() and side.is_file()):
        return None
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # torn or foreign: paint it again
    if not isinstance(record, dict):
        return None
    if record.get("config") != json.loads(json.dumps(plan.configs[index])):
        old, new = record.get("config") or {}, plan.configs[index]
        diff = next((k for k in new if old.get(k) != json.loads(json.dumps(new[k]))), "the settings")
        raise ConfigError(
            f"cannot resume: {out} was painted with other settings ({diff}: {old.get(diff)!r} there, "
            f"{new.get(diff)!r} now); run with the same settings or pass --overwrite to paint every entry again"
        )
    if record.get("inputs") != plan.inputs:
        raise ConfigError(
            f"cannot resume: {out} was painted from other content/style images; pass --overwrite to paint every "
            "entry again"
        )
    return record


def check_folder(plan: SweepPlan, *, resume: bool, overwrite: bool) -> list[dict | None]:
    """Before any work: the folder is empty (or missing), or ``resume`` continues a sweep there, or ``overwrite``
    paints every entry again. Returns, per entry, its finished record (``resume``) or None. Writes nothing."""
    from ..media import check_writable

    folder = plan.folder
    if resume and overwrite:
        raise ConfigError("give --resume (continue the sweep) or --overwrite (paint every entry again), not both")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output {folder} exists and is not a folder")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise ConfigError(f"output folder's parent {folder.parent} does not exist")
        check_writable(folder.parent)
        return [None] * len(plan.entries)
    check_writable(folder)
    present = sorted(p.name for p in folder.iterdir())
    if present and not (resume or overwrite):
        raise ConfigError(
            f"{folder} is not empty (it has {present[0]}{' and more' if len(present) > 1 else ''}); pass --resume to "
            "continue a sweep there or --overwrite to paint every entry again"
        )
    if overwrite or not resume:
        return [None] * len(plan.entries)
    return [_finished(plan, i) for i in range(len(plan.entries))]


# --- one entry (a task) ---------------------------------------------------------------------------------------


def _in_worker() -> tuple[ModelCache, Callable[[str], str], CancelToken | None]:
    """This worker's model cache, device chooser and cancel token (:mod:`impasto.workers`)."""
    try:
        from ..workers import worker_cancel, worker_device, worker_models
    except ImportError:  # an older workers package: no worker state
        return ModelCache(), lambda d: d, None
    return worker_models(), worker_device, worker_cancel()


def run_entry(
    *,
    content: str,
    styles: Sequence[str],
    config: Mapping[str, Any],
    output: str,
    settings: Mapping[str, Any],
    labels: Mapping[str, str],
    score_network: Mapping[str, Any],
    inputs: Mapping[str, Any],
    models: ModelCache | None = None,
    cancel: CancelToken | None = None,
    callback: Callback | None = None,
) -> dict:
    """Paint one sweep entry, write ``output`` (PNG) and then its json beside it (atomically); return the record.

    The painting is :func:`impasto.gatys.optimize.paint` with ``config`` (a plain-dict PaintConfig) on the images
    at ``content``/``styles``, loaded as ``impasto paint`` loads them, so the pixels equal ``impasto paint``'s.
    The record: ``output`` (file name), ``settings``, ``labels``, ``config``, ``inputs``, ``scores`` (nested, as
    ``impasto.api.score``), ``seconds`` (painting), ``score_seconds``, ``steps``, ``final_loss``, ``model``.
    ``models``: where networks stay loaded (default: this worker's cache). ``cancel``/``callback`` (in-process
    only): passed to the painting.
    """
    from ..fast.magenta import stylized_start
    from ..gatys.config import PaintConfig
    from ..gatys.multidevice import parse_devices
    from ..gatys.optimize import paint
    from ..imaging import load_image
    from ..media import save_image, tensor_to_pil, write_text

    cache, device_of, worker_token = _in_worker()
    models = models if models is not None else cache
    cancel = cancel if cancel is not None else worker_token
    cfg = PaintConfig(**dict(config))
    if device_of(cfg.gpu) != cfg.gpu:  # the device this worker was given (the recorded config keeps "auto")
        cfg = cfg.replace(gpu=device_of(cfg.gpu))
    content_image = load_image(content)
    style_images = [load_image(s) for s in styles]
    source = feature_source(cfg.model, cfg.model_file, disable_check=cfg.disable_check, models=models)
    cfg = cfg.resolve_choices(source.recommended)
    init = load_image(cfg.init_image) if (cfg.init == "image" and cfg.init_image is not None) else None
    if cfg.init == "stylized":
        init = stylized_start(
            content_image, style_images, cfg.blend_weights(len(style_images)), cfg.image_size,
            parse_devices(cfg.gpu)[0], models,
        )  # fmt: skip
    result = paint(content_image, style_images, cfg, init_image=init, source=source, cancel=cancel, callback=callback)
    picture = tensor_to_pil(result.image)
    out = Path(output)
    save_image(picture, out)
    watch = time.perf_counter()
    s_model, s_file = score_network.get("model"), score_network.get("model_file")
    scorer = feature_source(s_model, s_file, models=models)
    scores = score_picture(
        picture, content_image, style_images, source=scorer, name=scorer.display, key=source_key(s_model, s_file),
        device=parse_devices(cfg.gpu)[0], blend=cfg.blend_weights(len(style_images)), models=models,
    )  # fmt: skip
    record = {
        "output": out.name,
        "settings": dict(settings),
        "labels": dict(labels),
        "config": dict(config),
        "inputs": dict(inputs),
        "scores": scores,
        "seconds": round(float(result.elapsed), 3),
        "score_seconds": round(time.perf_counter() - watch, 3),
        "steps": result.steps,
        "final_loss": result.final_loss,
        "model": result.model,
    }
    write_text(_sidecar(out), json.dumps(jsonable(record), indent=1))
    return record


# --- results --------------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:  # noqa: ANN401
    if value is None:
        return None
    try:
        return float(value)  # "inf" read back from a json
    except (TypeError, ValueError):
        return None


def _row(plan: SweepPlan, index: int, record: dict | None) -> dict[str, Any]:
    entry = plan.entries[index]
    row: dict[str, Any] = {
        "entry": index + 1,
        "output": f"{entry.slug}.png",
        "settings": dict(entry.settings),
        "labels": dict(entry.labels),
        "status": "not run",
        "scores": dict.fromkeys(SCORE_NAMES),
        "seconds": None,
        "rank": None,
    }
    if record is not None:
        flat = flat_scores(record.get("scores"))
        row.update(
            status="finished",
            scores={k: _number(v) for k, v in flat.items()},
            seconds=_number(record.get("seconds")),
            network=(record.get("scores") or {}).get("network"),
            steps=record.get("steps"),
            final_loss=_number(record.get("final_loss")),
        )
    return row


def _sort_key(name: str, row: dict) -> float | None:
    value = row["seconds"] if name == "seconds" else row["scores"].get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return -value if SCORE_NAMES.get(name, False) else value


def _ranks(rows: Sequence[dict], name: str) -> dict[int, float]:
    """entry -> rank (1 = best; ties share the mean of their places) by one score, over rows that have it."""
    keyed = [(k, r["entry"]) for r in rows if (k := _sort_key(name, r)) is not None]
    keyed.sort()
    ranks: dict[int, float] = {}
    i = 0
    while i < len(keyed):
        j = i
        while j + 1 < len(keyed) and keyed[j + 1][0] == keyed[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[keyed[k][1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def rank_rows(rows: Sequence[dict], by: str) -> list[dict]:
    """``rows`` sorted best first by ``by`` (:data:`RANK_NAMES`), each given ``rank`` (1, 2, ...; None for an
    entry without that score, which goes last, in entry order). Ties keep the entry order."""
    if by not in RANK_NAMES:
        raise ConfigError(f"cannot rank by {by!r}; choose one of {', '.join(RANK_NAMES)}")
    if by == "balanced":
        a, b = _ranks(rows, "ssim"), _ranks(rows, "w2")
        key = {e: (a[e] + b[e]) / 2 for e in a if e in b}
    else:
        key = {r["entry"]: k for r in rows if (k := _sort_key(by, r)) is not None}
    ranked = sorted((r for r in rows if r["entry"] in key), key=lambda r: (key[r["entry"]], r["entry"]))
    rest = [r for r in rows if r["entry"] not in key]
    out = []
    for n, r in enumerate(ranked, 1):
        out.append({**r, "rank": n})
    out.extend({**r, "rank": None} for r in rest)
    return out


def results_json(plan: SweepPlan, rows: Sequence[dict], *, rank_by: str, complete: bool) -> str:
    """``results.json``: the sweep (inputs, grid, fixed settings, scoring network) and the ranked rows."""
    doc = {
        "complete": complete,
        "rank_by": rank_by,
        "content": plan.content,
        "styles": plan.styles,
        "grid": {a.name: list(a.texts) for a in plan.axes},
        "fixed": {k: list(v) if isinstance(v, tuple) else v for k, v in plan.fixed.items()},
        "score_network": plan.score_network,
        "finished": sum(r["status"] == "finished" for r in rows),
        "entries": list(rows),
    }
    return json.dumps(jsonable(doc), indent=1) + "\n"


def _fmt(value: Any) -> str:  # noqa: ANN401
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6g}"
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


def results_csv(plan: SweepPlan, rows: Sequence[dict]) -> str:
    """``results.csv``: rank, output, one column per grid field (values as written), the scores, seconds, status."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = [a.name for a in plan.axes]
    w.writerow(["rank", "output", *names, *SCORE_NAMES, "seconds", "status"])
    for r in rows:
        w.writerow(
            [_fmt(r["rank"]), r["output"], *(r["labels"][n] for n in names),
             *(_fmt(r["scores"][k]) for k in SCORE_NAMES), _fmt(r["seconds"]), r["status"]]
        )  # fmt: skip
    return buf.getvalue()


def _score_line(row: dict) -> str:
    s = row["scores"]
    if row["status"] != "finished":
        return "not run"
    parts = [f"#{row['rank']}" if row["rank"] is not None else "#-"]
    for k, label in (("ssim", "SSIM"), ("w2", "W2"), ("color_swd", "colour")):
        if s.get(k) is not None:
            parts.append(f"{label} {s[k]:.3g}")
    return " ".join(parts)


def contact_sheet(plan: SweepPlan, rows: Sequence[dict], *, thumb: int = 256, ncol: int | None = None) -> Image.Image:
    """The entries in ``rows`` order (rank order), each a ``thumb``-px thumbnail over its label: one line per
    grid setting and a line of scores (rank, SSIM, W2, colour distance). Entries not run are grey tiles."""
    font = ImageFont.load_default(size=max(10, thumb // 20))
    line_h = cast(int, font.size + 3 if hasattr(font, "size") else 14)  # type: ignore[union-attr]
    n_lines = len(plan.axes) + 1
    pictures: list[Image.Image | None] = []
    for r in rows:
        path = plan.folder / r["output"]
        pic = None
        if r["status"] == "finished" and path.is_file():
            with Image.open(path) as im:
                pic = im.convert("RGB")
            pic.thumbnail((thumb, thumb))
        pictures.append(pic)
    # tiles as large as the largest thumbnail (a landscape sweep gets landscape tiles)
    tw = max((p.width for p in pictures if p is not None), default=thumb)
    th = max((p.height for p in pictures if p is not None), default=thumb)
    tiles = []
    for r, pic in zip(rows, pictures, strict=True):
        tile = Image.new("RGB", (tw, th + n_lines * line_h + 6), "white")
        if pic is None:
            tile.paste((200, 200, 200), (0, 0, tw, th))
        else:
            tile.paste(pic, ((tw - pic.width) // 2, (th - pic.height) // 2))
        draw = ImageDraw.Draw(tile)
        y = th + 3
        for line in [f"{k}={v}" for k, v in r["labels"].items()] + [_score_line(r)]:
            draw.text((4, y), line, fill=(0, 0, 0), font=font)
            y += line_h
        tiles.append(tile)
    from ..media import make_grid

    ncol = ncol or min(len(tiles), max(1, math.ceil(math.sqrt(len(tiles)))))
    return make_grid(tiles, ncol, padding=6)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>impasto sweep</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; }}
th {{ cursor: pointer; background: #f4f4f4; user-select: none; }} td.n {{ text-align: right; font-variant-numeric:
tabular-nums; }} img {{ max-width: 160px; max-height: 160px; display: block; }} .off {{ color: #999; }}
</style></head><body>
<h1>impasto sweep{status}</h1>
<p>Content <code>{content}</code>, style {styles}. Ranked by <b>{rank_by}</b>{scored}. Click a column to sort.
<a href="contact-sheet.jpg">Contact sheet</a> &middot; <a href="results.csv">results.csv</a> &middot;
<a href="results.json">results.json</a></p>
<table id="t"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<script>
document.querySelectorAll("#t th").forEach(function (th, col) {{
  th.addEventListener("click", function () {{
    var body = document.querySelector("#t tbody"), rows = Array.from(body.rows);
    var up = th.dataset.dir !== "up"; th.dataset.dir = up ? "up" : "down";
    rows.sort(function (a, b) {{
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      if (x === "" && y !== "") return 1; if (y === "" && x !== "") return -1;
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return up ? c : -c;
    }});
    rows.forEach(function (r) {{ body.appendChild(r); }});
  }});
}});
</script></body></html>
"""


def index_html(plan: SweepPlan, rows: Sequence[dict], *, rank_by: str, complete: bool) -> str:
    """``index.html``: a static page (no network) with each entry's image and a table sortable by any column."""
    names = [a.name for a in plan.axes]
    cols = ["rank", "image", *names, *SCORE_NAMES, "seconds", "status"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    lines = []
    for r in rows:
        cells = [f'<td class="n" data-v="{_fmt(r["rank"])}">{_fmt(r["rank"])}</td>']
        if r["status"] == "finished":
            src = html.escape(r["output"])
            cells.append(f'<td data-v="{r["entry"]}"><a href="{src}"><img src="{src}" alt="{src}"></a></td>')
        else:
            cells.append(f'<td data-v="{r["entry"]}" class="off">not run</td>')
        for n in names:
            v = html.escape(r["labels"][n])
            value = r["settings"][n]
            sort = value if isinstance(value, (int, float)) and not isinstance(value, bool) else v
            cells.append(f'<td data-v="{html.escape(str(sort))}">{v}</td>')
        for k in SCORE_NAMES:
            v = r["scores"][k]
            shown = _fmt(v)
            sort = "" if v is None else ("1e308" if math.isinf(v) else repr(v))
            cells.append(f'<td class="n" data-v="{sort}">{shown}</td>')
        cells.append(f'<td class="n" data-v="{_fmt(r["seconds"])}">{_fmt(r["seconds"])}</td>')
        cells.append(f'<td data-v="{r["status"]}">{r["status"]}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    net = plan.score_network.get("model") or plan.score_network.get("model_file")
    return _PAGE.format(
        status="" if complete else " (incomplete)",
        content=html.escape(Path(plan.content).name),
        styles=", ".join(f"<code>{html.escape(Path(s).name)}</code>" for s in plan.styles),
        rank_by=html.escape(rank_by),
        scored=f"; style distances in {html.escape(str(net))}" if net else "",
        head=head,
        body="\n".join(lines),
    )


# --- the whole sweep ------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: ``rows`` ranked best first (see :func:`rank_rows`), whether every entry is
    finished, how many were painted in this run and how many kept from an earlier one, the files written."""

    rows: list[dict]
    complete: bool
    rank_by: str
    painted: int
    kept: int
    folder: Path
    files: list[Path] = field(default_factory=list)
    elapsed: float = 0.0


EntryHook = Callable[[dict, int, int], None]  # (record, finished so far, entries in all)


def _write_results(plan: SweepPlan, records: Sequence[dict | None], rank_by: str, *, final: bool) -> tuple[list, list]:
    from ..media import save_image, write_text

    rows = rank_rows([_row(plan, i, r) for i, r in enumerate(records)], rank_by)
    complete = all(r is not None for r in records)
    files = [
        write_text(plan.folder / RESULTS_JSON, results_json(plan, rows, rank_by=rank_by, complete=complete)),
        write_text(plan.folder / RESULTS_CSV, results_csv(plan, rows)),
    ]
    if final:
        if any(r is not None for r in records):
            sheet = contact_sheet(plan, rows)
            files.append(save_image(sheet, plan.folder / CONTACT_SHEET))
        files.append(write_text(plan.folder / INDEX_HTML, index_html(plan, rows, rank_by=rank_by, complete=complete)))
    return rows, files


def entry_kwargs(plan: SweepPlan, index: int) -> dict[str, Any]:
    """The keyword arguments of :func:`run_entry` for entry ``index`` (plain: paths, numbers, dicts)."""
    entry = plan.entries[index]
    return {
        "content": plan.content,
        "styles": list(plan.styles),
        "config": plan.configs[index],
        "output": str(plan.output(entry).resolve()),
        "settings": dict(entry.settings),
        "labels": dict(entry.labels),
        "score_network": dict(plan.score_network),
        "inputs": dict(plan.inputs),
    }


def run_sweep(
    plan: SweepPlan,
    done: Sequence[dict | None],
    *,
    rank_by: str = "balanced",
    executor: Any = None,  # noqa: ANN401 - an impasto.workers.Executor, or None: in this process
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    on_entry: EntryHook | None = None,
    models: ModelCache | None = None,
) -> SweepResult:
    """Paint the entries of ``plan`` that ``done`` (from :func:`check_folder`) lacks, then write the results.

    ``executor`` None: one entry after another in this process (``cancel`` stops the running painting at its
    next step); else one Task per entry on the executor (``Task(key=output, fn=ENTRY_FN, kwargs=...)``), which
    retries a task whose worker died and stops the job on ``cancel``. ``callback`` gets ``Progress(step=entries
    finished, total=entries to paint)``; ``on_entry(record, finished, total)`` as each entry finishes (entries
    kept from an earlier run included in ``finished``). results.json/csv are rewritten after every entry. On
    Ctrl-C or a failing entry the results of what finished are written (marked incomplete: contact sheet and
    index included) and the error is re-raised -- :class:`Cancelled` with ``partial`` the SweepResult.
    """
    rank_names = RANK_NAMES
    if rank_by not in rank_names:
        raise ConfigError(f"cannot rank by {rank_by!r}; choose one of {', '.join(rank_names)}")
    started = time.perf_counter()
    records: list[dict | None] = list(done)
    kept = sum(r is not None for r in records)
    todo = [i for i, r in enumerate(records) if r is None]
    plan.folder.mkdir(parents=True, exist_ok=True)
    names = [plan.output(plan.entries[i]).name for i in todo] + [_sidecar(plan.output(plan.entries[i])).name
                                                                  for i in todo]  # fmt: skip
    for part in _stray_parts_of(plan.folder, names):
        part.unlink(missing_ok=True)  # temporaries a killed writer of these entries left
    by_output = {str(plan.output(plan.entries[i]).resolve()): i for i in todo}
    painted = 0

    def finished(index: int, record: dict) -> None:
        nonlocal painted
        records[index] = record
        painted += 1
        _write_results(plan, records, rank_by, final=False)
        if on_entry is not None:
            on_entry(record, sum(r is not None for r in records), len(records))

    try:
        if not todo:
            pass
        elif executor is None:
            cache = models if models is not None else ModelCache()
            emit(callback, Started(total=len(todo), info={"workers": 1, "executor": "this process"}))
            for n, i in enumerate(todo):
                if cancel is not None and cancel.cancelled:
                    raise Cancelled("cancelled")
                finished(i, run_entry(**entry_kwargs(plan, i), models=cache, cancel=cancel))
                emit(callback, Progress(step=n + 1, total=len(todo), losses={}, elapsed=time.perf_counter() - started))
        else:
            from ..workers import Task

            tasks = [Task(key=str(plan.output(plan.entries[i]).resolve()), fn=ENTRY_FN, kwargs=entry_kwargs(plan, i))
                     for i in todo]  # fmt: skip
            for res in executor.run(tasks, callback=callback, cancel=cancel):
                index = by_output[res.key]
                if records[index] is None:  # a task retried after its worker died reports once
                    finished(index, res.value)
    except BaseException as exc:
        rows, files = _write_results(plan, records, rank_by, final=True)
        result = SweepResult(rows, False, rank_by, painted, kept, plan.folder, files, time.perf_counter() - started)
        if isinstance(exc, Cancelled):
            raise Cancelled(str(exc), partial=result) from None
        raise
    rows, files = _write_results(plan, records, rank_by, final=True)
    complete = all(r is not None for r in records)
    return SweepResult(rows, complete, rank_by, painted, kept, plan.folder, files, time.perf_counter() - started)
