"""The dask executor's hook runners, and the client's side of them.

Each worker holds a :class:`_Runner`, a dask actor that runs the hooks handed
to it on threads of its own, as many as the worker has, most critical first.
Why not one dask task per hook: a task costs the scheduler and the worker's
event loop a millisecond or more, which a small machine cannot spend on every
10 ms hook, and tasks queued on one worker cannot be moved to another that
runs dry; a call to an actor goes to its worker alone, carries a whole batch,
and the loop hands each runner only what its threads can start soon. The
runners of a client are kept for its next runs; their threads end after
``_IDLE`` seconds without work.

A runner keeps each run's Operations (one per resource) until the client
ends the run, so all hooks of a resource go to the runner its first hook
went to. Where that is depends on how long hooks take (their mean so far):
hooks longer than :data:`_BALANCE_ABOVE` (about a round trip to a worker
process and back) go to the runner with the least work committed per
thread, counting every hook not yet back of the resources living there,
those not yet submitted too -- placing by the calls queued at the moment let
one runner collect more of the later, long hooks and finish last; shorter
hooks go to the runner with the most room, which is the one that just
reported, so a resource lands beside those whose results freed it (placing
no-op hooks by committed work scattered them, and cost 45% more per hook
over two worker processes). The loop's critical order holds within each
runner's queue. The cost: a resource's later hooks cannot move
to a runner that runs dry, and with no-op hooks a hook's successor waits on
the runner that is busy reporting its predecessor (``tools/bench_run.py``,
no-op hooks on two worker processes: 186-268 us per hook before Operations
were kept per resource, 257-348 after; lost in the noise once hooks take
10 ms).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import queue
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from protectflow.dag.model import HookDAG
from protectflow.errors import ExecutorError
from protectflow.executors._loop import Done
from protectflow.executors.instances import Instances
from protectflow.executors.invoke import HookCall, HookResult, failed_result, invoke_chain
from protectflow.executors.options import RunOptions
from protectflow.states import FAILED_STATES, SUCCEEDED

__all__ = ["PoolRun", "runners"]

_keys = itertools.count()
_IDLE = 30.0  # seconds a runner's thread waits for work before it ends
_POLL = 10.0  # seconds a poll of a runner waits for results before it asks again
_READY_POLL = 1.0  # seconds between looks at a starting runner's worker
#: Mean hook seconds above which a new resource goes to the runner with the
#: least committed work rather than the one with the most room (see above).
_BALANCE_ABOVE = 0.002


#: Client id -> its runners, kept for its next runs (those of closed
#: clients are dropped at the next run).
_POOLS: dict[str, _Runners] = {}
_POOLS_LOCK = threading.Lock()


def runners(client: Any, nthreads: dict[str, int]) -> _Runners:
    """The runners of ``client``, started on every worker in ``nthreads``."""
    with _POOLS_LOCK:
        for key in [k for k, r in _POOLS.items() if r.client.status in ("closing", "closed")]:
            del _POOLS[key]
        runners = _POOLS.get(client.id)
        if runners is None or runners.client is not client:
            runners = _POOLS[client.id] = _Runners(client)
    runners.start(nthreads)
    return runners


def _bind(actor: Any, client: Any, future: Any) -> None:
    """Make ``actor`` (the result of ``future``) call through ``client``.

    An actor binds itself to the default client when it is deserialised, not
    to the client whose future it came from, which ours need not be (a
    ``Client(set_as_default=False)``, or another default created later):
    dask/distributed#7842, open. ``distributed`` has no public way to bind it
    (``Client.as_current`` does not reach where the result is deserialised),
    so this is the one place that sets the actor's private ``_client`` and
    ``_future``, as dask's ``local.py`` reaches into ``pool._pool``.
    """
    actor._client, actor._future = client, future


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
        self.runs: dict[str, PoolRun] = {}

    def start(self, nthreads: dict[str, int]) -> None:
        """Start a runner on every worker in ``nthreads`` that has none."""
        with self.lock:
            new = sorted(w for w in nthreads
                         if w not in self.handles or not self.handles[w].alive)
        if not new:
            return
        futures = [
            self.client.submit(_Runner, nthreads[w], actor=True, workers=[w],
                               allow_other_workers=False, pure=False,
                               key=f"protectflow-runner-{next(_keys)}")
            for w in new
        ]
        for address, future in zip(new, futures, strict=True):
            try:
                actor = self._started(address, future)
            except Exception as err:
                self.client.cancel(futures)
                raise ExecutorError(
                    f"could not start protectflow's hook runner on the dask worker "
                    f"{address}: {err!r}; is protectflow installed where the workers run?"
                ) from err
            _bind(actor, self.client, future)
            handle = _Handle(address, future, actor)
            with self.lock:
                self.handles[address] = handle
            self.client.loop.add_callback(self._poll, handle)

    def _started(self, address: str, future: Any) -> Any:
        """The runner of ``future`` once it is up on the worker at
        ``address``: however long a busy worker takes to start it (importing
        protectflow there can take seconds), but not once the worker left.

        Raises
        ------
        ExecutorError
            If the worker left the cluster first.
        """
        while True:
            try:
                return future.result(timeout=_READY_POLL)
            except TimeoutError:
                if address not in self.client.nthreads():
                    raise ExecutorError(f"the dask worker {address} left the cluster "
                                        "before protectflow's hook runner started on it"
                                        ) from None

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
            if not batch and self.client.status in ("closing", "closed"):
                return
            with self.lock:
                for token, result in batch:
                    to = self.runs.get(token)
                    if to is not None:
                        to.deliver(handle, result)


class PoolRun:
    """One run's share of the runners: what it handed to which."""

    def __init__(self, runners: _Runners, token: str, nthreads: dict[str, int],
                 prefetch: int, options: RunOptions, dag: HookDAG | None = None) -> None:
        self.runners, self.token = runners, token
        self.nthreads = nthreads
        self.fail_fast, self.retries = not options.keep_going, options.retries
        with runners.lock:
            self.handles = [runners.handles[w] for w in sorted(nthreads)]
            runners.runs[token] = self
        self.room = {h.address: nthreads[h.address] * prefetch for h in self.handles}
        # Per runner: hook index -> the chain it is in, for every chain not
        # all back. Under the runners' lock (the loop's thread and the
        # client's event loop both touch it).
        self.chains: dict[str, dict[int, _Chain]] = {h.address: {} for h in self.handles}
        #: (plugin, resource key) -> the runner its hooks go to: the one
        #: holding its Operation (see :mod:`protectflow.executors.instances`).
        self.homes: dict[tuple[str, str], _Handle] = {}
        #: (plugin, resource key) -> its hooks not yet back, and per runner
        #: the sum of that over the resources living there: the work a runner
        #: is committed to, which places each new resource (see :meth:`_home`).
        self.left: Counter[tuple[str, str]] = Counter(
            (n.plugin, n.resource.key) for n in (dag.nodes if dag is not None else ()))
        self.load = dict.fromkeys(self.room, 0)
        self.hook_seconds, self.hooks_back = 0.0, 0  # for the mean hook time
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
                handle = self._home(call, live)
                chain = _Chain([call, *call.then], done)
                self.room[handle.address] -= len(chain.calls)
                for c in chain.calls:
                    self.chains[handle.address][c.node_index] = chain
                batches.setdefault(handle.address, []).append(call)
        for handle in self.handles:
            batch = batches.get(handle.address)
            if batch:
                # Sent by the client's event loop.
                handle.actor.run(self.token, batch, self.fail_fast, self.retries)
        for call in lost:
            done(failed_result(call, ExecutorError("no dask worker is left to run it"),
                               worker="dask"))

    def _home(self, call: HookCall, live: list[_Handle]) -> _Handle:
        """The runner of ``call``'s chain: that of its resource once one of
        its hooks went somewhere, else the least loaded per thread (if hooks
        are long) or the one with the most room (see the module's notes).
        Every resource of the chain now lives there (the loop chains no hook
        of a resource that lives elsewhere). Under the runners' lock.

        A resource whose runner was lost moves to a live one, where its next
        hook gets a new Operation, as after a resume.
        """
        homes = self.homes
        handle = homes.get(_home_key(call))
        if handle is None or not handle.alive:
            if self.hooks_back and self.hook_seconds / self.hooks_back > _BALANCE_ABOVE:
                handle = min(live, key=lambda h: (
                    self.load[h.address] / self.nthreads[h.address], -self.room[h.address]))
            else:
                handle = max(live, key=lambda h: self.room[h.address])
        for c in (call, *call.then):
            key = _home_key(c)
            if homes.get(key) is not handle:
                homes[key] = handle
                self.load[handle.address] += self.left[key]
        return handle

    def deliver(self, handle: _Handle, result: HookResult) -> None:
        # Under the runners' lock, on the client's event loop.
        chains = self.chains[handle.address]
        chain = chains.get(result.node_index)
        if chain is None:
            return
        call = chain.calls[chain.next] if chain.next < len(chain.calls) else None
        finished = chain.deliver(result)
        if call is not None and call.node_index == result.node_index:  # passed on: count it
            self.hook_seconds += max(0.0, result.end - result.start)
            self.hooks_back += 1
            key = _home_key(call)
            if result.state == SUCCEEDED and self.left[key] > 0:
                self.left[key] -= 1
                self.load[handle.address] -= 1
        if finished:
            for c in chain.calls:
                chains.pop(c.node_index, None)
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
        # The run's Operations end with it, on every runner it used.
        for handle in {id(h): h for h in self.homes.values()}.values():
            if handle.alive:
                handle.actor.end(self.token)


