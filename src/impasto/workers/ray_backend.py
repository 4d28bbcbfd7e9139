"""The Ray backend (``pip install 'impasto[ray]'``): one Ray actor per worker, each holding its own models.

``open_executor(ray=...)`` connects this process to a cluster as a Ray driver: ``"auto"`` (the cluster this
machine belongs to: ``RAY_ADDRESS`` or a ``ray start`` on it), ``"HOST:PORT"`` (the cluster's GCS address),
``"ray://HOST:10001"`` (Ray Client), or ``"local"`` (a Ray started on this machine for the job and stopped on
close). If this process is already a Ray driver, that connection is used as it is.

Each actor (``num_gpus=1`` when the job runs on CUDA and the cluster has GPUs, else ``num_cpus`` = its share of
the cluster's cores) runs one task at a time; the parent keeps one task in flight per actor, so a fast node takes
more tasks. Outputs are written by the actors themselves, so every node must be able to write the output folder
at the same path (a shared folder, e.g. NFS) and read the inputs, styles and model files there; only the paths
come back. ``IMPASTO_*`` environment variables of this process (``IMPASTO_HOME``: where the weights are) are set
in every actor.

A task whose actor or node dies is given to another actor (up to ``max_retries`` times; the dead actor is
restarted by Ray where there is room, ``max_restarts=-1``); once nothing else is left to hand out, a task
held by an actor not known to work (one that has not finished a task since it started or last failed: it may be
waiting for room that never comes) is also given to an idle actor, so neither a node that never comes back nor
an actor the cluster cannot place stalls the job (the first copy to finish counts; both write the same file
atomically). Cancel: ``ray.cancel`` on the
running tasks and ``ray.kill`` on every actor.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import Cancelled, ConfigError
from ..events import Callback, CancelToken, Finished, Progress, Started, Stopwatch, emit
from . import Task, TaskResult, WorkerError, call, init_worker_process

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often the driver looks at the cancel token while it waits
ENV_PREFIX = "IMPASTO_"


class _Worker:
    """The actor: set up once (device, threads, environment, model cache), then ``run`` task after task."""

    def __init__(self, device: str | None, threads: int, env: dict[str, str]) -> None:
        os.environ.update(env)
        init_worker_process(device, threads)

    def run(self, fn: str, kwargs: dict[str, Any]) -> tuple[Any, str]:
        import ray

        return call(fn, kwargs), ray.get_runtime_context().get_node_id()[:8]

    def pid(self) -> int:
        return os.getpid()


def _reachable(address: str) -> None:
    """A ``HOST:PORT`` address answers on that port (fail in a second, not after Ray's minute of retries)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}") from None


def _connect(address: str) -> tuple[Any, bool]:
    """``import ray`` and connect (or start a local Ray); returns the module and whether we connected it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed: pip install 'impasto[ray]'") from None
    if ray.is_initialized():
        return ray, False
    _reachable(address)
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    try:
        if address == "local":
            from . import cpu_cores

            ray.init(num_cpus=cpu_cores(), include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except ImportError as exc:  # ray:// needs ray[client]
        raise ConfigError(f"cannot use the Ray cluster at {address}: {exc}") from None
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {first}") from None
    return ray, True


class RayExecutor:
    """Workers as Ray actors on a cluster; see the module docstring."""

    def __init__(self, workers: int | None, address: str = "auto", *, device: str = "auto") -> None:
        self._ray, self._own = _connect(address)
        ray = self._ray
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        self.gpu = gpus > 0 and device in ("auto", "cuda") or (device.startswith("cuda") and gpus > 0)
        if device.startswith("cuda") and gpus == 0:
            self.close()
            raise ConfigError(f"--device {device}: the Ray cluster has no GPUs")
        if workers is None:
            workers = gpus if self.gpu else max(1, cpus // 2)
        self.workers = workers
        largest = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=1)
        self._cpus = 1 if self.gpu else max(1, min(largest, cpus // max(workers, 1)))
        where = "this machine" if address == "local" else (address if address != "auto" else "the cluster")
        self.description = f"{workers} Ray workers on {where} ({nodes} nodes, {cpus} CPUs, {gpus} GPUs)"
        self._device = "cuda:0" if self.gpu else None  # Ray sets CUDA_VISIBLE_DEVICES to the actor's one GPU
        self._env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
        self._actors: list[Any] = []
        self._names: dict[Any, str] = {}
        self._cls: Any = None

    def _new_actor(self) -> Any:
        if self._cls is None:
            self._cls = self._ray.remote(_Worker)
        cls = self._cls.options(
            num_cpus=self._cpus, num_gpus=1 if self.gpu else 0, max_restarts=-1, max_task_retries=0,
        )  # fmt: skip
        actor = cls.remote(self._device, self._cpus, self._env)
        self._names[actor] = f"ray-{len(self._names)}"
        return actor

    def actor_pids(self) -> list[int]:
        """The actors' process ids (for tests and diagnostics)."""
        return self._ray.get([a.pid.remote() for a in self._actors])

    def run(
        self,
        tasks: Sequence[Task],
        *,
        callback: Callback | None = None,
        cancel: CancelToken | None = None,
        max_retries: int = 2,
    ) -> Iterator[TaskResult]:
        ray = self._ray
        from ray.exceptions import RayError, RayTaskError

        watch = Stopwatch()
        total = len(tasks)
        emit(callback, Started(total=total, info={"workers": self.workers, "executor": self.description}))
        while len(self._actors) < min(self.workers, total):
            self._actors.append(self._new_actor())
        idle: collections.deque[Any] = collections.deque(self._actors)
        pending: collections.deque[tuple[Task, int]] = collections.deque((t, 1) for t in tasks)
        flight: dict[Any, tuple[Task, int, Any]] = {}  # ref -> (task, attempt, actor)
        proven: set[Any] = set()  # actors that have finished a task since they last lost one
        finished_keys: set[str] = set()
        done = 0
        completed = False
        try:
            while done < total:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled(f"cancelled after {done} of {total} tasks", partial=done)
                while idle and pending:
                    task, attempt = pending.popleft()
                    if task.key in finished_keys:
                        continue
                    actor = idle.popleft()
                    flight[actor.run.remote(task.fn, dict(task.kwargs))] = (task, attempt, actor)
                if idle and not pending:  # a copy of each task held by an actor not known to work (yet, again)
                    running = {t.key for t, _, a in flight.values() if a in proven}
                    for t, attempt, a in list(flight.values()):
                        if a not in proven and t.key not in running and idle:
                            actor = idle.popleft()
                            flight[actor.run.remote(t.fn, dict(t.kwargs))] = (t, attempt, actor)
                            running.add(t.key)
                if not flight:
                    break
                ready, _ = ray.wait(list(flight), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    task, attempt, actor = flight.pop(ref)
                    try:
                        value, node = ray.get(ref)
                    except RayTaskError as exc:  # the task itself raised: the job stops with its error
                        cause = getattr(exc, "cause", None)
                        raise (cause if isinstance(cause, BaseException) else exc) from None
                    except RayError as exc:  # the actor, its process or its node died
                        proven.discard(actor)
                        idle.append(actor)  # Ray restarts it; it is used again only when no other is free
                        if task.key in finished_keys or any(t.key == task.key for t, _, _ in flight.values()):
                            continue
                        if attempt > max_retries:
                            raise WorkerError(
                                f"task {task.key} was tried {attempt} times and its Ray worker was lost each time "
                                f"({type(exc).__name__})"
                            ) from None
                        log.warning("Ray worker lost running %s (%s); retrying it", task.key, type(exc).__name__)
                        pending.appendleft((task, attempt + 1))
                        continue
                    proven.add(actor)
                    idle.appendleft(actor)
                    if task.key in finished_keys:
                        continue  # the other copy finished first
                    finished_keys.add(task.key)
                    done += 1
                    yield TaskResult(task.key, value, worker=f"ray:{node}", attempts=attempt)
                    emit(callback, Progress(step=done, total=total, elapsed=watch()))
            completed = True
        finally:
            if not completed:  # cancelled, failed, or the caller stopped reading: stop everything running
                for ref in flight:
                    try:
                        ray.cancel(ref)
                    except Exception:  # noqa: BLE001 - best effort: the actors are killed next
                        pass
                self._kill_actors()
        emit(callback, Finished(result=total, elapsed=watch()))

    def _kill_actors(self) -> None:
        actors, self._actors = self._actors, []
        for actor in actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def close(self) -> None:
        """Kill the actors; disconnect from (or, for ``"local"``, stop) Ray if this executor connected it."""
        if self._ray.is_initialized():
            self._kill_actors()
        if self._own:
            self._own = False
            self._ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
