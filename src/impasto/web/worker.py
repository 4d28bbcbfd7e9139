"""The studio's queue: one worker thread per device, each job run by calling the matching :mod:`impasto.api`
function with its own CancelToken and a callback that records progress, writes previews and tells subscribers.

Nothing here touches process-wide state: no signal handlers, no globals; the loaded networks live in the
ModelCache the studio owns and passes as ``models=``. Files a job writes go into its own folder
(``jobs/<id>/``) through :mod:`impasto.media` (atomic), under names chosen here, never from a request.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import api
from ..errors import Cancelled, ConfigError, ImpastoError, WeightsError
from ..events import CancelToken, Event, Finished, Preview, Progress, Started
from ..media import save_animation, save_image, write_bytes
from ..modelcache import ModelCache
from .jobs import FINAL_STATES, JobStore, now_iso
from .uploads import UploadStore

log = logging.getLogger(__name__)

KINDS = ("stylize", "paint", "video", "generate", "interpolate", "compare")
PAINT_NETWORKS = ("vgg19.caffe", "vgg16.caffe", "nin.caffe", "vgg19.torch", "mobilenetv2.magenta")
BIGGAN = "biggan-deep.256"
CHECKPOINT_NAME = "checkpoint.ckpt"
PREVIEW_NAME = "preview.png"
STORE_EVERY_S = 0.5  # progress reaches the database at most this often (and at the end)
PUBLISH_EVERY_S = 0.1  # and the event stream at most this often
PREVIEW_EVERY_S = 0.25  # preview.png is rewritten at most this often


# --- the event hub: what the SSE streams read ---------------------------------------------------------------


class Hub:
    """Recent events per job, numbered; an event stream polls :meth:`since` (thread-safe, no asyncio here)."""

    def __init__(self, keep: int = 256) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, deque[tuple[int, str, dict[str, Any]]]] = {}
        self._seq = itertools.count(1)
        self._keep = keep

    def publish(self, job_id: str, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._events.setdefault(job_id, deque(maxlen=self._keep)).append((next(self._seq), name, data))

    def last_seq(self, job_id: str) -> int:
        with self._lock:
            events = self._events.get(job_id)
            return events[-1][0] if events else 0

    def since(self, job_id: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        with self._lock:
            return [e for e in self._events.get(job_id, ()) if e[0] > seq]

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._events.pop(job_id, None)


# --- parameters: checked when a job is submitted, so a bad value is a 400 before anything is queued ---------


DEFAULTS: dict[str, dict[str, Any]] = {
    "stylize": {
        "content": None, "styles": [], "style_weights": None, "preset": None, "method": None, "strength": 1.0,
        "preserve_color": False, "size": None,
    },
    "paint": {
        "content": None, "styles": [], "style_blend_weights": None, "image_size": 384, "num_iterations": 300,
        "content_weight": None, "style_weight": None, "tv_weight": None, "optimizer": "lbfgs",
        "learning_rate": 1.0, "model": None, "scales": None, "fast": False, "seed": 0, "preview_every": 10,
        "original_colors": False, "init": None, "pooling": "max", "style_scale": 1.0,
    },
    "video": {
        "content": None, "styles": [], "style_weights": None, "preset": None, "method": "magenta", "size": None,
        "stabilize": False, "strength": 1.0, "preserve_color": False,
    },
    "generate": {"classes": [], "samples": 4, "truncation": 0.4, "seed": None},
    "interpolate": {"from": None, "to": None, "steps": 10, "samples": 1, "truncation": 0.4, "seed": 0,
                    "format": "gif"},
    "compare": {"content": None, "style": None, "optimizers": ["adam", "lbfgs"], "iterations": 100, "size": 128,
                "model": None, "seed": 0, "lr": 10.0},
}  # fmt: skip

_INTS = {"size", "image_size", "num_iterations", "seed", "preview_every", "samples", "steps", "iterations"}
_FLOATS = {"strength", "content_weight", "style_weight", "tv_weight", "learning_rate", "truncation", "lr",
           "style_scale"}  # fmt: skip
_BOOLS = {"preserve_color", "fast", "stabilize", "original_colors"}


def _coerce(kind: str, name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ConfigError(f"{kind} parameter {name} must be true or false, got {value!r}")
        return value
    if name in _INTS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{kind} parameter {name} must be a whole number, got {value!r}")
        return int(value)
    if name in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{kind} parameter {name} must be a number, got {value!r}")
        return float(value)
    return value


def _upload_ids(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of upload ids (u_...), got {value!r}")
    return value


@dataclass
class Context:
    """What a job's run function gets: its parameters, its folder, its device, the callback and token."""

    job_id: str
    params: dict[str, Any]
    folder: Path
    device: str
    callback: Callable[[Event], None]
    cancel: CancelToken
    models: ModelCache
    uploads: UploadStore
    paint_model_files: Mapping[str, Path]
    checkpoint_every: int
    previews: bool = True

    def upload_path(self, upload_id: str) -> Path:
        up = self.uploads.get(upload_id)
        if up is None:
            raise ConfigError(f"upload {upload_id} is gone; upload the file again")
        return self.uploads.path(up)

    @property
    def gpu(self) -> str:
        """The device in PaintConfig's spelling (c, 0, 1, ...)."""
        return "c" if not self.device.startswith("cuda") else (self.device.partition(":")[2] or "0")


