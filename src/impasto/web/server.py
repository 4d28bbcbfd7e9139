"""The studio's HTTP server: the REST API of ``notes/web_contract.md`` under ``/api`` and the page at ``/``.

It calls :mod:`impasto.api` only (plus the bottom layer: errors, events, media, imaging, devices, modelcache).
Every error is JSON ``{"error": "<one sentence>"}``. No endpoint reads a path from a request: uploads are found
by id, job files by id and by a name that must be one of the job's own outputs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, api
from ..errors import ConfigError, ImageError, ImpastoError, WeightsError
from ..modelcache import ModelCache
from .jobs import FINAL_STATES, JobStore, valid_job_id
from .uploads import DEFAULT_MAX_BYTES, UploadError, UploadStore
from .worker import BIGGAN, KINDS, PREVIEW_NAME, Hub, JobRunner, check_params, preview_url

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
TOKEN_COOKIE = "impasto_token"
NUM_PRESETS = 26
OUTPUT_KINDS = {".png": "image", ".jpg": "image", ".gif": "video", ".mp4": "video", ".csv": "csv", ".json": "json"}


class ApiError(Exception):
    """An HTTP error with one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class JobRequest(BaseModel):
    kind: str = Field(description="stylize, paint, video, generate, interpolate or compare")
    params: dict[str, Any] = Field(default_factory=dict, description="the kind's parameters (see the contract)")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _status_of(exc: ImpastoError) -> int:
    if isinstance(exc, UploadError):
        return exc.status
    if isinstance(exc, WeightsError):
        return 503 if "not installed" in str(exc) else 500
    if isinstance(exc, (ConfigError, ImageError)):
        return 400
    return 500


def _validation_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "the request"
    msg = str(first.get("msg", "is not valid"))
    if where == "file" and "required" in msg.lower():
        return "the upload needs a multipart form field named 'file'"
    return f"invalid request: {where}: {msg[0].lower() + msg[1:] if msg else msg}"


class _TokenGate:
    """Pure ASGI middleware: every request needs the token (header, ``?token=`` or the cookie a valid
    ``?token=`` sets, so the page's own scripts and images load)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from starlette.requests import HTTPConnection

        conn = HTTPConnection(scope)
        given = None
        auth = conn.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        from_query = conn.query_params.get("token")
        given = given or from_query or conn.cookies.get(TOKEN_COOKIE)
        if not given or not secrets.compare_digest(given.encode(), self.token.encode()):
            response = _error(
                401,
                "this studio needs its access token: open the address the server printed (with ?token=...) or "
                "send the header Authorization: Bearer TOKEN",
            )
            await response(scope, receive, send)
            return
        if from_query and secrets.compare_digest(from_query.encode(), self.token.encode()):

            async def send_with_cookie(message: dict) -> None:
                if message["type"] == "http.response.start":
                    cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send)


class Studio:
    """What one server owns: the data dir, the job store, the uploads, the queue and ONE ModelCache."""

    def __init__(
        self, data_dir: Path, *, workers: int, max_upload_bytes: int, paint_model_files: Mapping[str, Path],
        checkpoint_every: int, device: str,
    ) -> None:  # fmt: skip
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "jobs").mkdir(exist_ok=True)
        self.store = JobStore(self.data_dir / "jobs.sqlite3")
        self.uploads = UploadStore(self.data_dir / "uploads", max_bytes=max_upload_bytes)
        self.hub = Hub()
        self.models = ModelCache()
        self.paint_model_files = dict(paint_model_files)
        self.device = _resolve_device(device)
        devices = _worker_devices(self.device, workers)
        self.runner = JobRunner(
            self.store, self.uploads, self.data_dir / "jobs", self.models, self.hub, devices,
            paint_model_files=self.paint_model_files, checkpoint_every=checkpoint_every,
        )  # fmt: skip
        self.stopping = False
        self._closed = False

    def start(self) -> None:
        self.runner.recover()
        self.runner.start()

    def close(self) -> None:
        """Stop the workers (running jobs interrupted, to resume next start) and release the networks."""
        if self._closed:
            return
        self._closed = True
        self.stopping = True
        self.runner.shutdown()
        self.models.release()
        self.store.close()

    # -- records as the page sees them ----------------------------------------------------------------------
    def public(self, rec: dict[str, Any]) -> dict[str, Any]:
        job_id = rec["id"]
        outputs = [
            {"name": n, "url": f"/api/jobs/{job_id}/files/{n}", "kind": OUTPUT_KINDS.get(Path(n).suffix, "file")}
            for n in rec["outputs"]
        ]
        has_preview = (self.runner.folder(job_id) / PREVIEW_NAME).is_file()
        progress = rec["progress"]
        thumb = None
        if any(o["kind"] == "image" for o in outputs) or has_preview:
            thumb = f"/api/jobs/{job_id}/thumbnail"
        return {
            **rec,
            "outputs": outputs,
            "result_url": f"/api/jobs/{job_id}/result" if outputs else None,
            "thumbnail_url": thumb,
            "preview_url": preview_url(job_id, (progress or {}).get("preview_step")) if has_preview else None,
            "device": self.runner.running.get(job_id),
        }

    def job(self, job_id: str) -> dict[str, Any]:
        rec = self.store.get(job_id) if valid_job_id(job_id) else None
        if rec is None:
            raise ApiError(404, f"there is no job {job_id!r}")
        return rec


def _resolve_device(device: str) -> str:
    from ..devices import resolve_device

    return str(resolve_device(device))


def _worker_devices(device: str, workers: int) -> list[str]:
    """One worker per device: N CUDA devices for ``workers`` N on a GPU machine, else ``workers`` CPU workers."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count()
        if device == "cuda" or device == "cuda:0":
            return [f"cuda:{i}" for i in range(min(workers, count))] or ["cuda:0"]
        return [device] * workers
    return [device] * workers


