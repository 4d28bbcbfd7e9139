"""The studio's REST API through FastAPI's TestClient: every endpoint, bad uploads, unknown ids, the token,
a stylise job end to end (offline Magenta), a paint job (tiny random VGG) with previews, events and cancel."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import tiny_weights as tw  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from impasto.web.server import create_app  # noqa: E402

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_bytes(size=(48, 40), seed: int = 0) -> bytes:
    buf = io.BytesIO()
    tw.image(size=size, seed=seed).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tw.write(tw.vgg_state(), tmp_path_factory.mktemp("w") / "vgg19-tiny.pth")


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, weights: Path):  # noqa: ANN201
    data = tmp_path_factory.mktemp("studio")
    app = create_app(data, paint_model_files={"tiny": weights}, checkpoint_every=5)
    client = TestClient(app)
    yield client, data
    app.state.studio.close()


def upload(client: TestClient, data: bytes, name: str = "photo.png") -> dict:
    r = client.post("/api/uploads", files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 201, r.text
    return r.json()


def wait_state(client: TestClient, job_id: str, states: set[str], timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rec = client.get(f"/api/jobs/{job_id}").json()
        if rec["state"] in states:
            return rec
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {states}: {rec}")


def one_sentence(r) -> str:  # noqa: ANN001
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# --- health, capabilities, page ------------------------------------------------------------------------------


def test_health_and_openapi(studio) -> None:  # noqa: ANN001
    client, _ = studio
    h = client.get("/api/health").json()
    assert h["ok"] is True and h["workers"] == 1 and h["device"] == "cpu"
    assert {"version", "queued", "running"} <= set(h)
    spec = client.get("/openapi.json").json()
    for path in ("/api/uploads", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events",
                 "/api/jobs/{job_id}/result", "/api/models", "/api/health"):  # fmt: skip
        assert path in spec["paths"], path


def test_models_are_reported_honestly(studio) -> None:  # noqa: ANN001
    client, _ = studio
    body = client.get("/api/models").json()
    caps = {c["kind"]: c for c in body["capabilities"]}
    assert set(caps) == {"stylize", "paint", "video", "generate", "compare"}
    assert caps["stylize"]["available"] and caps["stylize"]["methods"]["magenta"]["available"]
    linear = caps["stylize"]["methods"]["linear"]  # the test cache has no linear.r41
    assert linear["available"] is False and linear["install"] == "impasto models download linear.r41"
    assert caps["paint"]["available"] and "not VGG" in caps["paint"]["note"]
    assert caps["paint"]["install"] == "impasto models download vgg19.caffe"
    assert "tiny" in caps["paint"]["networks"]
    assert caps["generate"]["available"] is False
    assert caps["generate"]["install"] == "impasto models download biggan-deep.256"
    assert caps["video"]["available"] and caps["compare"]["available"]
    assert [p["index"] for p in body["presets"]] == list(range(26))
    names = {w["name"]: w for w in body["weight_sets"]}
    assert names["vgg19.caffe"]["installed"] is False and names["vgg19.caffe"]["kind"] == "vgg19"


def test_preset_thumbnail_is_a_png_cached_on_disk(studio) -> None:  # noqa: ANN001
    client, data = studio
    r = client.get("/api/presets/7/thumbnail")
    assert r.status_code == 200 and r.content.startswith(PNG_SIG)
    assert (data / "presets" / "preset_07.png").is_file()
    assert client.get("/api/presets/26/thumbnail").status_code == 404
    assert client.get("/api/presets/x/thumbnail").status_code == 404


# --- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/jobs/j_0123456789abcdef"),
        ("GET", "/api/jobs/nonsense"),
        ("GET", "/api/jobs/j_0123456789abcdef/result"),
        ("GET", "/api/jobs/j_0123456789abcdef/preview"),
        ("GET", "/api/jobs/j_0123456789abcdef/events"),
        ("GET", "/api/jobs/j_0123456789abcdef/files/result.png"),
        ("DELETE", "/api/jobs/j_0123456789abcdef"),
        ("POST", "/api/jobs/j_0123456789abcdef/rerun"),
        ("GET", "/api/uploads/u_0123456789abcdef"),
        ("GET", "/api/uploads/../jobs.sqlite3"),
        ("GET", "/api/uploads/u_0123456789abcdef/thumbnail"),
        ("GET", "/api/no-such-endpoint"),
    ],
)
def test_unknown_ids_are_404_json(studio, method: str, path: str) -> None:  # noqa: ANN001
    client, _ = studio
    r = client.request(method, path)
    assert r.status_code == 404
    one_sentence(r)


def test_text_file_named_png_is_refused(studio) -> None:  # noqa: ANN001
    client, data = studio
    r = client.post("/api/uploads", files={"file": ("notes.png", b"just some text, not pixels\n" * 20, "image/png")})
    assert r.status_code == 400
    assert "not an image or video impasto can read" in one_sentence(r)
    assert not [p for p in (data / "uploads").iterdir() if p.name.startswith(".incoming")]


def test_decompression_bomb_header_is_refused_with_the_pixel_limit(studio) -> None:  # noqa: ANN001
    client, data = studio
    r = client.post("/api/uploads", files={"file": ("huge.png", bomb_png(), "image/png")})
    assert r.status_code == 400
    msg = one_sentence(r)
    assert "huge.png is 100000x100000" in msg and "impasto reads at most" in msg
    assert str(data) not in msg  # the server's own paths never show


def test_upload_over_the_size_limit_is_413(tmp_path: Path) -> None:
    app = create_app(tmp_path / "d", start_workers=False, max_upload_bytes=2000)
    client = TestClient(app)
    r = client.post("/api/uploads", files={"file": ("big.png", png_bytes((200, 200)), "image/png")})
    assert r.status_code == 413
    assert "upload limit" in one_sentence(r) or "limit of" in one_sentence(r)
    assert upload(client, png_bytes((20, 20)))["kind"] == "image"  # a small one still goes in
    app.state.studio.close()


def test_file_name_never_becomes_a_path(studio, tmp_path: Path) -> None:  # noqa: ANN001
    client, data = studio
    up = upload(client, png_bytes(), name="../../etc/passwd")
    assert up["id"].startswith("u_") and up["filename"] == "passwd" and up["kind"] == "image"
    stored = sorted(p.name for p in (data / "uploads").iterdir() if p.name.startswith(up["id"]))
    assert stored == [f"{up['id']}.json", f"{up['id']}.png"]  # named by id and detected format only
    assert not (data.parent / "etc").exists()
    r = client.get(f"/api/uploads/{up['id']}")
    assert r.status_code == 200 and r.content.startswith(PNG_SIG)
    thumb = client.get(f"/api/uploads/{up['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.content.startswith(PNG_SIG)


def test_upload_detects_the_format_not_the_extension(studio) -> None:  # noqa: ANN001
    client, data = studio
    buf = io.BytesIO()
    tw.image(size=(40, 30)).save(buf, format="JPEG")
    up = upload(client, buf.getvalue(), name="really_a_jpeg.png")
    assert up["format"] == "jpg" and (data / "uploads" / f"{up['id']}.jpg").is_file()


def test_upload_without_a_file_field_is_400(studio) -> None:  # noqa: ANN001
    client, _ = studio
    r = client.post("/api/uploads", data={"other": "x"})
    assert r.status_code == 400
    assert "file" in one_sentence(r)


def test_bad_job_requests(studio) -> None:  # noqa: ANN001
    client, _ = studio
    img = upload(client, png_bytes())["id"]

    def post(body: object) -> tuple[int, str]:
        r = client.post("/api/jobs", json=body)
        return r.status_code, one_sentence(r)

    code, msg = post({"kind": "dance", "params": {}})
    assert code == 400 and "unknown job kind 'dance'" in msg
    code, msg = post({"params": {}})
    assert code == 400 and "kind" in msg
    code, msg = post({"kind": "paint", "params": {"content": img, "styles": [img], "image_size": 3}})
    assert code == 400 and msg == "image_size must be at least 16, not 3"  # PaintConfig's own sentence
    code, msg = post({"kind": "paint", "params": {"content": img, "styles": [img], "imagesize": 64}})
    assert code == 400 and "unknown paint parameter(s) imagesize" in msg
    code, msg = post({"kind": "paint", "params": {"content": img, "styles": [img], "model": "/etc/passwd"}})
    assert code == 400 and "unknown paint network" in msg  # a client names a network, never a file
    code, msg = post({"kind": "paint", "params": {"content": img, "styles": [img], "model": "vgg19.caffe"}})
    assert code == 503 and "impasto models download vgg19.caffe" in msg
    code, msg = post({"kind": "stylize", "params": {"content": "u_0123456789abcdef", "preset": "7"}})
    assert code == 400 and "no upload" in msg
    code, msg = post({"kind": "stylize", "params": {"content": img, "preset": "99"}})
    assert code == 400 and "unknown preset 99" in msg
    code, msg = post({"kind": "stylize", "params": {"content": img, "styles": [img], "method": "linear"}})
    assert code == 503 and "linear.r41" in msg
    code, msg = post({"kind": "stylize", "params": {"content": img, "styles": [img], "size": "big"}})
    assert code == 400 and "size must be a whole number" in msg
    code, msg = post({"kind": "generate", "params": {"classes": ["dog"]}})
    assert code == 503 and "impasto models download biggan-deep.256" in msg
    code, msg = post({"kind": "video", "params": {"content": img, "preset": "3"}})
    assert code == 400 and "not a video" in msg


def test_internal_errors_are_one_line_json(tmp_path: Path) -> None:
    app = create_app(tmp_path / "d", start_workers=False)

    def boom() -> dict:
        raise RuntimeError("the disk caught fire\nsecond line")

    app.state.studio.store.counts = boom
    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/api/health")
    assert r.status_code == 500
    assert one_sentence(r) == "the server failed on this request (RuntimeError: the disk caught fire)"
    app.state.studio.close()


# --- the token -----------------------------------------------------------------------------------------------


def test_token_required_when_set(tmp_path: Path) -> None:
    app = create_app(tmp_path / "d", token="t0k", start_workers=False)
    client = TestClient(app)
    for path in ("/api/health", "/api/jobs", "/", "/openapi.json"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert "access token" in one_sentence(r)
    assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/health?token=wrong").status_code == 401
    assert client.get("/api/health", headers={"Authorization": "Bearer t0k"}).status_code == 200
    r = client.get("/api/health?token=t0k")
    assert r.status_code == 200 and "impasto_token" in r.headers.get("set-cookie", "")
    assert client.get("/api/jobs").status_code == 200  # the cookie the ?token= set (the page's own assets)
    app.state.studio.close()


def test_no_token_needed_without_one(tmp_path: Path) -> None:
    app = create_app(tmp_path / "d", start_workers=False)
    assert TestClient(app).get("/api/health").status_code == 200
    app.state.studio.close()


# --- jobs ----------------------------------------------------------------------------------------------------


def test_stylize_job_end_to_end(studio) -> None:  # noqa: ANN001
    client, data = studio
    photo = upload(client, png_bytes((96, 72), seed=0))["id"]
    style = upload(client, png_bytes((64, 64), seed=3))["id"]
    r = client.post("/api/jobs", json={"kind": "stylize", "params": {"content": photo, "styles": [style], "size": 64}})
    assert r.status_code == 201
    job = r.json()
    assert job["state"] == "queued" and job["id"].startswith("j_") and job["params"]["size"] == 64
    done = wait_state(client, job["id"], {"done", "failed"})
    assert done["state"] == "done", done["error"]
    assert done["created"] <= done["started"] <= done["finished"]  # queued -> running -> done
    assert done["outputs"][0]["name"] == "result.png" and done["outputs"][0]["kind"] == "image"
    result = client.get(done["result_url"])
    assert result.status_code == 200 and result.content.startswith(PNG_SIG)
    assert Image.open(io.BytesIO(result.content)).size == (64, 48)
    assert client.get(done["outputs"][0]["url"]).content == result.content
    assert client.get(done["thumbnail_url"]).status_code == 200
    listed = client.get("/api/jobs").json()["jobs"]
    assert listed[0]["id"] == job["id"]  # newest first
    # a finished job's event stream: its state, then the end
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        text = "".join(stream.iter_text())
    assert text.startswith("event: state\n") and text.count("event: ") == 1 and '"state": "done"' in text
    # outputs only by their names: nothing else in the job folder, nothing outside it
    for name in ("../../jobs.sqlite3", "..%2F..%2Fjobs.sqlite3", "checkpoint.ckpt", "preview.png", "thumbnail.png"):
        assert client.get(f"/api/jobs/{job['id']}/files/{name}").status_code == 404, name
    rerun = client.post(f"/api/jobs/{job['id']}/rerun")
    assert rerun.status_code == 201 and rerun.json()["params"] == job["params"] and rerun.json()["id"] != job["id"]
    wait_state(client, rerun.json()["id"], {"done", "failed"})
    # deleting a finished job removes its record and files
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert not (data / "jobs" / job["id"]).exists()


def _read_events(lines, until) -> list[tuple[str, dict]]:  # noqa: ANN001
    events: list[tuple[str, dict]] = []
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name is not None:
            events.append((name, json.loads(line[6:])))
            if until(events):
                return events
    return events


def test_paint_job_previews_events_and_cancel(studio) -> None:  # noqa: ANN001
    client, data = studio
    photo = upload(client, png_bytes((40, 32), seed=0))["id"]
    style = upload(client, png_bytes((36, 36), seed=1))["id"]
    params = {"content": photo, "styles": [style], "model": "tiny", "image_size": 32, "num_iterations": 100000,
              "optimizer": "adam", "learning_rate": 5.0, "preview_every": 2, "seed": 1}  # fmt: skip
    job = client.post("/api/jobs", json={"kind": "paint", "params": params}).json()
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        lines = stream.iter_lines()
        first = _read_events(lines, lambda ev: len(ev) >= 1)
        assert first[0][0] == "state" and first[0][1]["id"] == job["id"]  # the current state first
        seen = _read_events(lines, lambda ev: sum(n == "preview" for n, _ in ev) >= 2)
        progress = [d for n, d in seen if n == "progress" and d["step"]]
        previews = [d for n, d in seen if n == "preview"]
        assert progress and progress[-1]["total"] == 100000 and "total" in progress[-1]["losses"]
        assert previews[0]["url"].startswith(f"/api/jobs/{job['id']}/preview?step=")
        assert previews[1]["step"] > previews[0]["step"]
        one = client.get(f"/api/jobs/{job['id']}/preview")
        assert one.status_code == 200 and one.content.startswith(PNG_SIG)
        time.sleep(0.6)
        two = client.get(f"/api/jobs/{job['id']}/preview")
        assert two.content != one.content  # the painting moved on
        stopped = client.delete(f"/api/jobs/{job['id']}")
        assert stopped.status_code == 200
        rest = _read_events(lines, lambda ev: ev[-1][0] == "state" and ev[-1][1]["state"] != "running")
    assert rest[-1][1]["state"] == "cancelled"
    rec = stopped.json()
    assert rec["state"] == "cancelled" and [o["name"] for o in rec["outputs"]] == ["result.png"]
    assert 0 < rec["progress"]["step"] < 100000
    img = client.get(rec["result_url"])
    assert img.status_code == 200 and Image.open(io.BytesIO(img.content)).size == (32, 25)
    assert not (data / "jobs" / job["id"] / "checkpoint.ckpt").exists()  # a finished job needs no checkpoint


def test_cancel_a_queued_job_and_delete_a_running_one(studio) -> None:  # noqa: ANN001
    client, data = studio
    photo = upload(client, png_bytes((40, 32), seed=0))["id"]
    params = {"content": photo, "styles": [photo], "model": "tiny", "image_size": 32, "num_iterations": 100000,
              "optimizer": "adam"}  # fmt: skip
    running = client.post("/api/jobs", json={"kind": "paint", "params": params}).json()
    queued = client.post("/api/jobs", json={"kind": "paint", "params": params}).json()
    wait_state(client, running["id"], {"running"})
    r = client.delete(f"/api/jobs/{queued['id']}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["outputs"] == []
    assert client.get("/api/health").json()["running"] == 1
    assert client.delete(f"/api/jobs/{running['id']}?delete=true").status_code == 204
    assert client.get(f"/api/jobs/{running['id']}").status_code == 404
    assert not (data / "jobs" / running["id"]).exists()


def test_video_upload_and_job(studio, tmp_path: Path) -> None:  # noqa: ANN001
    from impasto.media import save_mp4

    client, _ = studio
    frames = [tw.image(size=(48, 32), seed=i) for i in range(4)]
    clip = save_mp4(frames, tmp_path / "clip.mp4", fps=8)
    up = upload(client, clip.read_bytes(), name="clip.png")  # the extension lies; the probe decides
    assert up["kind"] == "video" and up["format"] == "mp4" and (up["width"], up["height"]) == (48, 32)
    assert client.get(f"/api/uploads/{up['id']}/thumbnail").content.startswith(PNG_SIG)
    job = client.post("/api/jobs", json={"kind": "video", "params": {"content": up["id"], "preset": "3", "size": 32}})
    assert job.status_code == 201, job.text
    done = wait_state(client, job.json()["id"], {"done", "failed"})
    assert done["state"] == "done", done["error"]
    assert done["outputs"] == [{"name": "result.mp4", "url": f"/api/jobs/{done['id']}/files/result.mp4",
                                "kind": "video"}]  # fmt: skip
    assert done["progress"]["step"] == 4
    assert client.get(done["result_url"]).content[4:8] == b"ftyp"