def check_params(
    kind: str, params: Mapping[str, Any], uploads: UploadStore, paint_model_files: Mapping[str, Path]
) -> dict[str, Any]:
    """The parameters with defaults filled in, checked as far as is cheap (no network is loaded); ConfigError
    (400) for a bad value, WeightsError (503) when the capability's weights are not installed."""
    if kind not in DEFAULTS:
        raise ConfigError(f"unknown job kind {kind!r}; use one of {', '.join(KINDS)}")
    if not isinstance(params, Mapping):
        raise ConfigError("params must be a JSON object")
    defaults = DEFAULTS[kind]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {kind} parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}")
    p = {k: _coerce(kind, k, params.get(k, v)) for k, v in defaults.items()}

    def image(upload_id: Any, what: str, video: bool = False) -> Path:
        if not isinstance(upload_id, str):
            raise ConfigError(f"{what} must be an upload id (u_...), got {upload_id!r}")
        up = uploads.get(upload_id)
        if up is None:
            raise ConfigError(f"{what}: there is no upload {upload_id!r}; upload the file first (POST /api/uploads)")
        want = "video" if video else "image"
        if up.kind != want:
            raise ConfigError(f"{what}: upload {upload_id} is a{'n' if up.kind == 'image' else ''} {up.kind}, "
                              f"not a{'n' if want == 'image' else ''} {want}")  # fmt: skip
        return uploads.path(up)

    if kind in ("stylize", "video", "paint"):
        content = image(p["content"], "content", video=kind == "video")
        p["styles"] = _upload_ids(p["styles"], "styles")
        styles = [image(s, "styles") for s in p["styles"]]
    if kind in ("stylize", "video"):
        if p["preset"] is not None:
            p["preset"] = str(p["preset"])
        weights = p["style_weights"]
        if p["method"] == "linear" and not api.models.info("linear.r41").installed:
            raise WeightsError(
                "the linear method needs the linear.r41 weights, which are not installed: run "
                "'impasto models download linear.r41'"
            )
        if kind == "stylize":
            api.stylize_each(
                content, styles=styles, style_weights=weights, preset=p["preset"], size=p["size"],
                strength=p["strength"], preserve_color=p["preserve_color"], method=p["method"], device="cpu",
            )  # fmt: skip  # checks every option and reads the styles; loads no network
        elif p["size"] is not None and p["size"] < 16:
            raise ConfigError(f"size must be at least 16 px, got {p['size']}")
    if kind == "paint":
        if not styles:
            raise ConfigError("paint needs at least one style image (styles: [upload ids])")
        model = p["model"]
        if model is not None and model not in paint_model_files:
            if model not in PAINT_NETWORKS:
                raise ConfigError(f"unknown paint network {model!r}; use one of {', '.join(PAINT_NETWORKS)}")
            if not api.models.info(model).installed:
                raise WeightsError(f"the {model} weights are not installed: run 'impasto models download {model}'")
        if p["preview_every"] is not None and p["preview_every"] < 1:
            raise ConfigError(f"preview_every must be at least 1, got {p['preview_every']}")
        paint_config(p, paint_model_files, gpu="c").validate(num_styles=len(styles))
    if kind in ("generate", "interpolate"):
        if not api.models.info(BIGGAN).installed:
            raise WeightsError(
                f"{kind} needs the {BIGGAN} weights, which are not installed: run 'impasto models download {BIGGAN}'"
            )
    if kind == "generate":
        classes = p["classes"]
        if isinstance(classes, (str, int)):
            classes = [classes]
        if not isinstance(classes, list) or not classes:
            raise ConfigError('generate needs classes: a list of ImageNet class names, e.g. ["dog"]')
        for c in classes:
            api.resolve_class(c)
        p["classes"] = classes
        if p["seed"] is None:
            p["seed"] = api.new_seed()  # drawn now, so the record says which it was
    if kind == "interpolate":
        api.resolve_class(p["from"])
        api.resolve_class(p["to"])
        if p["format"] not in ("gif", "mp4"):
            raise ConfigError(f"format must be gif or mp4, got {p['format']!r}")
        if p["steps"] < 2:
            raise ConfigError(f"steps must be at least 2, got {p['steps']}")
    if kind == "compare":
        image(p["content"], "content")
        image(p["style"], "style")
        opts = p["optimizers"]
        if not isinstance(opts, list) or not opts:
            raise ConfigError('optimizers must be a list such as ["adam", "lbfgs"]')
        known = api.study_optimizers()
        for o in opts:
            if not isinstance(o, str) or o.split("@")[0] not in known:
                raise ConfigError(f"unknown optimizer {o!r}; use some of {', '.join(known)}")
        model = p["model"]
        if model is not None and model not in paint_model_files and model not in PAINT_NETWORKS:
            raise ConfigError(f"unknown paint network {model!r}; use one of {', '.join(PAINT_NETWORKS)}")
    return p


