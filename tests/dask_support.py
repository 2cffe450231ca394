"""Shared pieces of the Dask tests: a 2-worker local cluster and a way to kill one worker."""

from __future__ import annotations

import os

import pytest


def two_worker_cluster():
    """Two single-threaded worker processes, as on the 2-core CI machine (close it after use)."""
    from fastem.executor import DaskExecutor

    return DaskExecutor.make_local(n_workers=2, threads_per_worker=1, processes=True)


@pytest.fixture(scope="module")
def cluster():
    """The 2-worker cluster for one test module (import this fixture into the module)."""
    ex = two_worker_cluster()
    yield ex
    ex.close()


def first_worker(executor) -> str:
    return sorted(executor.client.scheduler_info()["workers"])[0]


def kill_worker(executor, address: str) -> None:
    """Make the worker process at ``address`` exit at once (its nanny starts a new one)."""
    try:
        executor.client.run(os._exit, 1, workers=[address])
    except Exception:   # the worker drops the connection while exiting
        pass


def is_gone(executor, address: str) -> bool:
    return address not in executor.client.scheduler_info()["workers"]


def kill_first_worker_once(executor):
    """``(callback, killed, victim)``: ``callback(*args)`` kills ``victim`` (the first worker) on
    its first call and records that call's first argument in ``killed``; later calls do nothing."""
    victim = first_worker(executor)
    killed = []

    def callback(*args):
        if not killed:
            killed.append(args[0] if args else None)
            kill_worker(executor, victim)

    return callback, killed, victim
