"""The one scheduling loop every executor runs.

As in dask's ``local.get_async``, the loop is parameterised by ``submit``: the
serial executor's runs the hook at once, the threads executor's hands it to a
pool, the dask executor's to ``client.submit``. Whatever the executor, results
come back through one completion queue and the loop alone decides what starts
next, so limits, fail-fast, retries and cancellation mean the same everywhere.

An executor may also take chains (``chain`` > 1): with a hook, the hooks that
can only become ready through it, each with that one predecessor, run one
after the other where it runs (fewer tasks for dask's scheduler). A chain stops
at its first hook that does not succeed, and, once ``halt`` has been called
(the run is stopping), before its next hook, which it reports ``skipped``; the
loop then handles every hook of it as if it had started it itself.

With a journal (``RunOptions.journal``) the loop records every start and end,
and releases a hook's dependents only once its success is durable; with
``RunOptions.completed`` it takes the hooks an earlier run finished as
succeeded, without running them (a resumed run).
"""

from __future__ import annotations

import heapq
import queue
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from protectflow.dag.model import HookDAG
from protectflow.executors._chains import Chains
from protectflow.executors._journal import Flushed, JournalWriter
from protectflow.executors._order import critical_order, limit_groups
from protectflow.executors._views import Views
from protectflow.executors.invoke import (
    NEW_RESOURCES_OPERATIONS,
    SKIPPED,
    HookCall,
    HookResult,
)
from protectflow.executors.options import RunOptions
from protectflow.executors.report import (
    FAILED_STATES,
    Attempt,
    Event,
    HookRecord,
    Recorded,
    RunReport,
)

__all__ = ["Submit", "run_loop"]

_PENDING = "pending"
_POLL = 0.1  # seconds between looks at the cancel event while waiting

Done = Callable[[HookResult], None]


class Submit(Protocol):
    """Start ``calls`` and arrange for ``done(result)`` as each finishes.

    ``done`` may be called from any thread, or before ``submit`` returns. The
    loop hands over every hook it may start at once, so that an executor can
    send them in one message.
    """

    def __call__(self, calls: list[HookCall], done: Done) -> None: ...


def run_loop(
    dag: HookDAG,
    options: RunOptions,
    *,
    submit: Submit,
    capacity: int,
    executor: str,
    abandon: Callable[[Iterable[int]], None] | None = None,
    chain: int = 1,
    halt: Callable[[], None] | None = None,
) -> RunReport:
    """Run ``dag`` with at most ``capacity`` hooks handed to ``submit`` at once.

    Ready hooks start most critical first (the longest chain of hooks still
    to run after them), ties lowest node index first: a fixed total order, so
    with ``capacity=1`` and a ``submit`` that runs at once the order is the
    same in every run.
    ``abandon`` is told which hooks are still running when a cancelled run's
    grace period is over. ``chain`` is the most hooks one call may carry
    (``HookCall.then``); ``halt`` is called once when a run that has chains
    or hooks out stops, to stop them before their next hook (an executor that
    queues hooks where they run starts none of them after that).
    """
    run = _Run(dag, options, executor, capacity)
    # A journal must record a success before its dependents start: chains
    # only with a journal a worker can write to (``record_link``).
    linkable = options.journal is None or hasattr(options.journal, "record_link")
    run.chains.length = max(1, chain) if linkable else 1
    run.halt = halt
    return run.run(submit, abandon)


