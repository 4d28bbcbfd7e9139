"""The studio's job records: one SQLite file (``jobs.sqlite3``) in the data dir, WAL mode, one lock.

A record is what a job IS (kind, parameters) and what became of it (state, times, progress, error, output file
names). The outputs themselves live in ``jobs/<id>/`` beside the database; a record names files only by their
plain names inside that folder, never by a path.

States: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``; ``interrupted`` when the server stopped
(Ctrl-C) while the job ran. On start the server puts ``queued``, ``running`` (the server was killed) and
``interrupted`` jobs back in the queue; paint resumes from its checkpoint.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})
UNFINISHED_STATES = ("queued", "running", "interrupted")
JSON_FIELDS = ("params", "progress", "outputs")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    progress TEXT,
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '[]'
)
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_job_id() -> str:
    return f"j_{secrets.token_hex(8)}"


def valid_job_id(job_id: str) -> bool:
    return len(job_id) == 18 and job_id.startswith("j_") and all(c in "0123456789abcdef" for c in job_id[2:])


class JobStore:
    """The jobs table. Thread-safe: one connection, every statement under one lock (jobs write rarely: progress
    is throttled by the worker)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> dict[str, Any]:
        rec = {k: row[k] for k in row.keys() if k != "seq"}
        for name in JSON_FIELDS:
            rec[name] = json.loads(rec[name]) if rec[name] is not None else None
        if rec["outputs"] is None:
            rec["outputs"] = []
        return rec

    def create(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        job_id = new_job_id()
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, kind, params, state, created, outputs) VALUES (?, ?, ?, 'queued', ?, '[]')",
                (job_id, kind, json.dumps(params), now_iso()),
            )
        rec = self.get(job_id)
        assert rec is not None  # just written
        return rec

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._record(row)

    def all(self) -> list[dict[str, Any]]:
        """Every job, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY seq DESC").fetchall()
        return [self._record(r) for r in rows]

    def unfinished(self) -> list[dict[str, Any]]:
        """Jobs to put back in the queue at start, oldest first."""
        marks = ",".join("?" * len(UNFINISHED_STATES))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY seq ASC", UNFINISHED_STATES
            ).fetchall()
        return [self._record(r) for r in rows]

    def update(self, job_id: str, **fields: Any) -> dict[str, Any] | None:
        """Set ``fields`` (state, started, finished, progress, error, outputs); returns the new record."""
        allowed = {"state", "started", "finished", "progress", "error", "outputs"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)}")
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown state {fields['state']!r}")
        values = [json.dumps(v) if k in JSON_FIELDS and v is not None else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values, job_id))
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        return {r["state"]: r["n"] for r in rows}
