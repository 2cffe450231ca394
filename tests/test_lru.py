"""fastem._lru.LRUCache: the one LRU cache behind the FFT plan and smoothing-filter caches."""

import threading
import time

import pytest

from fastem._lru import LRUCache


def test_hits_evicts_least_recently_used_and_clears():
    c = LRUCache(2)
    built = []
    get = lambda k: c.get_or_build(k, lambda: built.append(k) or f"v{k}")  # noqa: E731
    assert get(1) == "v1" and get(2) == "v2" and get(1) == "v1"      # 1 is now the most recent
    assert get(3) == "v3"                                             # evicts 2, not 1
    assert 1 in c and 2 not in c and 3 in c and len(c) == 2
    assert built == [1, 2, 3]
    c.clear()
    assert len(c) == 0


def test_racing_builders_share_one_value():
    c = LRUCache(4)
    results = []

    def build():
        time.sleep(0.05)
        return object()

    threads = [threading.Thread(target=lambda: results.append(c.get_or_build("k", build))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1 and len(c) == 1


def test_bad_size():
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(0)
