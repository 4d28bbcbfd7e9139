"""No job is lost: the real ``impasto serve`` in a subprocess, killed (SIGKILL) or stopped (SIGINT) with a paint
job half done, then started again on the same data dir: the job resumes from its checkpoint and finishes, and a
job finished before the kill is still listed with its outputs."""

from __future__ import annotations

import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import tiny_weights as tw  # noqa: E402

pytestmark = pytest.mark.slow

# steps in a job that is stopped half done: enough that a fast machine cannot finish it between the poll that sees
# its first checkpoint and the signal (300 steps of the tiny network took under a second on a quiet machine)
STEPS = 4000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m impasto serve`` on a free port, its output in a log file."""

    def __init__(self, data: Path, weights: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "impasto", "serve", "--port", str(self.port), "--data-dir", str(data),
             "--paint-model-file", f"tiny={weights}", "--checkpoint-every", "5"],
            stdout=self.log, stderr=self.log, env=env,
        )  # fmt: skip
        self.client = httpx.Client(base_url=self.url, timeout=30)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            assert self.proc.poll() is None, log.read_text()
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not start: " + log.read_text())

    def job(self, job_id: str) -> dict:
        r = self.client.get(f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, ok, timeout: float = 240) -> dict:  # noqa: ANN001
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rec = self.job(job_id)
            if ok(rec):
                return rec
            assert rec["state"] not in ("failed", "cancelled"), rec
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting on {job_id}: {rec}")

    def stop(self, sig: int) -> int:
        self.client.close()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        finally:
            self.log.close()


def png(seed: int, size=(40, 32)) -> bytes:
    buf = io.BytesIO()
    tw.image(size=size, seed=seed).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def world(tmp_path: Path):  # noqa: ANN201
    weights = tw.write(tw.vgg_state(), tmp_path / "vgg19-tiny.pth")
    return tmp_path / "studio", weights, tmp_path / "server.log"


def submit_paint(server: Server, iterations: int) -> str:
    up = [server.client.post("/api/uploads", files={"file": (f"{i}.png", png(i))}).json()["id"] for i in (0, 1)]
    params = {"content": up[0], "styles": [up[1]], "model": "tiny", "image_size": 32, "num_iterations": iterations,
              "optimizer": "adam", "learning_rate": 5.0, "seed": 3, "preview_every": 5}  # fmt: skip
    r = server.client.post("/api/jobs", json={"kind": "paint", "params": params})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def checkpointed(data: Path, job_id: str):  # noqa: ANN201
    return lambda rec: (
        rec["state"] == "running"
        and (data / "jobs" / job_id / "checkpoint.ckpt").is_file()
        and ((rec["progress"] or {}).get("step", 0) >= 12)
    )


def resumed_from_checkpoint(rec: dict) -> bool:
    return rec["state"] in ("running", "done") and bool((rec["progress"] or {}).get("resumed_at"))


def test_killed_server_resumes_its_job_from_the_checkpoint(world) -> None:  # noqa: ANN001
    data, weights, log = world
    server = Server(data, weights, log)
    photo = server.client.post("/api/uploads", files={"file": ("p.png", png(5, (64, 48)))}).json()["id"]
    done = server.client.post("/api/jobs", json={"kind": "stylize", "params": {"content": photo, "preset": "3"}})
    finished_id = done.json()["id"]
    server.wait(finished_id, lambda rec: rec["state"] == "done")
    job_id = submit_paint(server, iterations=STEPS)
    before = server.wait(job_id, checkpointed(data, job_id))
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    with sqlite3.connect(data / "jobs.sqlite3") as db:  # what the killed server left: the job still "running"
        assert db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] == "running"

    again = Server(data, weights, log)
    listed = {j["id"]: j for j in again.client.get("/api/jobs").json()["jobs"]}
    assert listed[finished_id]["state"] == "done"  # the finished job, as it was, with its outputs
    result = again.client.get(listed[finished_id]["result_url"])
    assert result.status_code == 200 and result.content.startswith(b"\x89PNG")
    assert job_id in listed
    resumed = again.wait(job_id, resumed_from_checkpoint)
    assert before["progress"]["step"] - 5 <= resumed["progress"]["resumed_at"] < STEPS  # its checkpoint, not step 0
    final = again.wait(job_id, lambda rec: rec["state"] == "done")
    assert final["progress"]["step"] == STEPS and [o["name"] for o in final["outputs"]] == ["result.png"]
    assert again.client.get(final["result_url"]).content.startswith(b"\x89PNG")
    assert again.stop(signal.SIGINT) in (0, 130)


def test_ctrl_c_interrupts_the_running_job_and_the_next_start_resumes_it(world) -> None:  # noqa: ANN001
    data, weights, log = world
    server = Server(data, weights, log)
    job_id = submit_paint(server, iterations=STEPS)
    before = server.wait(job_id, checkpointed(data, job_id))
    code = server.stop(signal.SIGINT)
    assert code in (0, 130), log.read_text()
    assert "Traceback" not in log.read_text()
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        state, finished = db.execute("SELECT state, finished FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert state == "interrupted" and finished is None
    assert (data / "jobs" / job_id / "checkpoint.ckpt").is_file()

    again = Server(data, weights, log)
    resumed = again.wait(job_id, resumed_from_checkpoint)
    assert 5 <= resumed["progress"]["resumed_at"]
    assert resumed["progress"]["resumed_at"] >= before["progress"]["step"] - 5
    final = again.wait(job_id, lambda rec: rec["state"] == "done")
    assert final["progress"]["step"] == STEPS
    assert again.stop(signal.SIGINT) in (0, 130)


def test_off_loopback_needs_the_printed_token(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto", "serve", "--host", "0.0.0.0", "--port", str(port), "--data-dir",
         str(tmp_path / "d")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "?token=" in line, line
        token = line.split("?token=")[1].split()[0]
        assert len(token) >= 24
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"{url}/api/health")
                break
            except httpx.TransportError:
                assert time.monotonic() < end
                time.sleep(0.1)
        assert r.status_code == 401 and "access token" in r.json()["error"]
        assert httpx.get(f"{url}/api/health", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(f"{url}/api/health", params={"token": token}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) in (0, 130)