def _builtin_picture(side: int = 160) -> Any:
    """A small built-in picture (sky, sun, hills) for the preset gallery: drawn, so nothing is shipped."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(img)
    for y in range(side):
        t = y / side
        draw.line([(0, y), (side, y)], fill=(int(90 + 120 * t), int(150 + 60 * t), int(230 - 60 * t)))
    r = side // 7
    draw.ellipse([side * 0.62, side * 0.12, side * 0.62 + 2 * r, side * 0.12 + 2 * r], fill=(250, 210, 90))
    draw.polygon([(0, side * 0.75), (side * 0.35, side * 0.45), (side * 0.7, side * 0.8), (0, side)],
                 fill=(60, 120, 70))  # fmt: skip
    draw.polygon([(side * 0.3, side), (side * 0.75, side * 0.5), (side, side * 0.7), (side, side)],
                 fill=(40, 90, 60))  # fmt: skip
    draw.rectangle([side * 0.15, side * 0.78, side * 0.3, side * 0.92], fill=(180, 60, 50))
    return img


def create_app(
    data_dir: Path,
    *,
    token: str | None = None,
    workers: int = 1,
    start_workers: bool = True,
    max_upload_bytes: int = DEFAULT_MAX_BYTES,
    paint_model_files: Mapping[str, Path] | None = None,
    checkpoint_every: int = 10,
    device: str = "auto",
) -> FastAPI:
    """The studio app on ``data_dir``.

    ``token``: required on every request when given (the CLI gives one whenever it binds off loopback).
    ``workers``: worker threads (one per device on a GPU machine). ``start_workers``: False builds the app
    without running jobs (they stay queued). ``paint_model_files``: extra paint network NAMES mapped to files, for
    tests and operators only -- a web client names a network, never a file. ``checkpoint_every``: paint steps
    between checkpoints. Unfinished jobs of an earlier server on the same data dir are resumed at start.
    """
    studio = Studio(
        data_dir, workers=workers, max_upload_bytes=max_upload_bytes, paint_model_files=paint_model_files or {},
        checkpoint_every=checkpoint_every, device=device,
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        studio.stopping = True
        await run_in_threadpool(studio.close)

    app = FastAPI(
        title="impasto studio",
        version=__version__,
        description="Every impasto capability over HTTP: uploads, jobs (queued, resumable), live events.",
        lifespan=lifespan,
    )
    app.state.studio = studio

    # -- errors: JSON, one sentence ---------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(ImpastoError)
    async def _impasto_error(request: Request, exc: ImpastoError) -> JSONResponse:
        status = _status_of(exc)
        if status >= 500 and status != 503:
            log.error("studio: %s failed: %s", request.url.path, exc)
        return _error(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_sentence(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"there is nothing at {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("studio: %s %s failed", request.method, request.url.path, exc_info=exc)
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _error(500, f"the server failed on this request ({type(exc).__name__}: {line})")

    # -- health and capabilities ------------------------------------------------------------------------------
    @app.get("/api/health")
    def health() -> dict[str, Any]:
        counts = studio.store.counts()
        return {
            "ok": True, "version": __version__, "device": studio.device, "workers": len(studio.runner.devices),
            "queued": counts.get("queued", 0), "running": counts.get("running", 0),
        }  # fmt: skip

    @app.get("/api/models")
    def models_info() -> dict[str, Any]:
        return _capabilities(studio)

    @app.get("/api/presets/{n}/thumbnail")
    def preset_thumbnail(n: str) -> FileResponse:
        if not n.isdigit() or not 0 <= int(n) < NUM_PRESETS:
            raise ApiError(404, f"there is no preset {n!r}; presets are numbered 0 to {NUM_PRESETS - 1}")
        folder = studio.data_dir / "presets"
        path = folder / f"preset_{int(n):02d}.png"
        if not path.is_file():
            from ..media import save_image

            folder.mkdir(exist_ok=True)
            out = api.stylize(_builtin_picture(), preset=str(int(n)), models=studio.models, device=studio.device)
            save_image(out, path)  # type: ignore[arg-type]
        return FileResponse(path, media_type="image/png")

    # -- uploads ----------------------------------------------------------------------------------------------
    @app.post("/api/uploads", status_code=201)
    async def upload(request: Request, file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > studio.uploads.max_bytes + 1024 * 1024:
            raise UploadError(
                f"the upload is larger than the limit of {studio.uploads.max_bytes // (1024 * 1024)} MB", 413
            )
        up = await run_in_threadpool(studio.uploads.save, file.file, file.filename)
        return up.public()

    def _upload(upload_id: str) -> Any:
        up = studio.uploads.get(upload_id)
        if up is None:
            raise ApiError(404, f"there is no upload {upload_id!r}")
        return up

    @app.get("/api/uploads/{upload_id}")
    def get_upload(upload_id: str) -> FileResponse:
        up = _upload(upload_id)
        media = {"jpg": "image/jpeg", "tif": "image/tiff", "mov": "video/quicktime", "mkv": "video/x-matroska",
                 "avi": "video/x-msvideo"}.get(up.ext, f"{up.kind}/{up.ext}")  # fmt: skip
        return FileResponse(studio.uploads.path(up), media_type=media)

    @app.get("/api/uploads/{upload_id}/thumbnail")
    def upload_thumbnail(upload_id: str) -> FileResponse:
        return FileResponse(studio.uploads.thumbnail(_upload(upload_id)), media_type="image/png")

    # -- jobs -------------------------------------------------------------------------------------------------
    @app.post("/api/jobs", status_code=201)
    def create_job(body: JobRequest) -> dict[str, Any]:
        if body.kind not in KINDS:
            raise ConfigError(f"unknown job kind {body.kind!r}; use one of {', '.join(KINDS)}")
        params = check_params(body.kind, body.params, studio.uploads, studio.paint_model_files)
        rec = studio.store.create(body.kind, params)
        studio.runner.submit(rec["id"])
        return studio.public(rec)

    @app.get("/api/jobs")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [studio.public(r) for r in studio.store.all()]}

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return studio.public(studio.job(job_id))

    @app.delete("/api/jobs/{job_id}", response_model=None)
    def delete_job(job_id: str, delete: bool = False) -> dict[str, Any] | Response:
        rec = studio.job(job_id)
        if rec["state"] in ("queued", "running"):
            if studio.runner.cancel(job_id):
                rec = studio.runner.wait(job_id, timeout=10.0) or rec
            else:
                rec = studio.store.get(job_id) or rec
            if not delete:
                return studio.public(rec)
            if rec["state"] == "running":
                raise ApiError(409, f"job {job_id} is still stopping; delete it again in a moment")
        studio.store.delete(job_id)
        studio.hub.forget(job_id)
        shutil.rmtree(studio.runner.folder(job_id), ignore_errors=True)
        return Response(status_code=204)

    @app.post("/api/jobs/{job_id}/rerun", status_code=201)
    def rerun_job(job_id: str) -> dict[str, Any]:
        old = studio.job(job_id)
        params = check_params(old["kind"], old["params"], studio.uploads, studio.paint_model_files)
        rec = studio.store.create(old["kind"], params)
        studio.runner.submit(rec["id"])
        return studio.public(rec)

    def _job_file(job_id: str, name: str) -> Path:
        rec = studio.job(job_id)
        if name not in rec["outputs"]:
            raise ApiError(404, f"job {job_id} has no output named {name!r}")
        path = studio.runner.folder(job_id) / name  # a name from the job's own record, never from the request
        if not path.is_file():
            raise ApiError(404, f"the output {name} of job {job_id} is missing from the data folder")
        return path

    @app.get("/api/jobs/{job_id}/result")
    def job_result(job_id: str) -> FileResponse:
        rec = studio.job(job_id)
        if not rec["outputs"]:
            raise ApiError(404, f"job {job_id} has no result ({rec['state']})")
        name = rec["outputs"][0]
        return FileResponse(_job_file(job_id, name), filename=f"{job_id}_{name}")

    @app.get("/api/jobs/{job_id}/files/{name}")
    def job_file(job_id: str, name: str) -> FileResponse:
        return FileResponse(_job_file(job_id, name))

    @app.get("/api/jobs/{job_id}/preview")
    def job_preview(job_id: str) -> FileResponse:
        studio.job(job_id)
        path = studio.runner.folder(job_id) / PREVIEW_NAME
        if not path.is_file():
            raise ApiError(404, f"job {job_id} has no preview yet")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/thumbnail")
    def job_thumbnail(job_id: str) -> FileResponse:
        rec = studio.job(job_id)
        folder = studio.runner.folder(job_id)
        source = next((folder / n for n in rec["outputs"] if Path(n).suffix == ".png"), None)
        if source is None or not source.is_file():
            source = folder / PREVIEW_NAME
        if not source.is_file():
            raise ApiError(404, f"job {job_id} has no picture yet")
        thumb = folder / "thumbnail.png"
        if not thumb.is_file() or thumb.stat().st_mtime < source.stat().st_mtime or rec["state"] not in FINAL_STATES:
            from ..imaging import load_image
            from ..media import save_image

            save_image(load_image(source, max_side=256), thumb)
        return FileResponse(thumb, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        studio.job(job_id)
        return StreamingResponse(
            _event_stream(studio, job_id, request), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    # -- the page ---------------------------------------------------------------------------------------------
    app.mount("/", StaticFiles(directory=STATIC, html=True, check_dir=False), name="static")

    if token is not None:
        app.add_middleware(_TokenGate, token=token)
    if start_workers:
        studio.start()
    return app


def _sse(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _event_stream(studio: Studio, job_id: str, request: Request) -> AsyncIterator[bytes]:
    """The current state first, then progress / preview / state events until the job's final state."""
    seq = studio.hub.last_seq(job_id)
    rec = studio.store.get(job_id)
    if rec is None:
        return
    yield _sse("state", studio.public(rec))
    if rec["state"] in FINAL_STATES:
        return
    idle = 0.0
    while not studio.stopping:
        events = studio.hub.since(job_id, seq)
        for number, name, data in events:
            seq = number
            if name == "state":
                rec = studio.store.get(job_id)
                if rec is None:  # deleted
                    return
                yield _sse("state", studio.public(rec))
                if rec["state"] in FINAL_STATES or rec["state"] == "interrupted":
                    return
            else:
                yield _sse(name, data)
        if events:
            idle = 0.0
        else:
            idle += 0.1
            if idle >= 15:  # a comment line keeps proxies from closing a quiet stream
                idle = 0.0
                yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return
        await asyncio.sleep(0.1)


