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
from protectflow.executors.invoke import HookCall, HookResult, failed_result, invoke_chain
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
    chain
        The most hooks one dask task runs, one after the other: a hook and
        those that can become ready only through it (see ``run_loop``). Fewer,
        longer tasks spare dask's scheduler, which on a small machine cannot
        start a task per 10 ms hook on every thread. 1 turns it off.

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
        chain: int = 4,
    ) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError as err:
            raise MissingDependencyError(_MISSING) from err
        self.scheduler, self.workers, self.client = scheduler, workers, client
        self.threads_per_worker, self.processes = threads_per_worker, processes
        self.connect_timeout, self.prefetch = connect_timeout, max(1, prefetch)
        self.chain = max(1, chain)
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
        # Key -> the task of every chain handed to dask and not yet all back.
        # Touched by the loop's thread, the client's event loop and the
        # watcher: under ``lock``.
        pending: dict[str, _Task] = {}
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
                task = pending.get(key)
                if task is not None and task.deliver(result):
                    del pending[key]
                    settled.append(task.future)

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
                    pending[key] = _Task([call, *call.then], done, future)

        def abandon(indices: Iterable[int]) -> None:
            left = set(indices)
            with lock:
                lost = [k for k, t in pending.items() if left & {c.index for c in t.calls}]
                futures = [pending.pop(k).future for k in lost]
            if futures:
                client.cancel(futures)

        def halt() -> None:
            # Chains check this before each next hook; a few ms to reach the
            # workers, once per run.
            try:
                client.run(_halt, token, wait=False)
            except Exception as err:  # the chains then run to their end
                logging.getLogger(__name__).warning("could not halt chains: %r", err)

        _ROUTES[token] = pushed
        client.subscribe_topic(topic, _route)
        watcher = threading.Thread(target=_watch, args=(pending, settled, lock, stop),
                                   name="protectflow-dask-watch", daemon=True)
        watcher.start()
        try:
            return run_loop(dag, options, submit=submit, capacity=threads * self.prefetch,
                            executor=self.name, abandon=abandon, chain=self.chain, halt=halt)
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


class _Task:
    """A chain handed to dask as one task: its calls, and how many of their
    results have been passed on to the loop."""

    __slots__ = ("calls", "done", "future", "next")

    def __init__(self, calls: list[HookCall], done: Done, future: Any) -> None:
        self.calls, self.done, self.future, self.next = calls, done, future, 0

    def deliver(self, result: HookResult) -> bool:
        """Pass ``result`` on, if it is the next one; True when no more come."""
        if result.index != self.calls[self.next].index:
            return False
        self.next += 1
        self.done(result)
        return result.state != "succeeded" or self.next == len(self.calls)


#: Tokens of the runs whose chains must start no further hook (in each worker
#: process; a few bytes per stopped run).
_HALTED: set[str] = set()


async def _halt(token: str) -> None:  # a coroutine: run with wait=False
    _HALTED.add(token)


def _run_hook(call: HookCall, key: str, *, topic: str) -> list[HookResult]:
    """The dask task: run the hook, then its chain, pushing each result to the
    client at once.

    The result travels as a structured event on the streams dask already
    keeps open (worker to scheduler, scheduler to client), ahead of the
    task's own completion, so the client needs no gather round trip and no
    callback per future. It is pickled here: the scheduler passes it on
    without unpickling, and so needs no protectflow. The task also returns
    them, for the watcher to fetch should the events never come.
    """
    from distributed import get_worker

    worker = get_worker()
    token = key.split("-", 1)[1]

    def report(result: HookResult) -> None:
        worker.log_event(topic, [key, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)])

    return invoke_chain(call, report, lambda: token in _HALTED)


def _watch(
    pending: dict[str, _Task],
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
            gone = [(k, t) for k, t in pending.items() if t.future.status != "pending"]
        for key, task in gone:
            if task.future.status == "finished":
                # The events come before the task's completion: give them a
                # moment before fetching the results.
                stop.wait(_WATCH)
            results = _results(task)
            with lock:
                if pending.pop(key, None) is None:
                    continue
                for result in results:
                    if task.deliver(result):
                        break


def _results(task: _Task) -> list[HookResult]:
    try:
        results: list[HookResult] = task.future.result()
    except BaseException as err:  # a lost worker, a call that would not pickle
        # The hooks before the next one have been reported; that one failed.
        return [failed_result(task.calls[task.next], err, worker="dask")]
    return results
