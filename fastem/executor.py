"""Where independent tasks run: in this process, or on Dask workers (LiberTEM-style executors).

fastem's embarrassingly parallel jobs (e.g. the random starts of multi-start phase retrieval,
split into chunks) are written as a function applied to a list of picklable items. An executor
decides where the calls run:

:class:`InlineExecutor` (the default)
    one after the other, in the calling process -- no dependency, no pickling.
:class:`DaskExecutor`
    on the workers of a ``dask.distributed`` cluster: :meth:`DaskExecutor.connect` to a running
    scheduler (``tcp://host:8786``), or :meth:`DaskExecutor.make_local` for a
    ``distributed.LocalCluster`` on this machine. Needs ``pip install 'fastem[distributed]'``.

:func:`make_executor` maps the CLI's ``--scheduler`` value (none / ``inline`` / ``local`` /
an address) to one. Executors are context managers; :meth:`Executor.close` shuts down what
the executor itself started (a local cluster), never a cluster it merely connected to.

Every worker must run the same fastem version; each task uses the worker's default device
(``fastem.config.settings``, ``--device``) and all its threads.

Security: ``--scheduler`` / :meth:`DaskExecutor.connect` must point at a **trusted** Dask
scheduler. Dask exchanges pickled functions, arguments and results, so whoever controls the
scheduler or its workers can run arbitrary code in this process and read the data sent to
them. Use ``local`` or a cluster you run yourself, on a network you trust.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .errors import InputError

__all__ = ["Executor", "InlineExecutor", "DaskExecutor", "make_executor", "items_per_task"]


def _settings_threads() -> int:
    """This process's fastem thread count (run on each worker by :meth:`DaskExecutor.worker_threads`)."""
    from .config import settings

    return int(settings.threads)