def _capabilities(studio: Studio) -> dict[str, Any]:
    """What this installation can do, honestly: each capability, whether it is available, the command that
    installs what is missing."""
    statuses = {s.record.name: s for s in api.models.list()}

    def installed(name: str) -> bool:
        return name in statuses and statuses[name].installed

    paint_net, offline = api.models.paint_network()
    paint_note = (
        f"painting uses {paint_net} (not VGG); install vgg19.caffe for the classic look" if offline
        else f"painting uses {paint_net}"
    )  # fmt: skip
    paint_install = "impasto models download vgg19.caffe" if offline else None
    networks = [n for n in ("vgg19.caffe", "vgg16.caffe", "nin.caffe", "vgg19.torch") if installed(n)]
    networks += sorted(studio.paint_model_files)
    linear = installed("linear.r41")
    import importlib.util

    has_cv2 = importlib.util.find_spec("cv2") is not None
    biggan = installed(BIGGAN)
    capabilities = [
        {
            "kind": "stylize", "available": True, "install": None,
            "note": None if linear else "the linear method needs linear.r41; Magenta works offline",
            "methods": {
                "magenta": {"available": True, "install": None},
                "linear": {"available": linear,
                           "install": None if linear else "impasto models download linear.r41"},
            },
        },
        {"kind": "paint", "available": True, "install": paint_install, "note": paint_note,
         "default_network": paint_net, "networks": [paint_net, *[n for n in networks if n != paint_net]]},
        {"kind": "video", "available": True, "install": None,
         "note": None if has_cv2 else "stabilize needs OpenCV: pip install 'impasto[video]'",
         "stabilize": has_cv2},
        {"kind": "generate", "available": biggan, "install": None if biggan else f"impasto models download {BIGGAN}",
         "note": None if biggan else f"BigGAN samples and interpolations need the {BIGGAN} weights",
         "kinds": ["generate", "interpolate"]},
        {"kind": "compare", "available": True, "install": paint_install, "note": paint_note,
         "optimizers": list(api.study_optimizers())},
    ]  # fmt: skip
    return {
        "capabilities": capabilities,
        "presets": [{"index": i, "thumbnail_url": f"/api/presets/{i}/thumbnail"} for i in range(NUM_PRESETS)],
        "weight_sets": [{"name": n, "installed": s.installed, "kind": s.record.kind} for n, s in statuses.items()],
    }
