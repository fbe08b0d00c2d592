"""The dask executor: the shared loop, with ``client.submit`` as its submit.

Runs on a running ``dask.distributed`` cluster (``scheduler="tcp://..."`` or a
``client``), or on a LocalCluster it starts and stops itself. dask is imported
only when this executor is made.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from protectflow.dag.model import HookDAG
from protectflow.errors import ExecutorError, MissingDependencyError
from protectflow.executors._loop import Done, run_loop
from protectflow.executors.invoke import HookCall, HookResult, failed_result, invoke_hook
from protectflow.executors.options import RunOptions
from protectflow.executors.report import RunReport

__all__ = ["DaskExecutor"]

_MISSING = "the dask executor needs 'distributed': pip install 'protectflow[dask]'"
_runs = itertools.count()


class DaskExecutor:
    """Run hooks as dask tasks.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); ``None`` starts
        a LocalCluster of ``workers`` processes for the run.
    workers, threads_per_worker, processes
        The LocalCluster to start when there is no ``scheduler``.
    client
        A ``distributed.Client`` to use as it is (the caller closes it).
    connect_timeout
        Seconds to wait for ``scheduler`` before giving up.
    prefetch
        Hooks handed to dask per worker thread, so that a thread never waits
        for a round trip to the scheduling loop.

    Raises
    ------
    MissingDependencyError
        When ``distributed`` is not installed.
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        *,
        threads_per_worker: int | None = None,
        processes: bool = True,
        client: Any = None,
        connect_timeout: float = 5.0,
        prefetch: int = 4,
    ) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError as err:
            raise MissingDependencyError(_MISSING) from err
        self.scheduler, self.workers, self.client = scheduler, workers, client
        self.threads_per_worker, self.processes = threads_per_worker, processes
        self.connect_timeout, self.prefetch = connect_timeout, max(1, prefetch)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        from distributed import Client, LocalCluster

        if self.client is not None:
            yield self.client
        elif self.scheduler is not None:
            try:
                client = Client(  # type: ignore[no-untyped-call]
                    self.scheduler, timeout=self.connect_timeout, set_as_default=False
                )
            except (OSError, TimeoutError) as err:
                raise ExecutorError(
                    f"cannot reach the dask scheduler at {self.scheduler!r} within "
                    f"{self.connect_timeout:g} s: {err}; is `dask scheduler` running there?"
                ) from err
            with client:
                yield client
        else:
            with LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=self.workers, threads_per_worker=self.threads_per_worker,
                processes=self.processes, dashboard_address=None,
            ) as cluster, Client(  # type: ignore[no-untyped-call]
                cluster, set_as_default=False
            ) as client:
                yield client

    def run(self, dag: HookDAG, options: RunOptions | None = None) -> RunReport:
        with self._connect() as client:
            threads = sum(client.nthreads().values())
            if threads == 0:
                raise ExecutorError(
                    f"the dask cluster at {client.scheduler.address} has no workers"
                )
            return self._run(client, dag, options or RunOptions(), threads)

    def _run(self, client: Any, dag: HookDAG, options: RunOptions, threads: int) -> RunReport:
        futures: dict[int, Any] = {}
        lock = threading.Lock()
        token = f"protectflow-{next(_runs)}-{id(dag):x}"
        finished: queue.SimpleQueue[tuple[HookCall, Any, Done] | None] = queue.SimpleQueue()

        def submit(calls: list[HookCall], done: Done) -> None:
            # One message to the scheduler for the whole batch.
            keys = [f"{token}-{c.index}-{c.attempt}" for c in calls]
            batch = client.map(invoke_hook, calls, key=keys, pure=False, retries=0)
            with lock:
                for call, future in zip(calls, batch, strict=True):
                    futures[call.index] = future
            for call, future in zip(calls, batch, strict=True):
                future.add_done_callback(lambda f, call=call: finished.put((call, f, done)))

        def abandon(indices: Iterable[int]) -> None:
            with lock:
                lost = [futures.pop(i) for i in indices if i in futures]
            if lost:
                client.cancel(lost)

        collector = threading.Thread(target=_collect, args=(client, finished, futures, lock),
                                     name="protectflow-dask-results", daemon=True)
        collector.start()
        try:
            return run_loop(dag, options, submit=submit, capacity=threads * self.prefetch,
                            executor=self.name, abandon=abandon)
        finally:
            finished.put(None)
            collector.join(self.connect_timeout)


def _collect(
    client: Any,
    finished: queue.SimpleQueue[tuple[HookCall, Any, Done] | None],
    futures: dict[int, Any],
    lock: threading.Lock,
) -> None:
    """Fetch finished hooks' results in batches: one gather for all the
    futures that finished since the last, not one round trip each."""
    while True:
        item = finished.get()
        batch = []
        while item is not None:
            batch.append(item)
            try:
                item = finished.get_nowait()
            except queue.Empty:
                break
        ok = [(c, f, d) for c, f, d in batch if f.status == "finished"]
        if ok:
            try:
                results = client.gather([f for _, f, _ in ok])
            except BaseException:  # fall back to one at a time, to blame the right one
                results = [_result(c, f) for c, f, _ in ok]
            for (_, _, d), r in zip(ok, results, strict=True):
                d(r)
        for c, f, d in batch:
            if f.status != "finished":
                d(_result(c, f))
        with lock:
            for c, _, _ in batch:
                futures.pop(c.index, None)
        if item is None:
            return


def _result(call: HookCall, future: Any) -> HookResult:
    try:
        result: HookResult = future.result()
    except BaseException as err:  # a lost worker, a call that would not pickle
        return failed_result(call, err, worker="dask")
    return result