class _Run:
    def __init__(self, dag: HookDAG, options: RunOptions, executor: str, capacity: int) -> None:
        self.dag, self.options, self.executor = dag, options, executor
        self.capacity = max(1, capacity)
        nodes = dag.nodes
        index = {n.id: i for i, n in enumerate(nodes)}
        self.preds: list[list[int]] = [[] for _ in nodes]
        self.succs: list[list[int]] = [[] for _ in nodes]
        for e in dag.edges:
            s, t = index[e.source], index[e.target]
            self.preds[t].append(s)
            self.succs[s].append(t)
        self.waiting = [len(p) for p in self.preds]
        self.records = [HookRecord(n.id, n.resource.key, n.hook, _PENDING) for n in nodes]
        self.views = Views(self.preds) if dag.operation in NEW_RESOURCES_OPERATIONS else None
        self.groups, self.room = limit_groups(dag, options)
        # The ready and parked heaps hold ranks, not node indices: popping the
        # smallest starts the most critical hook (see critical_order).
        self.rank, self.by_rank = critical_order(self.preds, self.succs)
        self.parked: list[list[int]] = [[] for _ in self.room]
        self.ready: list[int] = []
        self.delayed: list[tuple[float, int]] = []
        self.inflight: dict[int, int] = {}  # node index -> attempt
        self.queue: queue.SimpleQueue[HookResult | Flushed] = queue.SimpleQueue()
        self.stopping = False
        self.cancelled = False
        self.grace_deadline = float("inf")
        self.listeners = tuple(options.listeners)
        self.resumed: dict[int, Recorded] = {
            index[nid]: done for nid, done in options.completed.items() if nid in index}
        self.journal: JournalWriter | None = None
        self.unflushed = 0  # successes handed to the journal, not yet durable
        self.journal_error: BaseException | None = None
        self.halt: Callable[[], None] | None = None
        self.chains = Chains(1, self.succs, self.waiting, self.groups, self.rank, self._chainable)

    # -- events -----------------------------------------------------------

    def emit(self, kind: str, i: int | None = None, attempt: int = 0, message: str = "") -> None:
        if not self.listeners:
            return
        event = Event(kind, time.time(), None if i is None else self.dag.nodes[i].id,
                      attempt, message)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as err:  # a broken listener must not break the run
                warnings.warn(f"run listener {listener!r} failed: {err!r}", stacklevel=2)

    # -- the loop ---------------------------------------------------------

    def run(self, submit: Submit, abandon: Callable[[Iterable[int]], None] | None) -> RunReport:
        start = time.time()
        self.emit("run_started", message=f"{len(self.records)} hooks on {self.executor}")
        if self.options.journal is not None:
            self.journal = JournalWriter(self.options.journal, self.queue.put)
        # The roots first, then enqueue: taking a resumed hook's recorded
        # result lowers its dependents' counts, and a count that reaches 0 on
        # the way must not be enqueued a second time (a hook run twice).
        for i in [i for i, n in enumerate(self.waiting) if n == 0]:
            self._enqueue(i)
        try:
            self._loop(submit, abandon)
        finally:
            end = time.time()
            self._settle()
            if self.journal is not None:
                self.journal.close()  # what is left (failures, starts) is recorded
        if self.journal_error is not None:
            raise self.journal_error
        report = RunReport(
            self.dag.operation, self.dag.plan, self.executor, self._overall(), start, end,
            {r.node: r for r in self.records},
        )
        self.emit("run_finished", message=report.state)
        return report

    def _settle(self) -> None:
        """Give every hook left pending its final state."""
        records = self.records
        for i, record in enumerate(records):
            if record.state == _PENDING and record.history and i not in self.inflight:
                # It failed and the run stopped before its retry: it failed.
                record.state = record.history[-1].state
                self.emit(record.state, i, record.attempts, "not retried: the run stopped")
                self._upstream_failed(i)
        for i, record in enumerate(records):
            if record.state == _PENDING:
                record.state = "cancelled"
                self.emit("cancelled", i)

    def _overall(self) -> str:
        if self.cancelled:
            return "cancelled"
        bad = FAILED_STATES | {"upstream_failed"}
        return "failed" if any(r.state in bad for r in self.records) else "succeeded"

    def _loop(self, submit: Submit, abandon: Callable[[Iterable[int]], None] | None) -> None:
        cancel = self.options.cancel
        while True:
            now = time.time()
            while self.delayed and self.delayed[0][0] <= now and not self.stopping:
                heapq.heappush(self.ready, self.rank[heapq.heappop(self.delayed)[1]])
            try:
                self._fill(submit)
            except KeyboardInterrupt:
                self._cancel("interrupted")
            idle = not self.inflight and not self.unflushed
            if idle and (self.stopping or not (self.ready or self.delayed)):
                return
            if self.cancelled and now >= self.grace_deadline:
                self._abandon(abandon)
                return
            wait = _POLL
            if self.delayed and not self.stopping:
                wait = min(wait, max(0.0, self.delayed[0][0] - now))
            try:
                result: HookResult | Flushed | None = self.queue.get(timeout=wait)
            except queue.Empty:
                result = None
            except KeyboardInterrupt:
                if self.cancelled:  # a second Ctrl-C: stop waiting for running hooks
                    self._abandon(abandon)
                    return
                self._cancel("interrupted")
                continue
            while result is not None:
                if isinstance(result, Flushed):
                    self._flushed(result)
                else:
                    self._finish(result)
                try:
                    result = self.queue.get_nowait()
                except queue.Empty:
                    result = None
            if cancel is not None and cancel.is_set() and not self.cancelled:
                self._cancel("cancelled")

    def _stop(self) -> None:
        if not self.stopping and (self.chains.claimed or self.inflight) and self.halt is not None:
            self.halt()
        self.stopping = True

    def _cancel(self, why: str) -> None:
        self._stop()
        self.cancelled = True
        self.grace_deadline = time.time() + self.options.grace
        self.emit("cancelling", message=why)

    def _abandon(self, abandon: Callable[[Iterable[int]], None] | None) -> None:
        """The grace period is over: whatever still runs is reported cancelled."""
        left = list(self.inflight)
        self.inflight.clear()
        for i in left:
            self.records[i].state = "cancelled"
            self.emit("cancelled", i, message="still running when the grace period ended")
        if abandon is not None and left:
            abandon(left)

    # -- starting hooks ---------------------------------------------------

    def _make_ready(self, i: int) -> None:
        heapq.heappush(self.ready, self.rank[i])
        self.emit("queued", i)

    def _enqueue(self, i: int) -> None:
        """Hook ``i`` may start: queue it, or, if an earlier run finished it,
        take its recorded result and go on to its dependents."""
        stack = [i]
        records = self.records
        while stack:
            j = stack.pop()
            done = self.resumed.get(j)
            if done is None:
                self._make_ready(j)
                continue
            record = records[j]
            record.state, record.resumed = "succeeded", True
            record.output, record.new_resources = done.output, done.new_resources
            self.emit("succeeded", j, 0, "recorded by an earlier run")
            if self.views is not None:
                self.views.done(j, done.new_resources)
            for s in self.succs[j]:
                self.waiting[s] -= 1
                if self.waiting[s] == 0 and records[s].state == _PENDING:
                    stack.append(s)

    def _fill(self, submit: Submit) -> None:
        ready, groups, room = self.ready, self.groups, self.room
        calls: list[HookCall] = []
        while ready and not self.stopping and len(self.inflight) < self.capacity:
            i = self.by_rank[heapq.heappop(ready)]
            full = next((g for g in groups[i] if room[g] <= 0), None) if groups[i] else None
            if full is not None:
                # Parked until a hook of that group finishes: never a lock a
                # pool thread waits on.
                heapq.heappush(self.parked[full], self.rank[i])
                continue
            for g in groups[i]:
                room[g] -= 1
            calls.append(self._chained(i))
        if not calls:
            return
        try:
            submit(calls, self.queue.put)
        except KeyboardInterrupt:
            # The serial executor runs hooks right here.
            for call in calls:
                if self.inflight.pop(call.index, None) is not None:
                    self._release(call.index)
                    self.records[call.index].state = "cancelled"
            raise

    def _call(self, i: int) -> HookCall:
        record = self.records[i]
        attempt = record.attempts + 1
        record.attempts = attempt
        self.inflight[i] = attempt
        options = self.options
        node = self.dag.nodes[i]
        self.emit("started", i, attempt)
        if self.journal is not None:
            self.journal.add({"node": node.id, "event": "started", "attempt": attempt,
                              "time": time.time()})
        return HookCall(
            i, node, self.dag.operation, self.dag.parameters.get(node.resource.key, {}), attempt,
            registry=options.registry, checkpoint=options.checkpoint, context=options.context,
            view=self.views.view(i) if self.views is not None else None,
            target_checkpoint=options.target_checkpoint, timeout=options.timeout,
            rank=self.rank[i],
        )

    # -- finishing hooks --------------------------------------------------

    def _chained(self, i: int) -> HookCall:
        """The call of hook ``i``, carrying the chain that follows it."""
        call = self._call(i)
        links = self.chains.links(i)
        if not links:
            return call
        return attrs.evolve(call, then=tuple(map(self._link, links)),
                            journal=self.options.journal)

    def _chainable(self, s: int) -> bool:
        return (s not in self.resumed and self.records[s].state == _PENDING
                and (self.views is None or len(self.preds[s]) == 1))

    def _link(self, i: int) -> HookCall:
        # The executor fills in the view: its predecessor's plus its writes.
        node, options = self.dag.nodes[i], self.options
        return HookCall(
            i, node, self.dag.operation, self.dag.parameters.get(node.resource.key, {}), 1,
            registry=options.registry, checkpoint=options.checkpoint, context=options.context,
            target_checkpoint=options.target_checkpoint, timeout=options.timeout,
        )

    def _adopt(self, i: int) -> None:
        """Chained hook ``i`` starts where its predecessor ran."""
        self.chains.started(i)
        self.records[i].attempts = 1
        self.inflight[i] = 1
        self.emit("started", i, 1)

    def _release(self, i: int) -> None:
        for g in self.groups[i]:
            self.room[g] += 1
            parked = self.parked[g]
            if parked:
                heapq.heappush(self.ready, heapq.heappop(parked))

    def _finish(self, r: HookResult) -> None:
        i = r.index
        if self.inflight.get(i) != r.attempt:
            return  # an abandoned hook that finished after all
        del self.inflight[i]
        self._release(i)
        record = self.records[i]
        if r.state == SKIPPED:  # never started: as if never handed over
            record.attempts -= 1
            self.chains.stopped(i)
            if not self.stopping and self.waiting[i] == 0:
                self._make_ready(i)  # else its predecessor's release queues it
            return
        record.history.append(Attempt(r.attempt, r.state, r.start, r.end, r.worker))
        record.log.extend(r.log)
        if record.start is None:
            record.start = r.start
        record.end = r.end
        record.error = r.error
        if r.state == "succeeded":
            record.state = "succeeded"
            record.output = r.output
            record.new_resources = r.writes
            self.emit("succeeded", i, r.attempt)
            if self.views is not None:
                self.views.done(i, r.writes)
            if self.journal is None or r.journaled:
                if self.journal is not None:  # recorded by its worker: durable, no gate
                    self.journal.add(_entry(record, r, output=r.output, new_resources=r.writes))
                self._release_dependents(i)
                self.chains.succeeded(i)
            else:  # its dependents wait until its success is durable
                j = self.chains.succeeded(i)
                if j is not None:
                    # The worker recorded this success before it went on.
                    self._adopt(j)
                self.unflushed += 1
                self.journal.add(_entry(record, r, output=r.output, new_resources=r.writes),
                                 gate=i)
            return
        self.chains.stopped(i)
        retries = self.options.retries if self.options.retries is not None else r.retries
        retrying = r.attempt <= retries and not self.stopping
        if self.journal is not None:
            self.journal.add(_entry(record, r, error=r.error.to_json() if r.error else None,
                                    retrying=retrying))
        if retrying:
            base = self.options.retry_delay
            delay = (r.retry_delay if base is None else base) * 2 ** (r.attempt - 1)
            heapq.heappush(self.delayed, (time.time() + delay, i))
            msg = r.error.message if r.error else ""
            self.emit("retried", i, r.attempt, f"{r.state}: {msg}; retrying in {delay:.3g} s")
            return
        record.state = r.state
        self.emit(r.state, i, r.attempt, r.error.message if r.error else "")
        self._upstream_failed(i)
        if not self.options.keep_going:
            self._stop()

    def _release_dependents(self, i: int) -> None:
        for s in self.succs[i]:
            self.waiting[s] -= 1
            if s in self.inflight:
                continue  # a chained hook, adopted when its worker went on
            if self.waiting[s] == 0 and self.records[s].state == _PENDING:
                if s in self.chains.claimed:
                    self._adopt(s)
                else:
                    self._enqueue(s)

    def _flushed(self, f: Flushed) -> None:
        self.unflushed -= len(f.gates)
        if f.error is not None:
            # Nothing more is durable: stop as after a failure, and raise.
            if self.journal_error is None:
                self.journal_error = f.error
                self.emit("cancelling", message=f"the run journal failed: {f.error}")
            self._stop()
            return
        for i in f.gates:
            if self.records[i].state == "succeeded":
                self._release_dependents(i)

    def _upstream_failed(self, i: int) -> None:
        stack = list(self.succs[i])
        records = self.records
        while stack:
            s = stack.pop()
            if records[s].state == _PENDING:
                records[s].state = "upstream_failed"
                self.emit("upstream_failed", s, message=f"{self.dag.nodes[i].id} failed")
                stack.extend(self.succs[s])


def _entry(record: HookRecord, r: HookResult, **fields: Any) -> dict[str, Any]:
    return {"node": record.node, "event": r.state, "attempt": r.attempt, "time": r.end,
            "worker": r.worker, **fields}