def paint_config(p: Mapping[str, Any], paint_model_files: Mapping[str, Path], *, gpu: str) -> api.PaintConfig:
    """The PaintConfig of a paint job's parameters (the network by name: a test-mode name maps to its file)."""
    fields = {k: p[k] for k in (
        "style_blend_weights", "image_size", "num_iterations", "content_weight", "style_weight", "tv_weight",
        "optimizer", "learning_rate", "scales", "fast", "seed", "original_colors", "init", "pooling", "style_scale",
    )}  # fmt: skip
    name: str | None = p.get("model")
    model, model_file = name, None
    if name is not None and name in paint_model_files:
        model, model_file = None, str(paint_model_files[name])
    return api.PaintConfig(
        **fields, model=model, model_file=model_file, gpu=gpu, print_iter=0, save_iter=p.get("preview_every") or 0
    )


# --- running one job -----------------------------------------------------------------------------------------


def _run_stylize(ctx: Context) -> list[str]:
    p = ctx.params
    ctx.previews = False  # the one Preview is the result itself
    out = api.stylize(
        ctx.upload_path(p["content"]), styles=[ctx.upload_path(s) for s in p["styles"]],
        style_weights=p["style_weights"], preset=p["preset"], size=p["size"], strength=p["strength"],
        preserve_color=p["preserve_color"], method=p["method"], device=ctx.device, models=ctx.models,
        callback=ctx.callback, cancel=ctx.cancel,
    )  # fmt: skip
    save_image(out, ctx.folder / "result.png")  # type: ignore[arg-type]
    return ["result.png"]


