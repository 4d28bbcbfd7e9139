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
