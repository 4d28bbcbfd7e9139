"""The local pool: worker processes on this machine (spawned, not forked), each holding its own models.

Each worker is a fresh ``spawn`` process that sets its torch thread count to ``cores // workers``, takes one
CUDA device (round robin) when the job runs on CUDA, and keeps a :class:`~impasto.modelcache.ModelCache` for its
whole life, so a model loads once per worker, not once per task. The parent hands each idle worker one task at a
time over a pipe and waits on every pipe and every process sentinel at once:

* a result is yielded the moment it arrives (any order), with a ``Progress`` event for the whole job;
* a worker that dies (killed, out of memory) has its task given to a fresh worker, up to ``max_retries`` times;
  the task writes its output atomically under its own name, so a retried task leaves that output exactly once;
* an :class:`~impasto.errors.ImpastoError` a task raises stops the job and is re-raised unchanged;
* once ``cancel`` is set (checked every 0.1 s) the running workers are stopped (SIGTERM, then SIGKILL) and
  :class:`~impasto.errors.Cancelled` raised; finished outputs stay.

Workers ignore SIGINT: a Ctrl-C in the terminal reaches the whole process group, and the parent alone decides
(through its cancel token) what stops. An idle worker whose parent has gone sees its pipe close and exits.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import pickle
import signal
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from ..errors import Cancelled, ImpastoError
from ..events import Callback, CancelToken, Finished, Progress, Started, Stopwatch, emit
from . import Task, TaskResult, WorkerError, call, cpu_cores, device_count, init_worker_process

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often the parent looks at the cancel token while it waits
STOP_GRACE_S = 2.0  # SIGTERM, then this long before SIGKILL


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as something that survives pickling, with the worker's traceback attached for ``--debug``."""
    if not isinstance(exc, ImpastoError) and hasattr(exc, "add_note"):  # add_note: Python 3.11+
        cast(Any, exc).add_note("in the worker process:\n" + "".join(traceback.format_exception(exc)))
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception that cannot cross the pipe is described instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker_main(conn: Connection, device: str | None, threads: int) -> None:
    """A worker process: set up once, then run tasks until the pipe closes or a ``None`` arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process's own handler: the parent decides what stops
    init_worker_process(device, threads)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        fn, kwargs = msg
        try:
            reply: tuple[str, Any] = ("ok", call(fn, kwargs))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            reply = ("err", _portable(exc))
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def _ready(conn: Connection) -> bool:
    try:
        return conn.poll()
    except (EOFError, OSError):
        return False


@dataclass
class _Slot:
    index: int
    name: str
    proc: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    task: Task | None = None
    attempt: int = 0


class LocalPoolExecutor:
    """``workers`` spawned processes on this machine; started at the first :meth:`run`, kept until :meth:`close`."""

    def __init__(self, workers: int, *, device: str = "auto") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.device = device
        self.description = f"{workers} local workers"
        self._ctx = multiprocessing.get_context("spawn")
        self._threads = max(1, cpu_cores() // workers)
        gpus = device_count(device)
        self._devices: list[str | None] = [
            (f"cuda:{i % gpus}" if device in ("auto", "cuda") else device) if gpus else None for i in range(workers)
        ]
        self._slots: dict[int, _Slot] = {}
        self._started = 0  # processes started so far (names are never reused: local-0, local-1, ...)

    # --- processes ------------------------------------------------------------------------------------------

    def _spawn(self, index: int) -> _Slot:
        parent, child = self._ctx.Pipe()
        name = f"local-{self._started}"
        self._started += 1
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self._devices[index], self._threads), name=f"impasto-{name}",
            daemon=True,
        )  # fmt: skip
        proc.start()
        child.close()
        log.debug("started worker %s (pid %s)", name, proc.pid)
        return _Slot(index, name, proc, parent)

    def _stop(self, slot: _Slot) -> None:
        """End one worker now (a running task is abandoned)."""
        slot.conn.close()
        if slot.proc.is_alive():
            slot.proc.terminate()
            slot.proc.join(STOP_GRACE_S)
            if slot.proc.is_alive():
                slot.proc.kill()
        slot.proc.join()

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and diagnostics)."""
        return [s.proc.pid for s in self._slots.values() if s.proc.pid is not None]

    # --- the job --------------------------------------------------------------------------------------------

    def run(
        self,
        tasks: Sequence[Task],
        *,
        callback: Callback | None = None,
        cancel: CancelToken | None = None,
        max_retries: int = 2,
    ) -> Iterator[TaskResult]:
        watch = Stopwatch()
        total = len(tasks)
        emit(callback, Started(total=total, info={"workers": self.workers, "executor": self.description}))
        pending: collections.deque[tuple[Task, int]] = collections.deque((t, 1) for t in tasks)
        done = 0
        finished = False
        for index in range(min(self.workers, total)):
            if index not in self._slots:
                self._slots[index] = self._spawn(index)
        try:
            while pending or any(s.task is not None for s in self._slots.values()):
                if cancel is not None and cancel.cancelled:
                    for slot in self._slots.values():  # results already sent count: their outputs are there
                        if slot.task is not None and _ready(slot.conn):
                            status, value = slot.conn.recv()
                            task, slot.task = slot.task, None
                            if status == "ok":
                                done += 1
                                yield TaskResult(task.key, value, worker=slot.name, attempts=slot.attempt)
                    raise Cancelled(f"cancelled after {done} of {total} tasks", partial=done)
                for slot in self._slots.values():  # hand each idle worker the next task
                    if slot.task is None and pending:
                        slot.task, slot.attempt = pending.popleft()
                        try:
                            slot.conn.send((slot.task.fn, dict(slot.task.kwargs)))
                        except (BrokenPipeError, OSError):
                            pass  # it died while idle: its sentinel says so below
                busy = [s for s in self._slots.values() if s.task is not None]
                by_handle: dict[Any, _Slot] = {}
                for s in busy:
                    by_handle[s.conn] = s
                    by_handle[s.proc.sentinel] = s
                for handle in wait(list(by_handle), timeout=POLL_S):
                    slot = by_handle[handle]
                    if slot.task is None or self._slots.get(slot.index) is not slot:
                        continue  # already dealt with through its other handle
                    reply = None
                    try:
                        if slot.conn.poll():
                            reply = slot.conn.recv()
                    except (EOFError, OSError):
                        reply = None
                    if reply is None:  # the process died with the task in hand
                        self._lost(slot, pending, max_retries)
                        continue
                    status, value = reply
                    task, attempt = slot.task, slot.attempt
                    slot.task = None
                    if status == "err":
                        raise value
                    done += 1
                    yield TaskResult(task.key, value, worker=slot.name, attempts=attempt)
                    emit(callback, Progress(step=done, total=total, elapsed=watch()))
            finished = True
        finally:
            if not finished:  # cancelled, failed, or the caller stopped reading: stop the running tasks
                for index, slot in list(self._slots.items()):
                    if slot.task is not None:
                        self._stop(slot)
                        del self._slots[index]
        emit(callback, Finished(result=total, elapsed=watch()))

    def _lost(self, slot: _Slot, pending: collections.deque[tuple[Task, int]], max_retries: int) -> None:
        """A worker died running ``slot.task``: start a fresh one and queue the task again (first in line)."""
        task, attempt = slot.task, slot.attempt
        assert task is not None
        slot.proc.join(STOP_GRACE_S)
        code = slot.proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        slot.conn.close()
        del self._slots[slot.index]
        if attempt > max_retries:
            raise WorkerError(f"task {task.key} was tried {attempt} times and its worker died each time (last: {how})")
        log.warning("worker %s died (%s) running %s; retrying it (attempt %d)", slot.name, how, task.key, attempt + 1)
        self._slots[slot.index] = self._spawn(slot.index)
        pending.appendleft((task, attempt + 1))

    def close(self) -> None:
        """Stop every worker (idle ones are asked to leave, then ended like busy ones)."""
        slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            try:
                slot.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for slot in slots:
            slot.proc.join(STOP_GRACE_S)
            self._stop(slot)

    def __enter__(self) -> LocalPoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
