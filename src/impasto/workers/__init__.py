"""Spreading independent pieces of work over worker processes: a local pool (the default) or a Ray cluster.

The contract (every backend keeps it):

* A :class:`Task` is a small picklable description: a unique ``key`` (usually the output path), the dotted name
  of a function ``"package.module:function"`` imported in the worker, and keyword arguments made of paths,
  numbers, strings and plain dicts -- never tensors or PIL images. The function writes its own output
  (atomically, through :mod:`impasto.media`) and returns something small and picklable (paths, scores).
* Inside a worker, :func:`worker_models` is that process's :class:`~impasto.modelcache.ModelCache`: a model a
  task loads stays loaded for the next task on the same worker (the "actor holds its model" habit).
* :meth:`Executor.run` yields a :class:`TaskResult` per task as each finishes (in any order), emits
  ``Progress(step=done, total=len(tasks))`` to ``callback``, retries a task whose worker died
  (``max_retries``), re-raises an :class:`~impasto.errors.ImpastoError` a task raised (its message unchanged),
  and raises :class:`~impasto.errors.Cancelled` once ``cancel`` is set -- pending tasks are dropped and running
  ones stopped. A task whose output is written atomically is therefore present exactly once, even when it ran
  twice.
* ``workers=1`` without Ray runs the tasks in this process, one after another (no subprocess).
* Before the first result, ``run`` emits ``Started(total=len(tasks), info={"workers": n, "executor": description})``
  (so one :class:`~impasto.cli.common.ProgressBar` covers the whole job), and ``Finished`` after the last.

:func:`open_executor` picks the backend: :class:`InProcessExecutor` (``workers=1``), the local process pool
(:mod:`impasto.workers.local`) or Ray (:mod:`impasto.workers.ray_backend`, ``pip install 'impasto[ray]'``).
Task functions live in :mod:`impasto.workers.tasks`; inside them, :func:`worker_models`, :func:`worker_device`
and :func:`worker_cancel` say what this worker holds, which device it was given and whether to stop.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import Cancelled, ConfigError, ImpastoError
from ..events import Callback, CancelToken, Finished, Progress, Started, Stopwatch, emit
from ..modelcache import ModelCache

__all__ = [
    "Executor",
    "InProcessExecutor",
    "Task",
    "TaskResult",
    "WorkerError",
    "call",
    "default_workers",
    "open_executor",
    "worker_cancel",
    "worker_device",
    "worker_models",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One piece of work: ``fn(**kwargs)`` in some worker; ``key`` is unique within a job."""

    key: str
    fn: str  # "package.module:function", importable in the worker
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # picklable: paths, numbers, plain dicts


@dataclass(frozen=True)
class TaskResult:
    """What one task returned, with where it ran and how many attempts it took."""

    key: str
    value: Any
    worker: str  # e.g. "local-2" or "ray:<node id>"
    attempts: int = 1


class Executor(Protocol):
    """A place to run tasks: :func:`impasto.workers.open_executor` makes one; use it as a context manager."""

    workers: int
    description: str  # one line for the CLI, e.g. "2 local workers" or "Ray at 10.0.0.5:6379 (3 nodes, 24 CPUs)"

    def run(
        self,
        tasks: Sequence[Task],
        *,
        callback: Callback | None = None,
        cancel: CancelToken | None = None,
        max_retries: int = 2,
    ) -> Iterator[TaskResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


class WorkerError(ImpastoError):
    """A task could not be finished: its worker died more often than ``max_retries`` allows, or no worker
    could be started (the message says which task and why)."""


# --- what a task sees inside its worker --------------------------------------------------------------------

# A worker process (pool or Ray actor) sets these once when it starts; the in-process executor sets the context
# variables for the duration of its run, so two in-process jobs in two threads do not share them.
_process_models: ModelCache | None = None
_process_device: str | None = None
_models_var: contextvars.ContextVar[ModelCache | None] = contextvars.ContextVar("impasto_worker_models", default=None)
_cancel_var: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar("impasto_worker_cancel", default=None)


def worker_models() -> ModelCache:
    """This worker's loaded networks: a model a task loads stays loaded for the next task on the same worker."""
    global _process_models
    models = _models_var.get()
    if models is not None:
        return models
    if _process_models is None:
        _process_models = ModelCache()
    return _process_models


def worker_device(requested: str = "auto") -> str:
    """The device a task should use: the one this worker was given (e.g. ``cuda:1`` for the second worker on a
    two-GPU machine) when ``requested`` is ``"auto"`` or ``"cuda"``, else ``requested`` as it is."""
    if _process_device is not None and requested in ("auto", "cuda"):
        return _process_device
    return requested


def worker_cancel() -> CancelToken | None:
    """The job's cancel token inside the in-process executor (tasks pass it on); None in a worker process,
    whose running task is stopped by ending the process."""
    return _cancel_var.get()


def init_worker_process(device: str | None, threads: int | None) -> None:
    """Set up a fresh worker process (pool process or Ray actor): its device, its torch thread count and an
    empty model cache. Only ever called in a process that exists to be a worker."""
    global _process_models, _process_device
    _process_models = ModelCache(capacity=8)  # networks and prepared styles of a few settings
    _process_device = device
    if threads:
        import torch

        torch.set_num_threads(max(1, threads))
    from ..devices import keep_freed_memory

    keep_freed_memory()  # a worker renders images all its life: reuse big freed blocks (see devices)


def call(fn_name: str, kwargs: Mapping[str, Any]) -> Any:
    """Import ``"package.module:function"`` and call it with ``kwargs``: what every backend runs per task."""
    module_name, sep, attr = fn_name.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"task function must be 'package.module:function', got {fn_name!r}")
    fn = getattr(importlib.import_module(module_name), attr)
    return fn(**dict(kwargs))


