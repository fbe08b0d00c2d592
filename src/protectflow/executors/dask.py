"""The dask executor: the shared loop, with ``client.submit`` as its submit.

Runs on a running ``dask.distributed`` cluster (``scheduler="tcp://..."`` or a
``client``), or on a LocalCluster it starts and stops itself. dask is imported
only when this executor is made.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator
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


def _probe(address: str, timeout: float) -> None:
    """Raise ExecutorError unless a TCP scheduler address accepts a connection
    (other schemes are left to ``Client``)."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme != "tcp":
            return
        host, port = parse_host_port(location)
    except ValueError as err:
        raise ExecutorError(f"bad --scheduler {address!r}: {err}; give it as "
                            "tcp://HOST:PORT") from err
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ExecutorError(
            f"cannot reach the dask scheduler at {address!r} within {timeout:g} s: "
            f"{err.strerror or err}; is `dask scheduler` running there?"
        ) from err


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
    ExecutorError
        When ``scheduler`` is a TCP address that is malformed or does not
        accept a connection within ``connect_timeout``.
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
        if scheduler is not None and client is None:
            # Operations make their executor before they write to the bank: a
            # scheduler that is not there must fail here, not after protect has
            # created a checkpoint.
            _probe(scheduler, connect_timeout)

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
                # A dashboard on a free port, no log noise (workers closing at the end).
                processes=self.processes, dashboard_address=":0", silence_logs=logging.ERROR,
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
        # Key -> (call, done, future) of every hook handed to dask and not yet
        # back. Touched by the loop's thread, the client's event loop and the
        # watcher: under ``lock``.
        pending: dict[str, tuple[HookCall, Done, Any]] = {}
        lock = threading.Lock()
        token = f"protectflow-{next(_runs)}-{id(dag):x}"
        topic = f"protectflow-results-{client.id}"
        # Futures whose result arrived: held until dask too has them done,
        # for releasing a key still processing costs the scheduler more.
        settled: list[Any] = []
        stop = threading.Event()

        def pushed(key: str, result: HookResult) -> None:
            # On the client's event loop.
            with lock:
                found = pending.pop(key, None)
                if found is not None:
                    settled.append(found[2])
            if found is not None:
                found[1](result)

        def submit(calls: list[HookCall], done: Done) -> None:
            # One message to the scheduler for the whole batch.
            # A task group (the key up to its first '-') per hook: a group
            # this small is never queued on the scheduler as "root-ish", so
            # tasks go to the workers at once, to run in priority order.
            keys = [f"pf{c.index}_{c.attempt}-{token}" for c in calls]
            batch = client.map(_run_hook, calls, keys, topic=topic, key=keys, pure=False,
                               retries=0)
            with lock:
                for key, call, future in zip(keys, calls, batch, strict=True):
                    pending[key] = (call, done, future)

        def abandon(indices: Iterable[int]) -> None:
            left = set(indices)
            with lock:
                lost = [k for k, (c, _, _) in pending.items() if c.index in left]
                futures = [pending.pop(k)[2] for k in lost]
            if futures:
                client.cancel(futures)

        _ROUTES[token] = pushed
        client.subscribe_topic(topic, _route)
        watcher = threading.Thread(target=_watch, args=(pending, settled, lock, stop),
                                   name="protectflow-dask-watch", daemon=True)
        watcher.start()
        try:
            return run_loop(dag, options, submit=submit, capacity=threads * self.prefetch,
                            executor=self.name, abandon=abandon)
        finally:
            _ROUTES.pop(token, None)
            stop.set()
            watcher.join(self.connect_timeout)


#: Run token -> where its pushed results go (one topic handler per client
#: serves every run on it).
_ROUTES: dict[str, Callable[[str, HookResult], None]] = {}

_WATCH = 0.05  # seconds between looks for tasks that dask itself failed


def _route(event: tuple[float, Any]) -> None:
    key, blob = event[1]
    to = _ROUTES.get(key.split("-", 1)[1])
    if to is not None:
        to(key, pickle.loads(blob))


def _run_hook(call: HookCall, key: str, *, topic: str) -> HookResult:
    """The dask task: run the hook and push its result to the client at once.

    The result travels as a structured event on the streams dask already
    keeps open (worker to scheduler, scheduler to client), ahead of the
    task's own completion, so the client needs no gather round trip and no
    callback per future. It is pickled here: the scheduler passes it on
    without unpickling, and so needs no protectflow. The task also returns
    it, for the watcher to fetch should the event never come.
    """
    from distributed import get_worker

    result = invoke_hook(call)
    get_worker().log_event(topic, [key, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)])
    return result


def _watch(
    pending: dict[str, tuple[HookCall, Done, Any]],
    settled: list[Any],
    lock: threading.Lock,
    stop: threading.Event,
) -> None:
    """Release settled futures; report the tasks dask itself failed (a lost
    worker, a call that would not pickle), or that finished without their
    result arriving."""
    while not stop.wait(_WATCH):
        with lock:
            settled[:] = [f for f in settled if f.status == "pending"]
            gone = [(k, v) for k, v in pending.items() if v[2].status != "pending"]
        for key, (call, done, future) in gone:
            if future.status == "finished":
                # The event comes before the task's completion: give it a
                # moment before fetching the result.
                stop.wait(_WATCH)
            with lock:
                if pending.pop(key, None) is None:
                    continue
            done(_result(call, future))


def _result(call: HookCall, future: Any) -> HookResult:
    try:
        result: HookResult = future.result()
    except BaseException as err:  # a lost worker, a call that would not pickle
        return failed_result(call, err, worker="dask")
    return result
