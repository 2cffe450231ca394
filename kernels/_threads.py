"""The CPU thread count the kernels plan their work for (set by ``fastem.config.set_threads``).

Kernels import nothing above them, so the setting is pushed down here instead of read from
``fastem.config``; reading a module global also avoids ``numba.get_num_threads()`` in hot
loops (0.2 ms a call under load, see ``kmeans_assign._threads``).
"""

from __future__ import annotations

import os

try:
    _count = max(1, len(os.sched_getaffinity(0)))
except AttributeError:  # pragma: no cover - non-Linux
    _count = max(1, os.cpu_count() or 1)
try:  # ``$FASTEM_THREADS`` (validated, with its message, by fastem.config)
    _count = max(1, int(os.environ.get("FASTEM_THREADS") or _count))
except ValueError:
    pass


def get() -> int:
    """The thread count in effect (all available cores until ``set_threads`` says otherwise)."""
    return _count


def set(n: int) -> None:  # noqa: A001 - module-level setter, used as _threads.set(n)
    """Record the thread count (called by ``fastem.config.set_threads``)."""
    global _count
    _count = max(1, int(n))
