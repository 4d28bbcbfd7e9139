"""Pieces the subcommands share: output planning, the one progress bar, the one Ctrl-C adapter, number lists."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..events import CancelToken, Event, Finished, Progress, Started
from ..media import check_output_path, check_writable, ensure_folder


def float_list(text: str) -> list[float]:
    """``"0.7,0.3"`` -> [0.7, 0.3] (argparse type)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace output files that already exist")


def plan_outputs(
    inputs: list[Path], out: str | None, out_dir: str | None, tag: str, overwrite: bool, ext: str = ".png"
) -> list[Path]:
    """Where each input's result goes; every path is checked before any work starts."""
    if out and out_dir:
        raise ConfigError("give either -o/--output or --out-dir, not both")
    if out:
        if len(inputs) != 1:
            raise ConfigError(f"-o names one file but there are {len(inputs)} inputs; use --out-dir DIR")
        return [check_output_path(out, overwrite=overwrite)]
    folder = ensure_folder(out_dir) if out_dir else check_writable(Path("."))  # a new --out-dir is created
    paths = [folder / f"{p.stem}_{tag}{ext}" for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dest in zip(inputs, paths, strict=True):
        if dest in seen:
            raise ConfigError(f"{seen[dest]} and {src} would both be written to {dest}; rename one")
        seen[dest] = src
        check_output_path(dest, overwrite=overwrite)
    return paths


class ProgressBar:
    """The one event -> progress-bar adapter: Started/Progress events drive a tqdm bar on stderr.

    A Started event opens a bar (closing any previous one: a study starts one per optimiser, labelled by
    ``label_key`` from its info); Progress moves it to ``event.step`` and shows the loss term ``loss_key`` (as
    ``loss``), or else the first ``show_losses`` terms; Finished closes it. With ``announce`` (a command name) the
    first Started that names a model prints ``"<announce>: <model> on <device>"`` once, so every run says which
    network it uses. Quiet: no bar, no line.
    Use as a callback and close it in a ``finally`` (or as a context manager).
    """

    def __init__(
        self, quiet: bool = False, *, unit: str = "step", desc: str | None = None, total: int = 0,
        label_key: str | None = None, show_losses: int = 1, loss_key: str | None = None, announce: str | None = None,
    ) -> None:  # fmt: skip
        self.quiet, self.unit, self.desc, self.total = quiet, unit, desc, total
        self.label_key, self.show_losses, self.loss_key, self.announce = label_key, show_losses, loss_key, announce
        self._bar: Any = None
        self._announced = False

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, Started):
            self._start(event)
        elif isinstance(event, Progress) and self._bar is not None:
            bar = self._bar
            target = event.step if not bar.total else min(event.step, bar.total)
            if target > bar.n:
                bar.update(target - bar.n)
            if self.loss_key is not None and self.loss_key in event.losses:
                bar.set_postfix({"loss": f"{event.losses[self.loss_key]:.4g}"}, refresh=True)
            elif event.losses and self.show_losses and self.loss_key is None:
                shown = list(event.losses.items())[: self.show_losses]
                bar.set_postfix({k: f"{v:.4g}" for k, v in shown}, refresh=True)
        elif isinstance(event, Finished):
            self.close()

    def _start(self, event: Started) -> None:
        from tqdm import tqdm

        if self.announce and "model" in event.info and not self._announced:
            self._announced = True
            self.write(f"{self.announce}: {event.info['model']} on {event.info.get('device', '?')}")
        self.close()
        desc = self.desc
        if self.label_key and self.label_key in event.info:
            desc = f"{event.info[self.label_key]:<12}"
        total = event.total or self.total or None
        self._bar = tqdm(total=total, unit=self.unit, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)

    def write(self, line: str) -> None:
        """A line on stderr that does not tear the bar."""
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def cancel_on_sigint(what: str = "this step") -> Iterator[CancelToken]:
    """The one Ctrl-C -> cancel adapter: a CancelToken that the first SIGINT (or a SIGTERM) sets.

    The run then stops at its next check, keeps what it finished and the command saves it; a second Ctrl-C
    raises KeyboardInterrupt at once. Outside the main thread (where signals cannot be handled) the token is
    returned untouched. The previous handlers are restored on exit.
    """
    token = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        yield token
        return

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print(f"\nimpasto: stopping after {what} (Ctrl-C again to abort)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield token
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _worker_count(text: str) -> int:
    """``--workers`` value: a positive number, or ``auto``/``0`` (one per device, or per two CPU cores) -> 0."""
    if text.strip().lower() == "auto":
        return 0
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers or 'auto', got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of workers (0 or 'auto' = automatic), got {text!r}")
    return n


def add_worker_options(p: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--ray [ADDRESS]``: spread the job's independent pieces over worker processes.

    Neither given: the job runs in this process as before. Read them back with :func:`open_executor_from_args`.
    """
    g = p.add_argument_group("workers")
    g.add_argument(
        "--workers", type=_worker_count, default=None, metavar="N",
        help="spread the job over N worker processes, each keeping its own copy of the model ('auto' or 0: one "
        "per device, or one per two CPU cores). Default: this process only; with --ray: as many as the cluster "
        "has devices (or CPU pairs)",
    )  # fmt: skip
    g.add_argument(
        "--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
        help="run the workers on a Ray cluster (pip install 'impasto[ray]'): no ADDRESS or 'auto' = the cluster "
        "this machine belongs to (RAY_ADDRESS or 'ray start'); 'HOST:PORT' or 'ray://HOST:10001' = that cluster; "
        "'local' = a Ray started on this machine for this job. Inputs, models and the output folder must be at "
        "paths every node can read and write (a shared folder such as NFS)",
    )  # fmt: skip


def open_executor_from_args(args: argparse.Namespace) -> Any:
    """The executor ``--workers``/``--ray`` (and ``--device``) ask for: an :class:`impasto.workers.Executor`.

    Use it as a context manager. Neither option given: the in-process executor (``workers == 1``: one task after
    another, no subprocess) -- a command may then keep its plain single-process path. Raises ConfigError (one
    line) for ``--ray`` without Ray installed or with a cluster that cannot be reached.
    """
    from .. import api

    workers = getattr(args, "workers", None)
    ray = getattr(args, "ray", None)
    if workers is None and ray is None:
        workers = 1
    return api.open_executor(workers or None, ray, device=getattr(args, "device", "auto"))
