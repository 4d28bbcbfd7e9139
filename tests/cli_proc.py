"""Run the real ``impasto`` CLI in a subprocess and send it real signals (SIGINT, SIGKILL).

Failure-path tests use these instead of monkeypatching: the child is ``python -m impasto ...`` with the test's
IMPASTO_HOME, its stderr is read line by line, and a signal is sent when a line matching a pattern appears.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Finished:
    code: int
    out: str
    err: str

    def one_line_error(self) -> str:
        """The single error line (asserting there is exactly one and no traceback)."""
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        assert "Traceback" not in self.err, self.err
        errors = [ln for ln in lines if ln.startswith("impasto: error:")]
        assert len(errors) == 1, self.err
        return errors[0]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def run(args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
        ) -> Finished:  # fmt: skip
    """``impasto ARGS`` to completion."""
    p = subprocess.run(
        [sys.executable, "-m", "impasto", *map(str, args)], capture_output=True, text=True, env=_env(env),
        timeout=timeout, cwd=cwd,
    )  # fmt: skip
    return Finished(p.returncode, p.stdout, p.stderr)


class Running:
    """A started ``impasto`` process whose stderr is collected in the background."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "impasto", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=_env(env), cwd=cwd, bufsize=1,
        )  # fmt: skip
        self._err: list[str] = []
        self._out: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:  # noqa: ANN001
        # tqdm redraws with \r: split on it too so progress shows up as lines
        buf = ""
        while True:
            chunk = stream.read(1)
            if not chunk:
                break
            buf += chunk
            if chunk in "\r\n":
                sink.append(buf)
                buf = ""
        if buf:
            sink.append(buf)

    @property
    def err(self) -> str:
        return "".join(self._err)

    @property
    def out(self) -> str:
        return "".join(self._out)

    def wait_for(self, pattern: str, timeout: float = 120, *, stream: str = "err") -> re.Match[str]:
        """Block until stderr (or stdout: ``stream="out"``) matches ``pattern`` (a regex); fails the test if the
        process ends first."""
        rx = re.compile(pattern)

        def text() -> str:
            return self.err if stream == "err" else self.out

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = rx.search(text())
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.2)
                m = rx.search(text())
                if m:
                    return m
                raise AssertionError(f"process ended (code {self.proc.returncode}) before {pattern!r}:\n{self.err}")
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"timed out waiting for {pattern!r}:\n{self.err}")

    def send(self, sig: int = signal.SIGINT) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self, timeout: float = 120) -> Finished:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        return Finished(code, "".join(self._out), self.err)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes): to check that nothing the user had changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