def _run_paint(ctx: Context) -> list[str]:
    p = ctx.params
    cfg = paint_config(p, ctx.paint_model_files, gpu=ctx.gpu).replace(
        checkpoint_path=str(ctx.folder / CHECKPOINT_NAME), checkpoint_every=ctx.checkpoint_every, resume=True
    )  # resume: from the checkpoint a killed or stopped server left; a fresh job has none and starts at step 0
    result = api.paint(
        ctx.upload_path(p["content"]), [ctx.upload_path(s) for s in p["styles"]], cfg, callback=ctx.callback,
        cancel=ctx.cancel,
    )  # fmt: skip
    save_image(result.image, ctx.folder / "result.png")
    return ["result.png"]


def _run_video(ctx: Context) -> list[str]:
    p = ctx.params
    api.video(
        ctx.upload_path(p["content"]), ctx.folder / "result.mp4", styles=[ctx.upload_path(s) for s in p["styles"]],
        style_weights=p["style_weights"], preset=p["preset"], method=p["method"], size=p["size"],
        strength=p["strength"], preserve_color=p["preserve_color"], stabilize=p["stabilize"], resume=True,
        device=ctx.device, models=ctx.models, callback=ctx.callback, cancel=ctx.cancel,
    )  # fmt: skip
    return ["result.mp4"]


def _run_generate(ctx: Context) -> list[str]:
    p = ctx.params
    result = api.generate(
        p["classes"], samples=p["samples"], truncation=p["truncation"], seed=p["seed"], model=BIGGAN,
        device=ctx.device, models=ctx.models, callback=ctx.callback, cancel=ctx.cancel,
    )  # fmt: skip
    return _save_generated(ctx, result)


def _save_generated(ctx: Context, result: Any) -> list[str]:
    save_image(result.grid(), ctx.folder / "grid.png")
    names = ["grid.png"]
    for i, pic in enumerate(result.pictures()):
        save_image(pic, ctx.folder / f"sample_{i + 1:02d}.png")
        names.append(f"sample_{i + 1:02d}.png")
    return names


def _run_interpolate(ctx: Context) -> list[str]:
    p = ctx.params
    result = api.interpolate(
        p["from"], p["to"], seed_from=p["seed"], steps=p["steps"], samples=p["samples"], truncation=p["truncation"],
        model=BIGGAN, device=ctx.device, models=ctx.models, callback=ctx.callback, cancel=ctx.cancel,
    )  # fmt: skip
    name = f"interpolation.{p['format']}"
    save_animation(result.pictures(), ctx.folder / name, fps=10)
    save_image(result.grid(), ctx.folder / "grid.png")
    return [name, "grid.png"]


def _study_outputs(ctx: Context, result: Any) -> list[str]:
    files = api.study_files(result)
    for name, data in files.items():
        write_bytes(ctx.folder / name, data)
    return sorted(files, key=lambda n: (n != "results.png", n))


def _run_compare(ctx: Context) -> list[str]:
    p = ctx.params
    name: str | None = p["model"]
    model, model_file = name, None
    if name is not None and name in ctx.paint_model_files:
        model, model_file = None, str(ctx.paint_model_files[name])
    result = api.compare_optimizers(
        ctx.upload_path(p["content"]), ctx.upload_path(p["style"]), optimizers=p["optimizers"], lr=p["lr"],
        iterations=p["iterations"], size=p["size"], model=model, model_file=model_file, seed=p["seed"],
        callback=ctx.callback, cancel=ctx.cancel, gpu=ctx.gpu,
    )  # fmt: skip
    return _study_outputs(ctx, result)


RUNNERS: dict[str, Callable[[Context], list[str]]] = {
    "stylize": _run_stylize, "paint": _run_paint, "video": _run_video, "generate": _run_generate,
    "interpolate": _run_interpolate, "compare": _run_compare,
}  # fmt: skip


