"""What a run reports: events as it goes, a :class:`RunReport` at the end.

A RunReport holds every hook's state, attempts, timing, error, output and log,
and exports itself as JSON and as a Chrome trace (``traceEvents``) that
Perfetto and ``chrome://tracing`` open, one row per worker thread.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, NamedTuple

import attrs

from protectflow.dag.outcomes import ErrorInfo
from protectflow.plugins.contract import StatusUpdate
from protectflow.states import CANCELLED, FAILED_STATES, HOOK_STATES, SUCCEEDED

__all__ = [
    "DASHBOARD", "FAILED_STATES", "HOOK_STATES", "Attempt", "Event", "HookRecord", "Recorded",
    "RunReport",
]

#: The event a dask run sends before its first hook: its ``message`` is the
#: address of the cluster's dashboard.
DASHBOARD = "dashboard"



@attrs.frozen
class Event:
    """Something that happened in a run, as listeners receive it.

    ``kind`` is one of ``run_started``, ``queued``, ``started``, ``succeeded``,
    ``failed``, ``timed_out``, ``retried``, ``upstream_failed``, ``cancelled``,
    ``cancelling`` (the run stops starting hooks) and ``run_finished``; a
    dask run sends ``dashboard`` first (:data:`DASHBOARD`);
    ``node`` is ``None`` for the run's own events.
    ``started`` means handed to the executor; the hook's own start time, taken
    where it ran, is in the report. ``total`` is the run's number of hooks,
    on ``run_started`` (a progress bar's total); 0 on the other events.
    """

    kind: str
    time: float
    node: str | None = None
    attempt: int = 0
    message: str = ""
    total: int = 0


@attrs.frozen
class Recorded:
    """A hook's success as a run journal recorded it.

    A resumed run is given these (``RunOptions.completed``) and takes the hooks
    as succeeded without running them: their ``output`` goes in the report and
    their ``new_resources`` writes feed the views of the hooks after them.
    """

    output: Any = None
    new_resources: dict[str, Any] | None = None
    #: The resource statuses the hook reported (restore, verify, copy).
    status_updates: tuple[StatusUpdate, ...] = ()


class Attempt(NamedTuple):
    """One attempt of one hook, as a trace draws it (a named tuple, as the
    executors' per-attempt values: one is made per hook attempt)."""

    number: int
    state: str
    start: float
    end: float
    worker: str


@attrs.define
class HookRecord:
    """The outcome of one hook (every attempt of it)."""

    node: str
    resource: str
    hook: str
    state: str = CANCELLED
    attempts: int = 0
    start: float | None = None
    end: float | None = None
    error: ErrorInfo | None = None
    output: Any = None
    #: What the hook wrote into ``new_resources`` (restore and verify).
    new_resources: dict[str, Any] | None = None
    log: list[tuple[float, str, str]] = attrs.field(factory=list)
    history: list[Attempt] = attrs.field(factory=list)
    #: Taken from the journal of an earlier run, not run again.
    resumed: bool = False
    #: Every ``update_resource_status`` call the hook made through its
    #: ``restore``, ``verify`` or ``checkpoint_copy`` object, over all its
    #: attempts, in order (the last one per resource is its status).
    status_updates: list[StatusUpdate] = attrs.field(factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "resource": self.resource,
            "hook": self.hook,
            "state": self.state,
            "attempts": self.attempts,
            "start": self.start,
            "end": self.end,
            "error": self.error.to_json() if self.error else None,
            "output": self.output,
            "new_resources": self.new_resources,
            "resumed": self.resumed,
            "status_updates": [u.to_json() for u in self.status_updates],
            "log": [{"time": t, "level": lv, "message": m} for t, lv, m in self.log],
        }


@attrs.define
class RunReport:
    """The result of running a HookDAG: ``state`` is succeeded, failed or
    cancelled, and ``hooks`` maps every node id to its :class:`HookRecord`."""

    operation: str
    plan: str
    executor: str
    state: str
    start: float
    end: float
    hooks: dict[str, HookRecord]

    @property
    def ok(self) -> bool:
        return self.state == SUCCEEDED

    @property
    def duration(self) -> float:
        return self.end - self.start

    def counts(self) -> dict[str, int]:
        """State -> number of hooks in it, for every state (zeros included)."""
        found = Counter(r.state for r in self.hooks.values())
        return {s: found.get(s, 0) for s in HOOK_STATES}

    def failed(self) -> list[HookRecord]:
        """The hooks that failed or timed out, in node order."""
        return [r for r in self.hooks.values() if r.state in FAILED_STATES]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "protectflow.runreport",
            "version": 1,
            "operation": self.operation,
            "plan": self.plan,
            "executor": self.executor,
            "state": self.state,
            "start": self.start,
            "end": self.end,
            "counts": self.counts(),
            "hooks": [r.to_json() for r in self.hooks.values()],
        }

    def dumps(self) -> str:
        """:meth:`to_json` as text; outputs that are not JSON are written as ``repr``."""
        return json.dumps(self.to_json(), indent=1, sort_keys=True, default=repr) + "\n"

    def to_chrome_trace(self) -> dict[str, Any]:
        """The run as Chrome trace events: a complete event (``ph: "X"``) per
        attempt, one process row per worker process and one thread row per
        worker thread, times in microseconds from the run's start.

        An attempt's ``worker`` is ``HOST:PID/THREAD``; the thread's name may
        hold slashes of its own (a dask worker's ``tcp://`` address), so the
        first slash is the one that divides them."""
        pids: dict[str, int] = {}
        tids: dict[str, int] = {}
        events: list[dict[str, Any]] = []
        for record in self.hooks.values():
            for a in record.history:
                process = a.worker.partition("/")[0]
                pid = pids.setdefault(process, len(pids) + 1)
                tid = tids.setdefault(a.worker, len(tids) + 1)
                events.append({
                    "name": record.node, "cat": record.hook, "ph": "X",
                    "ts": round((a.start - self.start) * 1e6, 1),
                    "dur": round(max(a.end - a.start, 0.0) * 1e6, 1),
                    "pid": pid, "tid": tid,
                    "args": {"state": a.state, "attempt": a.number, "resource": record.resource},
                })
        for process, pid in pids.items():
            events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                           "args": {"name": process}})
        for worker, tid in tids.items():
            process, _, thread = worker.partition("/")
            events.append({"name": "thread_name", "ph": "M", "pid": pids[process], "tid": tid,
                           "args": {"name": thread}})
        return {"traceEvents": events, "displayTimeUnit": "ms",
                "otherData": {"operation": self.operation, "executor": self.executor,
                              "state": self.state}}
