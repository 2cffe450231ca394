"""One small thread-safe LRU cache for objects that are expensive to build (FFT plans, filters).

``functools.lru_cache`` would do for pure functions, but the caches here need the value built
*outside* the lock (FFTW planning takes seconds and must not block other threads' lookups), one
shared value per key when two threads race to build it, and an explicit key (it includes
process settings such as the thread count).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class LRUCache:
    """``get_or_build(key, build)``: the cached value, else ``build()`` stored (least recently used
    entries dropped beyond ``maxsize``). Thread-safe; ``build`` runs outside the lock and, when two
    threads build the same key, the first stored value is returned to both."""

    def __init__(self, maxsize: int):
        if int(maxsize) < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], Any], on_store: Callable[[Any], None] | None = None):
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = build()
        with self._lock:
            existing = self._data.get(key)
            if existing is not None:           # another thread stored one meanwhile: share it
                self._data.move_to_end(key)
                return existing
            if on_store is not None:
                on_store(value)
            self._data[key] = value
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key) -> bool:
        return key in self._data