def _save_partial(ctx: Context, kind: str, partial: Any) -> list[str]:
    """After a cancel: what the run had (the latest painting, the partial video, the finished study runs)."""
    folder = ctx.folder
    if kind == "paint":
        if partial is not None:
            save_image(partial, folder / "result.png")
            return ["result.png"]
        if (folder / PREVIEW_NAME).is_file():  # cancelled before a step of this run: the latest preview it had
            shutil.copyfile(folder / PREVIEW_NAME, folder / "result.png")
            return ["result.png"]
        return []
    if kind == "video":
        return ["result.mp4"] if (folder / "result.mp4").is_file() else []
    if kind == "compare" and partial is not None:
        return _study_outputs(ctx, partial)
    if kind == "stylize" and partial is not None and getattr(partial, "images", None):
        save_image(partial.images[0], folder / "result.png")
        return ["result.png"]
    return []


@dataclass
class _Reporter:
    """The job's callback: Progress -> the store (throttled) and the stream; Preview -> preview.png + stream."""

    job_id: str
    store: JobStore
    hub: Hub
    folder: Path
    ctx: Context | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    _stored: float = 0.0
    _published: float = 0.0
    _previewed: float = 0.0

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, Started):
            start = int(event.info.get("resumed_at", 0) or 0)
            self.progress = {"step": start, "total": event.total, "losses": {}, "elapsed": 0.0}
            if start:
                self.progress["resumed_at"] = start
            for key in ("model", "device"):
                if key in event.info:
                    self.progress[key] = str(event.info[key])
            self.flush()
        elif isinstance(event, Progress):
            self.progress.update(
                step=event.step, total=event.total, losses={k: float(v) for k, v in event.losses.items()},
                elapsed=round(float(event.elapsed), 3),
            )  # fmt: skip
            if "fps" in event.info:
                self.progress["fps"] = float(event.info["fps"])
            if now - self._published >= PUBLISH_EVERY_S or event.step == event.total:
                self._published = now
                self.hub.publish(self.job_id, "progress", self._progress_event())
            if now - self._stored >= STORE_EVERY_S:
                self.flush()
        elif isinstance(event, Preview):
            if self.ctx is not None and not self.ctx.previews:
                return
            if now - self._previewed < PREVIEW_EVERY_S or not hasattr(event.image, "save"):
                return
            self._previewed = now
            save_image(event.image, self.folder / PREVIEW_NAME)
            self.progress["preview_step"] = event.step
            self.hub.publish(self.job_id, "preview", {"step": event.step, "url": preview_url(self.job_id, event.step)})
        elif isinstance(event, Finished):
            self.flush()

    def _progress_event(self) -> dict[str, Any]:
        return {k: self.progress.get(k) for k in ("step", "total", "losses", "elapsed")} | (
            {"fps": self.progress["fps"]} if "fps" in self.progress else {}
        )

    def flush(self) -> None:
        self._stored = time.monotonic()
        if self.progress:
            self.store.update(self.job_id, progress=self.progress)
            self.hub.publish(self.job_id, "progress", self._progress_event())


def preview_url(job_id: str, step: int | None) -> str:
    return f"/api/jobs/{job_id}/preview" + (f"?step={step}" if step is not None else "")