def _home_key(call: HookCall) -> tuple[str, str]:
    return call.node.plugin, call.node.resource.key


class _Chain:
    """A chain handed to a runner as one call: its calls, and how many of
    their results have been passed on to the loop."""

    __slots__ = ("calls", "done", "next")

    def __init__(self, calls: list[HookCall], done: Done) -> None:
        self.calls, self.done, self.next = calls, done, 0

    def deliver(self, result: HookResult) -> bool:
        """Pass ``result`` on, if it is the next one; True when no more come."""
        if self.next >= len(self.calls) or result.node_index != self.calls[self.next].node_index:
            return False
        self.next += 1
        self.done(result)
        return result.state != SUCCEEDED or self.next == len(self.calls)


class _Runner:
    """The dask actor on a worker: runs the hooks it is handed on up to
    ``threads`` threads of its own, most critical first, and keeps their
    results until the client's poll takes them.

    Its threads start with the first calls and end after ``_IDLE`` seconds
    without any; the worker's own threads are left to other work.
    """

    def __init__(self, threads: int) -> None:
        # Made on a dask worker only: distributed is there, and is not
        # imported with protectflow.
        from distributed import get_worker

        worker = get_worker()
        self._loop = worker.loop
        self._name = f"protectflow-hook {worker.address}"  # its threads', numbered
        self._thread_numbers = itertools.count(1)  # each thread its own trace track
        self._threads = threads
        self._queue: queue.PriorityQueue[tuple[int, int, str, HookCall]] = \
            queue.PriorityQueue()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._running = 0  # threads alive
        self._done: list[tuple[str, HookResult]] = []
        self._ready = asyncio.Event()
        self._halted: set[str] = set()  # tokens of stopped runs (a few bytes each)
        #: Token -> the Operations of that run here, until the client ends it.
        self._instances: dict[str, Instances] = {}
        #: Token of a fail-fast run -> its retries (None: each Operation's).
        self._fail_fast: dict[str, int | None] = {}

    async def run(self, token: str, calls: list[HookCall], fail_fast: bool,
                  retries: int | None) -> None:
        """Queue ``calls``. In a ``fail_fast`` run, a hook that fails with no
        retry left (``retries``, else its Operation's) halts the run here at
        once, as the loop will once it hears of it."""
        if fail_fast:
            self._fail_fast[token] = retries
        if token not in self._halted and calls:
            self._instances.setdefault(token, Instances(calls[0].registry))
        for call in calls:
            self._queue.put((call.rank, next(self._seq), token, call))
        with self._lock:
            start = min(self._threads - self._running, len(calls))
            self._running += start
        for _ in range(start):
            threading.Thread(target=self._work, daemon=True,
                             name=f"{self._name} #{next(self._thread_numbers)}").start()

    async def results(self, wait: float = _POLL) -> list[tuple[str, HookResult]]:
        """The results not yet taken, once there is at least one, or none
        after ``wait`` seconds (so that no call outlives its client long)."""
        while True:
            with self._lock:
                if self._done:
                    done, self._done = self._done, []
                    return done
            self._ready.clear()
            with self._lock:
                if self._done:
                    continue
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except asyncio.TimeoutError:
                return []

    async def halt(self, token: str) -> None:
        self._halted.add(token)
        self._fail_fast.pop(token, None)

    async def end(self, token: str) -> None:
        """The run is over: drop its Operations (hooks it abandoned still
        running keep theirs), and start none of its hooks."""
        self._halted.add(token)
        self._fail_fast.pop(token, None)
        self._instances.pop(token, None)

    def _work(self) -> None:
        while True:
            try:
                _, _, token, call = self._queue.get(timeout=_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._running -= 1
                        return
                continue
            self._run(token, call)

    def _run(self, token: str, call: HookCall) -> None:
        # Its own frame: a thread waiting for work must not keep the last
        # run's Operations alive.
        instances = self._instances.get(token)
        if instances is None:  # a run that ended: its hooks are skipped unrun
            instances = Instances(call.registry)
        invoke_chain(call, functools.partial(self._report, token),
                     functools.partial(self._halted.__contains__, token),
                     instances=instances)

    def _report(self, token: str, result: HookResult) -> None:
        if result.state in FAILED_STATES and token in self._fail_fast:
            retries = self._fail_fast[token]
            if result.attempt > (result.retries if retries is None else retries):
                self._halted.add(token)
        with self._lock:
            self._done.append((token, result))
            first = len(self._done) == 1
        if first:
            self._loop.add_callback(self._ready.set)
