"""One event stream: algorithms report through a single ``callback(event)`` argument.

A new field never breaks an old callback, because there is one argument and events are frozen dataclasses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import Cancelled


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of ``mapping`` (nested dicts and lists frozen too), so an event never aliases a run's
    mutable state: changing the run's history later cannot change an event already delivered, and a callback
    cannot change the run."""
    if not mapping:
        return MappingProxyType({})
    return MappingProxyType({k: _frozen_value(v) for k, v in mapping.items()})


def _frozen_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _frozen(value)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen_value(v) for v in value)
    return value


@dataclass(frozen=True)
class Started:
    """A run began. ``total`` is the number of steps planned (0 when unknown); ``info`` says what runs where
    (``model``, ``device``, ...)."""

    total: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", _frozen(self.info))


@dataclass(frozen=True)
class Progress:
    """Step ``step`` of ``total`` done; ``losses`` maps a term name to its value; ``elapsed`` in seconds.

    ``losses`` and ``info`` are read-only copies made when the event is created.
    """

    step: int
    total: int
    losses: Mapping[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "losses", _frozen(self.losses))
        object.__setattr__(self, "info", _frozen(self.info))


@dataclass(frozen=True)
class Preview:
    """An image at ``step``, the same type for every method: ``image`` is an RGB ``PIL.Image.Image``.

    ``raw`` is the same picture as a float tensor (3, H, W) in [0, 1] where the method has one (painting), for
    callers that convert to 8 bits their own way (neural-style-pt truncates); None otherwise. ``info`` says what
    the image is (e.g. ``{"index": i}`` for the i-th image of a folder).
    """

    step: int
    image: Any
    raw: Any = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", _frozen(self.info))


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
