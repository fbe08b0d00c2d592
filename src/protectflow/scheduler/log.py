"""What the scheduler keeps in the bank it serves.

Under ``scheduler/`` in the bank (so that ``scheduler status`` shows the same
history from any host that opens the bank, and the lease that keeps one
scheduler per bank sits beside the checkpoints it protects)::

    scheduler/lease/<generation>      who runs the bank's schedules (a lease)
    scheduler/runs/<STARTED>-<ID>     one run: plan, operation, due and times, outcome
    scheduler/state/<PLAN>/<KEY>      a schedule's last due time that was run

Each is a typed, versioned document read through :class:`~protectflow._fields.Fields`
(the bank is untrusted: a damaged one is refused, naming its key).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import attrs

from protectflow._fields import Fail, Fields
from protectflow._paths import segment
from protectflow._util import now_iso
from protectflow.bank import Bank
from protectflow.errors import BankError, CorruptObjectError
from protectflow.retention import Schedule

__all__ = ["RUN_STATUSES", "RunLog", "ScheduleState", "ScheduledRun"]

LEASE = "scheduler/lease"
RUNS = "scheduler/runs/"
STATE = "scheduler/state/"
VERSION = 1
#: A run's outcomes: running, then ok or failed, interrupted (SIGTERM or
#: Ctrl-C), died (its scheduler was killed: found by the next one) or skipped
#: (missed runs of a schedule with ``catchup: false``).
RUN_STATUSES = ("running", "ok", "failed", "interrupted", "died", "skipped")


def _failing(key: str, bank: str) -> Fail:
    return lambda why: CorruptObjectError(
        f"the scheduler's {key} in bank {bank} is corrupt: {why}; delete it (the "
        "scheduler writes it again)", key=key)


def _fields(data: object, what: str, fail: Fail) -> Fields:
    fields = Fields(data, what, fail)
    fields.version(VERSION, lambda found: BankError(
        f"the scheduler's {what} has format {found!r}; this protectflow reads format "
        f"{VERSION}: use the protectflow that wrote it"))
    return fields


@attrs.frozen
class ScheduledRun:
    """One run of a schedule."""

    id: str
    plan: str
    operation: str
    schedule: str
    due_at: str
    started_at: str
    owner: str
    status: str = "running"
    ended_at: str | None = None
    checkpoint: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "id": self.id, "plan": self.plan,
                "operation": self.operation, "schedule": self.schedule,
                "due_at": self.due_at, "started_at": self.started_at, "owner": self.owner,
                "status": self.status, "ended_at": self.ended_at,
                "checkpoint": self.checkpoint, "message": self.message}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> ScheduledRun:
        """The run :meth:`to_json` wrote.

        Raises
        ------
        CorruptObjectError, BankError
            A field missing or of the wrong type; another format version.
        """
        fields = _fields(data, "run", fail)
        status = fields.get("status", str)
        if status not in RUN_STATUSES:
            raise fail(f"'status' is {status!r}, not one of {', '.join(RUN_STATUSES)}")
        return cls(fields.get("id", str), fields.get("plan", str), fields.get("operation", str),
                   fields.get("schedule", str), fields.get("due_at", str),
                   fields.get("started_at", str), fields.get("owner", str), status,
                   fields.optional("ended_at", str), fields.optional("checkpoint", str),
                   fields.optional("message", str))


@attrs.frozen
class ScheduleState:
    """A schedule's last due time that was run (or skipped): what the next
    due time counts from, across restarts."""

    plan: str
    schedule: str
    last_due: str

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "plan": self.plan, "schedule": self.schedule,
                "last_due": self.last_due}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> ScheduleState:
        """The state :meth:`to_json` wrote.

        Raises
        ------
        CorruptObjectError, BankError
            A field missing or of the wrong type; another format version.
        """
        fields = _fields(data, "schedule state", fail)
        return cls(fields.get("plan", str), fields.get("schedule", str),
                   fields.get("last_due", str))


def schedule_key(schedule: Schedule) -> str:
    """A schedule's key: the hash of its JSON (a changed schedule starts afresh)."""
    text = json.dumps(schedule.to_json(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunLog:
    """The scheduler's documents in ``bank``."""

    def __init__(self, bank: Bank) -> None:
        self.bank = bank

    def start(self, *, plan: str, operation: str, schedule: str, due_at: str,
              owner: str, status: str = "running", message: str | None = None) -> ScheduledRun:
        """Write a new run (``running``, or ``skipped`` with its message)."""
        started = now_iso()
        stamp = started.replace("-", "").replace(":", "").replace(".", "")
        run = ScheduledRun(f"{stamp}-{uuid.uuid4().hex[:8]}", plan, operation, schedule,
                           due_at, started, owner, status,
                           started if status != "running" else None, None, message)
        self.bank.update_object(RUNS + run.id, run.to_json())
        return run

    def finish(self, run: ScheduledRun, status: str, *, checkpoint: str | None = None,
               message: str | None = None) -> ScheduledRun:
        """Write how ``run`` ended."""
        done = attrs.evolve(run, status=status, ended_at=now_iso(), checkpoint=checkpoint,
                            message=message)
        self.bank.update_object(RUNS + run.id, done.to_json())
        return done

    def runs(self, limit: int | None = None) -> list[ScheduledRun]:
        """Runs, newest first.

        Raises
        ------
        CorruptObjectError
            If a run's document does not read.
        """
        keys = self.bank.list_objects(RUNS, limit=limit, sort_dir="desc")
        return [ScheduledRun.from_json(self.bank.get_object(k), _failing(k, self.bank.url))
                for k in keys]

    def _state_key(self, plan: str, schedule: Schedule) -> str:
        return f"{STATE}{segment(plan)}/{schedule_key(schedule)}"

    def last_due(self, plan: str, schedule: Schedule) -> str | None:
        """The last due time of ``schedule`` that was run, or None."""
        key = self._state_key(plan, schedule)
        if not self.bank.has_object(key):
            return None
        return ScheduleState.from_json(self.bank.get_object(key),
                                       _failing(key, self.bank.url)).last_due

    def set_last_due(self, plan: str, schedule: Schedule, due_at: str) -> None:
        self.bank.update_object(self._state_key(plan, schedule),
                                ScheduleState(plan, schedule.name, due_at).to_json())

    def states(self) -> list[ScheduleState]:
        """Every schedule's state."""
        return [ScheduleState.from_json(self.bank.get_object(k), _failing(k, self.bank.url))
                for k in self.bank.list_objects(STATE)]