# --- choosing a backend ------------------------------------------------------------------------------------


def device_count(device: str = "auto") -> int:
    """CUDA devices the workers may use for ``device`` (0: the CPU)."""
    if device == "cpu" or device.startswith("cpu") or device == "mps":
        return 0
    import torch

    if not torch.cuda.is_available():
        return 0
    if device.startswith("cuda:"):
        return 1
    return torch.cuda.device_count()


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers(device: str = "auto") -> int:
    """One worker per CUDA device, or one per two CPU cores on a CPU; at least 1."""
    gpus = device_count(device)
    if gpus:
        return gpus
    return max(1, cpu_cores() // 2)


def open_executor(workers: int | None = None, ray: str | None = None, *, device: str = "auto") -> Executor:
    """An executor for ``workers`` workers (None: :func:`default_workers`, or for Ray what the cluster holds).

    ``ray``: None -- no Ray: ``workers == 1`` runs tasks in this process, more in a local process pool;
    ``"auto"`` -- the existing cluster this machine belongs to (``ray.init(address="auto")``, or RAY_ADDRESS);
    ``"HOST:PORT"`` or ``"ray://HOST:10001"`` -- that cluster; ``"local"`` -- a Ray started on this machine for
    the job (stopped on close). ``device``: what the tasks ask for; on CUDA each worker gets one device (Ray:
    ``num_gpus=1`` per actor). Raises ConfigError for a bad count, Ray not installed or a cluster not reachable.
    """
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if ray is not None:
        from .ray_backend import RayExecutor

        return RayExecutor(workers, ray, device=device)
    n = default_workers(device) if workers is None else workers
    if n == 1:
        return InProcessExecutor()
    from .local import LocalPoolExecutor

    return LocalPoolExecutor(n, device=device)


class InProcessExecutor:
    """``workers=1``: the tasks run in this process, in order, with one model cache for the job; the job's
    cancel token is checked between tasks and handed to each task (:func:`worker_cancel`)."""

    workers = 1
    description = "this process"

    def __init__(self, models: ModelCache | None = None) -> None:
        self._models = models if models is not None else ModelCache(capacity=8)
        self._own = models is None

    def run(
        self,
        tasks: Sequence[Task],
        *,
        callback: Callback | None = None,
        cancel: CancelToken | None = None,
        max_retries: int = 2,  # noqa: ARG002 - nothing here can die without taking the caller with it
    ) -> Iterator[TaskResult]:
        watch = Stopwatch()
        total = len(tasks)
        emit(callback, Started(total=total, info={"workers": 1, "executor": self.description}))
        for done, task in enumerate(tasks):
            if cancel is not None and cancel.cancelled:
                raise Cancelled(f"cancelled after {done} of {total} tasks", partial=done)
            models_token = _models_var.set(self._models)
            cancel_token = _cancel_var.set(cancel)
            try:
                value = call(task.fn, task.kwargs)
            finally:
                _models_var.reset(models_token)
                _cancel_var.reset(cancel_token)
            yield TaskResult(task.key, value, worker="local-0")
            emit(callback, Progress(step=done + 1, total=total, elapsed=watch()))
        emit(callback, Finished(result=total, elapsed=watch()))

    def close(self) -> None:
        if self._own:
            self._models.release()

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
