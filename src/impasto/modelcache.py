"""Loaded networks, owned by whoever runs impasto: an explicit cache instead of module globals.

A one-shot command uses :data:`impasto.api`'s default cache and exits; a long-lived process (the web studio, a
notebook, a worker) makes its own :class:`ModelCache`, passes it as ``models=`` to the API functions, and calls
:meth:`ModelCache.release` to give the memory back (GPU memory included). Loaded weights are read-only, so one
cache may serve several threads; loading is serialised per cache.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelCache:
    """Up to ``capacity`` loaded objects keyed by what decides them (file, mtime, device, precision, ...).

    ``get(key, load)`` returns the cached object or calls ``load()`` and keeps the result, evicting the least
    recently used beyond ``capacity``. ``release()`` drops everything (or one key) and empties the CUDA cache.
    """

    def __init__(self, capacity: int = 4) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = load()
            self._items[key] = value
            while len(self._items) > self.capacity:
                old, _ = self._items.popitem(last=False)
                log.debug("model cache: evicted %s", old)
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def release(self, key: Hashable | None = None) -> None:
        """Forget ``key`` (or everything) and hand freed GPU memory back to the driver."""
        with self._lock:
            if key is None:
                self._items.clear()
            else:
                self._items.pop(key, None)
        gc.collect()
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
