"""One event stream: algorithms report through a single ``callback(event)`` argument.

A new field never breaks an old callback, because there is one argument and events are frozen dataclasses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Cancelled


@dataclass(frozen=True)
class Started:
    """A run began. ``total`` is the number of steps planned (0 when unknown)."""

    total: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """Step ``step`` of ``total`` done; ``losses`` maps a term name to its value; ``elapsed`` in seconds."""

    step: int
    total: int
    losses: Mapping[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Preview:
    """An intermediate image at ``step``: ``image`` is a PIL image or a (3, H, W) tensor in [0, 1]."""

    step: int
    image: Any


@dataclass(frozen=True)
class Finished:
    """The run ended; ``result`` is what the algorithm returns."""

    result: Any
    elapsed: float = 0.0


Event = Started | Progress | Preview | Finished
Callback = Callable[[Event], None]


def emit(callback: Callback | None, event: Event) -> None:
    """Send ``event`` to ``callback`` if there is one."""
    if callback is not None:
        callback(event)


class CancelToken:
    """A thread-safe flag an algorithm checks every step; ``cancel()`` may be called from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, partial: Any = None) -> None:
        """Raise ``Cancelled(partial)`` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("cancelled", partial=partial)


class Stopwatch:
    """Seconds since creation, for ``elapsed`` fields."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self._t0
