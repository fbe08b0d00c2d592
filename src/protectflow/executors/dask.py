"""The dask executor: the shared loop, with hook runners on the dask workers.

Runs on a running ``dask.distributed`` cluster (``scheduler="tcp://..."`` or a
``client``), or on a LocalCluster it starts and stops itself. dask is imported
only when this executor is made.

Each worker holds a :class:`_Runner`, a dask actor that runs the hooks handed
to it on threads of its own, as many as the worker has, most critical first.
Why not one dask task per hook: a task costs the scheduler and the worker's
event loop a millisecond or more, which a small machine cannot spend on every
10 ms hook, and tasks queued on one worker cannot be moved to another that
runs dry; a call to an actor goes to its worker alone, carries a whole batch,
and the loop hands each runner only what its threads can start at once. The
runners of a client are kept for its next runs; their threads end after a
while without work.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from protectflow.dag.model import HookDAG
from protectflow.errors import ExecutorError, MissingDependencyError
from protectflow.executors._loop import Done, run_loop
from protectflow.executors.invoke import HookCall, HookResult, failed_result, invoke_chain
from protectflow.executors.options import RunOptions
from protectflow.executors.report import FAILED_STATES, RunReport

__all__ = ["DaskExecutor"]

_MISSING = "the dask executor needs 'distributed': pip install 'protectflow[dask]'"
_runs = itertools.count()
_IDLE = 30.0  # seconds a runner's thread waits for work before it ends


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
    """Run hooks on the workers of a dask cluster.

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
        Hooks handed to a worker per thread of it, so that a thread never
        waits for a round trip to the scheduling loop. Small: hooks handed to
        one worker cannot move to another that runs dry.
    chain
        The most hooks one call runs, one after the other, where it runs: a
        hook and those that can become ready only through it (see
        ``run_loop``). Off (1) by default: a chain runs its followers ahead
        of more critical hooks, and a runner needs no help to start hooks
        quickly.

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
        prefetch: int = 2,
        chain: int = 1,
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
            nthreads = {w: n for w, n in client.nthreads().items() if n > 0}
            if not nthreads:
                raise ExecutorError(
                    f"the dask cluster at {client.scheduler.address} has no workers"
                )
            return self._run(client, dag, options or RunOptions(), nthreads)

    def _run(self, client: Any, dag: HookDAG, options: RunOptions,
             nthreads: dict[str, int]) -> RunReport:
        runners = _runners(client, nthreads, self.connect_timeout)
        # Without keep-going, a runner stops the run where a hook fails for
        # good, before its next thread takes a hook the loop would not start.
        stop = None if options.keep_going else (-1 if options.retries is None
                                                else options.retries)
        run = _PoolRun(runners, f"protectflow-{next(_runs)}-{id(dag):x}", nthreads,
                       self.prefetch, stop)
        try:
            return run_loop(dag, options, submit=run.submit,
                            capacity=sum(nthreads.values()) * self.prefetch,
                            executor=self.name, abandon=run.abandon, chain=self.chain,
                            halt=run.halt)
        finally:
            run.end()


#: Client id -> its runners, kept for its next runs (those of closed
#: clients are dropped at the next run).
_POOLS: dict[str, _Runners] = {}
_POOLS_LOCK = threading.Lock()


def _runners(client: Any, nthreads: dict[str, int], timeout: float) -> _Runners:
    with _POOLS_LOCK:
        for key in [k for k, r in _POOLS.items() if r.client.status in ("closing", "closed")]:
            del _POOLS[key]
        runners = _POOLS.get(client.id)
        if runners is None or runners.client is not client:
            runners = _POOLS[client.id] = _Runners(client)
    runners.start(nthreads, timeout)
    return runners


class _Handle:
    """The client's side of one runner."""

    __slots__ = ("actor", "address", "alive", "future")

    def __init__(self, address: str, future: Any, actor: Any) -> None:
        self.address, self.future, self.actor = address, future, actor
        self.alive = True


