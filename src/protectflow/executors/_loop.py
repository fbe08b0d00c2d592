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

Why one module of ~480 lines: ``_Run`` is one state machine. Starting a hook,
its end, a retry, a durable journal batch, a cancel and the grace period all
read and write the same few structures (the ready heap, ``inflight``, the
waiting counts, the records, ``stopping``), and each rule (fail fast, the
journal gate, chains) is a condition over several of them; split across
modules, every rule would be read in two places. What is an idea of its own
with its own state is in a module beside this one: the limit groups
(``_limits``), the critical order (``_order``), chains (``_chains``), views
(``_views``) and the journal's writer (``_journal``).
"""

from __future__ import annotations

import heapq
import queue
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from protectflow.dag.model import HookDAG
from protectflow.executors._chains import Chains
from protectflow.executors._journal import Flushed, JournalWriter, LinkJournal
from protectflow.executors._limits import Limits
from protectflow.executors._order import adjacency, critical_order
from protectflow.executors._views import Views
from protectflow.executors.invoke import (
    SKIPPED,
    HookCall,
    HookResult,
    ended_entry,
    started_entry,
)
from protectflow.executors.options import RunOptions
from protectflow.executors.report import Attempt, Event, HookRecord, Recorded, RunReport
from protectflow.plugins.contract import NEW_RESOURCES_OPERATIONS
from protectflow.states import (
    CANCELLED,
    CANCELLING,
    FAILED,
    FAILED_STATES,
    QUEUED,
    RETRIED,
    RUN_FINISHED,
    RUN_STARTED,
    STARTED,
    SUCCEEDED,
    UPSTREAM_FAILED,
)

__all__ = ["Submit", "run_loop"]

_PENDING = "pending"  # the loop's own: no hook ends in it
_POLL = 0.1  # seconds between looks at the cancel event while waiting

Done = Callable[[HookResult], None]
Abandon = Callable[[Iterable[int]], None]


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
    abandon: Abandon | None = None,
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
    run = _Run(dag, options, executor=executor, capacity=capacity, chain=chain, halt=halt)
    return run.run(submit, abandon)


class _Run:
    def __init__(self, dag: HookDAG, options: RunOptions, *, executor: str, capacity: int,
                 chain: int, halt: Callable[[], None] | None) -> None:
        self.dag, self.options, self.executor = dag, options, executor
        self.capacity = max(1, capacity)
        self.halt = halt
        index, self.preds, self.succs = adjacency(dag)
        self.waiting = [len(p) for p in self.preds]
        self.records = [HookRecord(n.id, n.resource.key, n.hook, _PENDING) for n in dag.nodes]
        # Each hook's parameters, looked up once rather than at each attempt.
        self.parameters = [dag.parameters.get(r.resource, {}) for r in self.records]
        self.views = Views(self.preds) if dag.operation in NEW_RESOURCES_OPERATIONS else None
        self.limits = Limits(dag, options)
        # The ready, parked and delayed heaps hold ranks, not node indices:
        # popping the smallest starts the most critical hook (see critical_order).
        self.rank, self.by_rank = critical_order(self.preds, self.succs)
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
        self.journal: JournalWriter | None = None  # started with the run
        self.unflushed = 0  # successes handed to the journal, not yet durable
        self.journal_error: BaseException | None = None
        # A journal must record a success before its dependents start: chains
        # only with a journal a worker can write to, or none.
        journal = options.journal
        self.link_journal = journal if isinstance(journal, LinkJournal) else None
        length = max(1, chain) if journal is None or self.link_journal is not None else 1
        home = [(n.plugin, r.resource) for n, r in zip(dag.nodes, self.records, strict=True)]
        self.chains = Chains(length, self.succs, self.waiting, self.limits.groups, self.rank,
                             self._chainable, home=home)

    # -- events -----------------------------------------------------------

    def emit(self, kind: str, i: int | None = None, attempt: int = 0, message: str = "",
             total: int = 0) -> None:
        if not self.listeners:
            return
        event = Event(kind, time.time(), None if i is None else self.dag.nodes[i].id,
                      attempt, message, total)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as err:  # a broken listener must not break the run
                warnings.warn(f"run listener {listener!r} failed: {err!r}", stacklevel=2)

    # -- the loop ---------------------------------------------------------

    def run(self, submit: Submit, abandon: Abandon | None) -> RunReport:
        start = time.time()
        self.emit(RUN_STARTED, message=f"{len(self.records)} hooks on {self.executor}",
                  total=len(self.records))
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
        self.emit(RUN_FINISHED, message=report.state)
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
                record.state = CANCELLED
                self.emit(CANCELLED, i)

    def _overall(self) -> str:
        if self.cancelled:
            return CANCELLED
        bad = FAILED_STATES | {UPSTREAM_FAILED}
        return FAILED if any(r.state in bad for r in self.records) else SUCCEEDED

    def _loop(self, submit: Submit, abandon: Abandon | None) -> None:
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
            try:
                self._drain(self._wait(now))
            except KeyboardInterrupt:
                if self.cancelled:  # a second Ctrl-C: stop waiting for running hooks
                    self._abandon(abandon)
                    return
                self._cancel("interrupted")
                continue
            if cancel is not None and cancel.is_set() and not self.cancelled:
                self._cancel("cancelled")

    def _wait(self, now: float) -> HookResult | Flushed | None:
        """The next result, or None once it is time to look at the clock."""
        wait = _POLL
        if self.delayed and not self.stopping:
            wait = min(wait, max(0.0, self.delayed[0][0] - now))
        try:
            return self.queue.get(timeout=wait)
        except queue.Empty:
            return None

    def _drain(self, result: HookResult | Flushed | None) -> None:
        """Handle ``result`` and every other one already queued."""
        pending = self.queue
        while result is not None:
            if isinstance(result, Flushed):
                self._flushed(result)
            else:
                self._finish(result)
            # This thread alone takes from the queue: not empty means a get succeeds.
            result = None if pending.empty() else pending.get_nowait()

    def _stop(self) -> None:
        if not self.stopping and (self.chains.claimed or self.inflight) and self.halt is not None:
            self.halt()
        self.stopping = True

    def _cancel(self, why: str) -> None:
        self._stop()
        self.cancelled = True
        self.grace_deadline = time.time() + self.options.grace
        self.emit(CANCELLING, message=why)

    def _abandon(self, abandon: Abandon | None) -> None:
        """The grace period is over: whatever still runs is reported cancelled."""
        left = list(self.inflight)
        self.inflight.clear()
        for i in left:
            self.records[i].state = CANCELLED
            self.emit(CANCELLED, i, message="still running when the grace period ended")
        if abandon is not None and left:
            abandon(left)

    # -- starting hooks ---------------------------------------------------

    def _make_ready(self, i: int) -> None:
        heapq.heappush(self.ready, self.rank[i])
        if self.listeners:
            self.emit(QUEUED, i)

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
            record.state, record.resumed = SUCCEEDED, True
            record.output, record.new_resources = done.output, done.new_resources
            record.status_updates.extend(done.status_updates)
            self.emit(SUCCEEDED, j, 0, "recorded by an earlier run")
            if self.views is not None:
                self.views.done(j, done.new_resources)
            for s in self.succs[j]:
                self.waiting[s] -= 1
                if self.waiting[s] == 0 and records[s].state == _PENDING:
                    stack.append(s)

    def _fill(self, submit: Submit) -> None:
        ready, limits = self.ready, self.limits
        groups = limits.groups
        calls: list[HookCall] = []
        while ready and not self.stopping and len(self.inflight) < self.capacity:
            rank = heapq.heappop(ready)
            i = self.by_rank[rank]
            # (a hook in no limit group is admitted without asking)
            if not groups[i] or limits.admit(i, rank):  # else parked until its group has room
                calls.append(self._chained(i) if self.chains.length > 1 else self._call(i))
        if not calls:
            return
        try:
            submit(calls, self.queue.put)
        except KeyboardInterrupt:
            # The serial executor runs hooks right here.
            for call in calls:
                if self.inflight.pop(call.node_index, None) is not None:
                    self._release(call.node_index)
                    self.records[call.node_index].state = CANCELLED
            raise

    def _chained(self, i: int) -> HookCall:
        """The call of hook ``i``, carrying the chain that follows it."""
        call = self._call(i)
        links = self.chains.links(i) if self.chains.length > 1 else ()
        if not links:
            return call
        # A link's view is left to its runner: its predecessor's plus its writes.
        then = tuple(self._hook_call(j, 1) for j in links)
        return call._replace(then=then, journal=self.link_journal)

    def _call(self, i: int) -> HookCall:
        """Start the next attempt of hook ``i``: its call, recorded as started."""
        record = self.records[i]
        attempt = record.attempts = record.attempts + 1
        self.inflight[i] = attempt
        if self.listeners:
            self.emit(STARTED, i, attempt)
        if self.journal is not None:
            self.journal.add(started_entry(record.node, attempt))
        view = self.views.view(i) if self.views is not None else None
        return self._hook_call(i, attempt, view=view, rank=self.rank[i])

    def _hook_call(self, i: int, attempt: int, *, view: dict[str, Any] | None = None,
                   rank: int = 0) -> HookCall:
        options = self.options
        # Positional, in HookCall's field order: made once per hook attempt.
        return HookCall(i, self.dag.nodes[i], self.dag.operation, self.parameters[i], attempt,
                        options.registry, options.checkpoint, options.context, view,
                        options.target_checkpoint, options.timeout, None, (), rank)

    def _chainable(self, s: int) -> bool:
        return (s not in self.resumed and self.records[s].state == _PENDING
                and (self.views is None or len(self.preds[s]) == 1))

    def _adopt(self, i: int) -> None:
        """Chained hook ``i`` starts where its predecessor ran."""
        self.chains.started(i)
        self.records[i].attempts = 1
        self.inflight[i] = 1
        self.emit(STARTED, i, 1)

    # -- finishing hooks --------------------------------------------------

    def _release(self, i: int) -> None:
        if self.limits.groups[i]:
            self.limits.release(i, self.ready)

    def _finish(self, r: HookResult) -> None:
        i = r.node_index
        if self.inflight.get(i) != r.attempt:
            return  # an abandoned hook that finished after all
        del self.inflight[i]
        if self.limits.groups[i]:
            self.limits.release(i, self.ready)
        if r.state == SKIPPED:
            self._skipped(i)
            return
        record = self.records[i]
        record.history.append(Attempt(r.attempt, r.state, r.start, r.end, r.worker))
        record.log.extend(r.log)
        record.status_updates.extend(r.status_updates)
        if record.start is None:
            record.start = r.start
        record.end = r.end
        record.error = r.error
        if r.state == SUCCEEDED:
            self._succeeded(i, r)
        else:
            self._failed(i, r)

    def _skipped(self, i: int) -> None:
        """Chained hook ``i`` was never started: as if never handed over."""
        self.records[i].attempts -= 1
        self.chains.stopped(i)
        if not self.stopping and self.waiting[i] == 0:
            self._make_ready(i)  # else its predecessor's release queues it

    def _succeeded(self, i: int, r: HookResult) -> None:
        record = self.records[i]
        record.state, record.output, record.new_resources = SUCCEEDED, r.output, r.writes
        if self.listeners:
            self.emit(SUCCEEDED, i, r.attempt)
        if self.views is not None:
            self.views.done(i, r.writes)
        journal = self.journal
        if journal is None or r.journaled:
            if journal is not None:  # recorded by its worker: durable, no gate
                journal.add(ended_entry(record.node, r))
            self._release_dependents(i)
            if self.chains.length > 1:
                self.chains.succeeded(i)
            return
        # Its dependents wait until its success is durable.
        j = self.chains.succeeded(i)
        if j is not None:
            # Its runner did not record it, so it reports its follower
            # skipped: a result for ``j`` comes, as for a hook started here.
            self._adopt(j)
        self.unflushed += 1
        journal.add(ended_entry(record.node, r), gate=i)

    def _failed(self, i: int, r: HookResult) -> None:
        """Attempt ``r`` of hook ``i`` failed or timed out: retry it, or fail it."""
        self.chains.stopped(i)
        retries = self.options.retries if self.options.retries is not None else r.retries
        retrying = r.attempt <= retries and not self.stopping
        if self.journal is not None:
            self.journal.add(ended_entry(self.records[i].node, r, retrying=retrying))
        message = r.error.message if r.error else ""
        if retrying:
            base = self.options.retry_delay
            delay = (r.retry_delay if base is None else base) * 2 ** (r.attempt - 1)
            heapq.heappush(self.delayed, (time.time() + delay, i))
            self.emit(RETRIED, i, r.attempt, f"{r.state}: {message}; retrying in {delay:.3g} s")
            return
        self.records[i].state = r.state
        self.emit(r.state, i, r.attempt, message)
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
                elif self.resumed:
                    self._enqueue(s)
                else:  # the common case, in short: it is ready
                    heapq.heappush(self.ready, self.rank[s])
                    if self.listeners:
                        self.emit(QUEUED, s)

    def _flushed(self, f: Flushed) -> None:
        self.unflushed -= len(f.gates)
        if f.error is not None:
            # Nothing more is durable: stop as after a failure, and raise.
            if self.journal_error is None:
                self.journal_error = f.error
                self.emit(CANCELLING, message=f"the run journal failed: {f.error}")
            self._stop()
            return
        for i in f.gates:
            if self.records[i].state == SUCCEEDED:
                self._release_dependents(i)

    def _upstream_failed(self, i: int) -> None:
        stack = list(self.succs[i])
        records = self.records
        while stack:
            s = stack.pop()
            if records[s].state == _PENDING:
                records[s].state = UPSTREAM_FAILED
                self.emit(UPSTREAM_FAILED, s, message=f"{self.dag.nodes[i].id} failed")
                stack.extend(self.succs[s])