class Executor:
    """Runs ``fn(item)`` for a list of items and returns the results in order."""

    #: how many calls can run at the same time (callers split work into at least this many tasks)
    slots: int = 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def imap_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any], window: int | None = None):
        """Yield ``(index, fn(item))`` as calls finish, with at most ``window`` in flight.

        For jobs that write each result by region as it arrives: memory is bounded by ``window``
        results (default two per slot) whatever the number of items.
        """
        for i, item in enumerate(items):   # the sequential default (InlineExecutor)
            yield i, fn(item)

    def task_memory(self) -> int | None:
        """Bytes one task may use on a worker (``None``: no limit known, e.g. in this process,
        where each job's own memory options apply)."""
        return None

    def persist(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
        """Compute ``fn(item)`` for each item and keep the results where they were computed;
        returns handles for :meth:`map_held` (in this process: the results themselves)."""
        return [fn(item) for item in items]

    def map_held(self, fn: Callable[..., Any], handles: list, *args) -> list:
        """``fn(held, *args)`` for each persisted result, run where it is held; results in order."""
        return [fn(h, *args) for h in handles]

    def release(self, handles: list) -> None:
        """Forget persisted results (a Dask worker frees their memory)."""

    def worker_threads(self) -> list[int]:
        """The distinct CPU thread counts (``fastem.config.settings.threads``) the tasks run with:
        e.g. to plan, before submitting, the FFTs the workers will build (``$FASTEM_THREADS`` on
        each worker sets its count)."""
        return [_settings_threads()]

    def close(self) -> None:
        """Release what this executor started."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return type(self).__name__


class InlineExecutor(Executor):
    """Run every call in the calling process, sequentially."""

    slots = 1

    def map(self, fn, items) -> list:
        return [fn(item) for item in items]

    def describe(self) -> str:
        return "inline"


def _distributed():
    try:
        import distributed
    except ImportError:
        raise InputError("dask.distributed is not installed: pip install 'fastem[distributed]' "
                         "(or 'dask[distributed]')") from None
    return distributed


class DaskExecutor(Executor):
    """Run calls as tasks on a ``dask.distributed`` cluster.

    Parameters
    ----------
    client : distributed.Client
    close_cluster : bool
        Close the client (and its cluster) in :meth:`close` -- True when this executor created
        them (:meth:`make_local`).
    """

    def __init__(self, client, close_cluster: bool = False):
        self.client = client
        self._close_cluster = bool(close_cluster)

    @classmethod
    def connect(cls, address: str, timeout: float = 30.0) -> "DaskExecutor":
        """Connect to the scheduler at ``address`` (e.g. ``tcp://10.0.0.1:8786``).

        Only connect to a scheduler you trust: tasks and results travel as pickles, and a
        hostile scheduler or worker can run code in this process.
        """
        distributed = _distributed()
        try:
            client = distributed.Client(address, timeout=timeout)
        except OSError as exc:
            raise InputError(f"scheduler {address} (--scheduler): cannot connect to a Dask scheduler ({exc})") from None
        return cls(client, close_cluster=False)

    @classmethod
    def make_local(cls, n_workers: int | None = 1, threads_per_worker: int | None = 1,
                   processes: bool = True, **cluster_kwargs) -> "DaskExecutor":
        """Start a ``distributed.LocalCluster`` (closed with the executor).

        The default, one worker process with one Dask thread, suits fastem's tasks, which use
        every core through FFTW and Numba threads themselves; start several workers per machine
        only for GPUs (one each) or when the cores outnumber what one task can use.
        """
        distributed = _distributed()
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                           processes=processes, dashboard_address=None, **cluster_kwargs)
        return cls(distributed.Client(cluster), close_cluster=True)

    @property
    def slots(self) -> int:  # type: ignore[override]
        return max(1, sum(self.client.nthreads().values()))

    def task_memory(self) -> int | None:
        """The smallest worker memory limit divided by that worker's threads (the tasks one worker
        runs at once share its limit); ``None`` when a worker has no limit (``memory_limit=0``)."""
        info = self.client.scheduler_info().get("workers", {})
        per_task = []
        for w in info.values():
            limit = int(w.get("memory_limit") or 0)
            if limit <= 0:
                return None
            per_task.append(limit // max(1, int(w.get("nthreads") or 1)))
        return min(per_task) if per_task else None

    def persist(self, fn, items) -> list:
        """Futures of ``fn(item)`` kept in the workers' memory (recomputed by Dask if a worker is lost)."""
        distributed = _distributed()
        workers = sorted(self.client.scheduler_info().get("workers", {}))
        # spread round-robin over the workers (loosely: a lost worker's share is recomputed elsewhere)
        futures = [self.client.submit(fn, item, pure=False,
                                      **({"workers": [workers[i % len(workers)]], "allow_other_workers": True}
                                         if workers else {})) for i, item in enumerate(items)]
        distributed.wait(futures)            # loaded before the first use (the data stay on the workers)
        for f in futures:
            if f.status == "error":
                f.result()                   # re-raises the task's exception here
        return futures

    def map_held(self, fn, handles, *args) -> list:
        """Each task runs on the worker that holds its future (no data moves between workers);
        the arguments travel with each task."""
        who = self.client.who_has(handles)
        futures = []
        for h in handles:
            held_by = list(who.get(h.key, ()))
            where = {"workers": held_by, "allow_other_workers": True} if held_by else {}   # lost: anywhere
            futures.append(self.client.submit(fn, h, *args, pure=False, **where))
        return self.client.gather(futures)

    def release(self, handles) -> None:
        for f in handles:
            f.release()

    def worker_threads(self) -> list[int]:
        return sorted(set(int(v) for v in self.client.run(_settings_threads).values())) or [_settings_threads()]

    def map(self, fn, items) -> list:
        futures = self.client.map(fn, list(items), pure=False)
        return self.client.gather(futures)

    def imap_unordered(self, fn, items, window: int | None = None):
        """As :meth:`Executor.imap_unordered`, on the workers (a task of a lost worker is rerun by Dask)."""
        distributed = _distributed()
        window = max(1, int(window or 2 * self.slots))
        pending = iter(enumerate(items))
        index_of = {}
        queue = distributed.as_completed()

        def submit_next() -> bool:
            try:
                i, item = next(pending)
            except StopIteration:
                return False
            fut = self.client.submit(fn, item, pure=False)
            index_of[fut.key] = i
            queue.add(fut)
            return True

        for _ in range(window):
            if not submit_next():
                break
        for fut in queue:
            result = fut.result()       # re-raises a task's exception here, in the caller
            i = index_of.pop(fut.key)
            fut.release()
            submit_next()
            yield i, result

    def close(self) -> None:
        if self._close_cluster:
            cluster = self.client.cluster
            self.client.close()
            if cluster is not None:
                cluster.close()
            self._close_cluster = False

    def describe(self) -> str:
        return f"dask ({self.client.scheduler.address}, {self.slots} worker thread(s))"


def make_executor(scheduler: str | None = None) -> Executor:
    """The executor for ``--scheduler``: None or ``"inline"`` -> :class:`InlineExecutor`,
    ``"local"`` -> :meth:`DaskExecutor.make_local`, anything else -> :meth:`DaskExecutor.connect`
    (a scheduler address, which must be trusted: Dask exchanges pickles)."""
    if scheduler is not None and not isinstance(scheduler, str):
        raise InputError(f"scheduler must be None, 'inline', 'local' or an address such as tcp://host:8786, "
                         f"got {type(scheduler).__name__}")
    if scheduler is None or str(scheduler).strip().lower() in ("", "inline"):
        return InlineExecutor()
    if str(scheduler).strip().lower() == "local":
        return DaskExecutor.make_local()
    return DaskExecutor.connect(str(scheduler).strip())


#: share of a worker's per-task memory a task plans to use (the rest: Python, libraries, Dask's buffers)
TASK_MEMORY_FRACTION = 0.5


def items_per_task(executor: Executor, requested: int, bytes_per_item: int, *, what: str, item: str,
                   fixed_bytes: int = 0) -> int:
    """How many items (images, detector rows, data rows) one task may take on ``executor``'s
    workers: ``requested``, lowered so that ``fixed_bytes + n * bytes_per_item`` stays within
    :data:`TASK_MEMORY_FRACTION` of :meth:`Executor.task_memory` (Dask's ``memory_limit`` per
    worker thread). A lowered value is announced once with a :class:`ResourceWarning`; when not
    even one item fits, :class:`~fastem.errors.InputError` says how much a task needs and has.
    """
    import warnings

    requested = max(1, int(requested))
    budget = executor.task_memory()
    if budget is None:
        return requested
    usable = int(budget * TASK_MEMORY_FRACTION) - int(fixed_bytes)
    fits = usable // max(1, int(bytes_per_item))
    if fits < 1:
        raise InputError(f"{what}: one {item} needs about {(fixed_bytes + bytes_per_item) / 2**20:.0f} MiB per task "
                         f"but the Dask workers allow {budget / 2**20:.0f} MiB per thread (memory_limit / threads; "
                         f"a task plans to use {TASK_MEMORY_FRACTION:.0%} of it): start workers with more memory "
                         f"or fewer threads")
    if fits < requested:
        warnings.warn(f"{what}: {requested} {item}s per task would need about "
                      f"{(fixed_bytes + requested * bytes_per_item) / 2**20:.0f} MiB, more than "
                      f"{TASK_MEMORY_FRACTION:.0%} of the workers' {budget / 2**20:.0f} MiB per thread; "
                      f"using {fits} per task", ResourceWarning, stacklevel=3)
        return int(fits)
    return requested