class _Runners:
    """A client's runners, one per worker, and the runs that use them.

    One poll per runner waits, on the client's event loop, for the results
    of its hooks and passes them on to the run each belongs to.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.handles: dict[str, _Handle] = {}
        self.runs: dict[str, _PoolRun] = {}

    def start(self, nthreads: dict[str, int], timeout: float) -> None:
        """Start a runner on every worker in ``nthreads`` that has none."""
        with self.lock:
            new = sorted(w for w in nthreads
                         if w not in self.handles or not self.handles[w].alive)
        if not new:
            return
        futures = [
            self.client.submit(_Runner, nthreads[w], actor=True, workers=[w],
                               allow_other_workers=False, pure=False,
                               key=f"protectflow-runner-{next(_runs)}")
            for w in new
        ]
        for address, future in zip(new, futures, strict=True):
            try:
                actor = future.result(timeout=max(timeout, 30.0))
            except Exception as err:
                self.client.cancel(futures)
                raise ExecutorError(
                    f"could not start protectflow's hook runner on the dask worker "
                    f"{address}: {err!r}; is protectflow installed where the workers run?"
                ) from err
            # An actor binds to the default client, which ours need not be.
            actor._client, actor._future = self.client, future
            handle = _Handle(address, future, actor)
            with self.lock:
                self.handles[address] = handle
            self.client.loop.add_callback(self._poll, handle)

    async def _poll(self, handle: _Handle) -> None:
        while True:
            try:
                batch: list[tuple[str, HookResult]] = await handle.actor.results()
            except Exception as err:  # its worker is gone
                with self.lock:
                    handle.alive = False
                    runs = list(self.runs.values())
                for run in runs:
                    run.lost(handle, err)
                return
            with self.lock:
                for token, result in batch:
                    to = self.runs.get(token)
                    if to is not None:
                        to.deliver(handle, result)


class _PoolRun:
    """One run's share of the runners: what it handed to which."""

    def __init__(self, runners: _Runners, token: str, nthreads: dict[str, int],
                 prefetch: int, stop: int | None) -> None:
        self.runners, self.token, self.stop = runners, token, stop
        with runners.lock:
            self.handles = [runners.handles[w] for w in sorted(nthreads)]
            runners.runs[token] = self
        self.room = {h.address: nthreads[h.address] * prefetch for h in self.handles}
        # Per runner: hook index -> the chain it is in, for every chain not
        # all back. Under the runners' lock (the loop's thread and the
        # client's event loop both touch it).
        self.chains: dict[str, dict[int, _Chain]] = {h.address: {} for h in self.handles}
        self.stopping = False

    def submit(self, calls: list[HookCall], done: Done) -> None:
        batches: dict[str, list[HookCall]] = {}
        lost: list[HookCall] = []
        with self.runners.lock:
            live = [h for h in self.handles if h.alive]
            for call in calls:
                if not live:
                    lost.append(call)
                    continue
                handle = max(live, key=lambda h: self.room[h.address])
                chain = _Chain([call, *call.then], done)
                self.room[handle.address] -= len(chain.calls)
                for c in chain.calls:
                    self.chains[handle.address][c.index] = chain
                batches.setdefault(handle.address, []).append(call)
        for handle in self.handles:
            batch = batches.get(handle.address)
            if batch:
                # Sent by the client's event loop.
                handle.actor.run(self.token, batch, self.stop)
        for call in lost:
            done(failed_result(call, ExecutorError("no dask worker is left to run it"),
                               worker="dask"))

    def deliver(self, handle: _Handle, result: HookResult) -> None:
        # Under the runners' lock, on the client's event loop.
        chains = self.chains[handle.address]
        chain = chains.get(result.index)
        if chain is not None and chain.deliver(result):
            for c in chain.calls:
                chains.pop(c.index, None)
            self.room[handle.address] += len(chain.calls)

    def lost(self, handle: _Handle, err: BaseException) -> None:
        with self.runners.lock:
            chains = list({id(c): c for c in self.chains[handle.address].values()}.values())
            self.chains[handle.address].clear()
        for chain in chains:
            # The hooks before the next one have been reported; that one failed.
            chain.deliver(failed_result(chain.calls[chain.next], err,
                                        worker=f"{handle.address} (lost)"))

    def halt(self) -> None:
        """The runners start no further hook of this run (it is stopping)."""
        if not self.stopping:
            self.stopping = True
            for handle in self.handles:
                if handle.alive:
                    handle.actor.halt(self.token)

    def abandon(self, indices: Iterable[int]) -> None:
        self.halt()

    def end(self) -> None:
        with self.runners.lock:
            self.runners.runs.pop(self.token, None)
        if any(self.chains.values()):  # hooks still queued: do not start them
            self.halt()


