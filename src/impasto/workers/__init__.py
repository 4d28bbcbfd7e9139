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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..events import Callback, CancelToken

__all__ = ["Executor", "Task", "TaskResult"]


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