class JobRunner:
    """A queue and one worker thread per device."""

    def __init__(
        self, store: JobStore, uploads: UploadStore, jobs_folder: Path, models: ModelCache, hub: Hub,
        devices: list[str], paint_model_files: Mapping[str, Path] | None = None, checkpoint_every: int = 10,
    ) -> None:  # fmt: skip
        self.store, self.uploads, self.jobs_folder, self.models, self.hub = store, uploads, jobs_folder, models, hub
        self.devices = devices
        self.paint_model_files = dict(paint_model_files or {})
        self.checkpoint_every = checkpoint_every
        self._queue: queue.Queue[str] = queue.Queue()
        self._tokens: dict[str, CancelToken] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.running: dict[str, str] = {}  # job id -> device

    def folder(self, job_id: str) -> Path:
        return self.jobs_folder / job_id

    def recover(self) -> list[str]:
        """Put the jobs a killed or stopped server left (queued, running, interrupted) back in the queue."""
        ids = []
        for rec in self.store.unfinished():
            self.store.update(rec["id"], state="queued")
            self._queue.put(rec["id"])
            ids.append(rec["id"])
        if ids:
            log.info("studio: resuming %d unfinished job(s): %s", len(ids), ", ".join(ids))
        return ids

    def start(self) -> None:
        for i, device in enumerate(self.devices):
            t = threading.Thread(target=self._loop, args=(device,), name=f"impasto-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def queued(self) -> int:
        return self._queue.qsize()

    def cancel(self, job_id: str) -> bool:
        """Ask a running job to stop (True), or mark a queued one cancelled (False: it never ran)."""
        with self._lock:
            token = self._tokens.get(job_id)
            if token is not None:
                token.cancel()
                return True
            rec = self.store.get(job_id)
            if rec is not None and rec["state"] == "queued":
                self.store.update(job_id, state="cancelled", finished=now_iso())
                self.hub.publish(job_id, "state", {})
        return False

    def wait(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        """The record once the job is no longer running (or after ``timeout`` seconds)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                active = job_id in self._tokens
            if not active:
                break
            time.sleep(0.05)
        return self.store.get(job_id)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop: running jobs are cancelled (their checkpoints stay) and marked interrupted; queued ones stay
        queued. Both resume at the next start."""
        self._stopping.set()
        with self._lock:
            for token in self._tokens.values():
                token.cancel()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def _loop(self, device: str) -> None:
        while not self._stopping.is_set():
            try:
                job_id = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._stopping.is_set():
                return
            token = CancelToken()
            with self._lock:  # with cancel(): a job is either still queued (and cancelled there) or has its token
                rec = self.store.get(job_id)
                if rec is None or rec["state"] != "queued":
                    continue  # cancelled or deleted while it waited
                self._tokens[job_id] = token
                self.running[job_id] = device
            try:
                self._run(rec, device, token)
            except Exception:  # noqa: BLE001 - the worker must outlive any one job
                log.exception("studio: job %s failed outside its run", job_id)

    def _run(self, rec: dict[str, Any], device: str, token: CancelToken) -> None:
        job_id, kind = rec["id"], rec["kind"]
        folder = self.folder(job_id)
        state, error, outputs = "done", None, []
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            state, error = "failed", f"cannot create the job folder: {exc.strerror or exc}"
        self.store.update(job_id, state="running", started=rec["started"] or now_iso(), error=None)
        self.hub.publish(job_id, "state", {})
        reporter = _Reporter(job_id, self.store, self.hub, folder, progress=dict(rec["progress"] or {}))
        ctx = Context(
            job_id, rec["params"], folder, device, reporter, token, self.models, self.uploads,
            self.paint_model_files, self.checkpoint_every,
        )  # fmt: skip
        reporter.ctx = ctx
        try:
            if error is None:
                outputs = RUNNERS[kind](ctx)
        except Cancelled as exc:
            if self._stopping.is_set():
                state = "interrupted"
                if kind == "paint" and exc.partial is not None:
                    save_image(exc.partial, folder / PREVIEW_NAME)  # the latest image; the checkpoint resumes
            else:
                state = "cancelled"
                outputs = _save_partial(ctx, kind, exc.partial)
        except ImpastoError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - one line for the page; the traceback goes to the log
            log.exception("studio: job %s (%s) failed", job_id, kind)
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            state, error = "failed", f"{type(exc).__name__}: {line}" if line else type(exc).__name__
        finally:
            with self._lock:
                self._tokens.pop(job_id, None)
                self.running.pop(job_id, None)
        if state in FINAL_STATES:
            (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
        reporter.flush()
        self.store.update(
            job_id, state=state, error=error, outputs=outputs, finished=now_iso() if state in FINAL_STATES else None
        )
        self.hub.publish(job_id, "state", {})