class _Chain:
    """A chain handed to a runner as one call: its calls, and how many of
    their results have been passed on to the loop."""

    __slots__ = ("calls", "done", "next")

    def __init__(self, calls: list[HookCall], done: Done) -> None:
        self.calls, self.done, self.next = calls, done, 0

    def deliver(self, result: HookResult) -> bool:
        """Pass ``result`` on, if it is the next one; True when no more come."""
        if self.next >= len(self.calls) or result.index != self.calls[self.next].index:
            return False
        self.next += 1
        self.done(result)
        return result.state != "succeeded" or self.next == len(self.calls)


class _Runner:
    """The dask actor on a worker: runs the hooks it is handed on up to
    ``threads`` threads of its own, most critical first, and keeps their
    results until the client's poll takes them.

    Its threads start with the first calls and end after ``_IDLE`` seconds
    without any; the worker's own threads are left to other work.
    """

    def __init__(self, threads: int) -> None:
        import asyncio
        import queue

        from distributed import get_worker

        self._loop = get_worker().loop
        self._threads = threads
        self._queue: queue.PriorityQueue[tuple[int, int, str, HookCall]] = \
            queue.PriorityQueue()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._running = 0  # threads alive
        self._done: list[tuple[str, HookResult]] = []
        self._ready = asyncio.Event()
        self._halted: set[str] = set()  # tokens of stopped runs (a few bytes each)
        self._stops: dict[str, int] = {}  # token -> the retries after which it stops

    async def run(self, token: str, calls: list[HookCall], stop: int | None) -> None:
        """Queue ``calls``; with ``stop`` not ``None``, a hook that fails
        with no retry left (``stop`` retries, or its Operation's if -1) halts
        the run here at once, as the loop will once it hears of it."""
        if stop is not None:
            self._stops[token] = stop
        for call in calls:
            self._queue.put((call.rank, next(self._seq), token, call))
        with self._lock:
            start = min(self._threads - self._running, len(calls))
            self._running += start
        for _ in range(start):
            threading.Thread(target=self._work, name="protectflow-hook", daemon=True).start()

    async def results(self) -> list[tuple[str, HookResult]]:
        """The results not yet taken, once there is at least one."""
        while True:
            with self._lock:
                if self._done:
                    done, self._done = self._done, []
                    return done
            self._ready.clear()
            with self._lock:
                if self._done:
                    continue
            await self._ready.wait()

    async def halt(self, token: str) -> None:
        self._halted.add(token)
        self._stops.pop(token, None)

    def _work(self) -> None:
        import queue

        while True:
            try:
                _, _, token, call = self._queue.get(timeout=_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._running -= 1
                        return
                continue
            invoke_chain(call, functools.partial(self._report, token),
                         functools.partial(self._halted.__contains__, token))

    def _report(self, token: str, result: HookResult) -> None:
        stop = self._stops.get(token)
        if stop is not None and result.state in FAILED_STATES \
                and result.attempt > (result.retries if stop < 0 else stop):
            self._halted.add(token)
        with self._lock:
            self._done.append((token, result))
            first = len(self._done) == 1
        if first:
            self._loop.add_callback(self._ready.set)
