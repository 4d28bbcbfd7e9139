"""Task functions for the executor tests (importable in a spawned worker or a Ray actor: tests/ is on sys.path)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from impasto.errors import ConfigError
from impasto.media import write_text


def square(x: int, sleep: float = 0.0) -> tuple[int, int]:
    """x * x and the worker's pid, after ``sleep`` seconds."""
    time.sleep(sleep)
    return x * x, os.getpid()


def write(path: str, text: str, sleep: float = 0.0) -> str:
    """Write ``text`` to ``path`` (atomically) after ``sleep`` seconds, and append a line to ``path + '.runs'``."""
    time.sleep(sleep)
    with open(path + ".runs", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    write_text(Path(path), text)
    return path


def refuse(value: str) -> None:
    raise ConfigError(f"value {value!r} is not allowed here")


def fail_hard() -> None:
    raise ZeroDivisionError("a bug in the task")


def die(marker: str) -> None:
    """Append an ``x`` to ``marker``, then kill this worker process outright."""
    import signal

    with open(marker, "a") as fh:
        fh.write("x")
    os.kill(os.getpid(), signal.SIGKILL)
