"""The scheduler's loop.

One process runs the schedules of one or more plans against one bank:

- **one scheduler per bank**: it holds the bank's scheduler lease
  (``scheduler/lease``, a :class:`~protectflow.bank.catalog.lease.LeaseKeeper`)
  while it runs, renewed by a thread; a second scheduler is refused with
  :class:`~protectflow.errors.SchedulerBusyError`. A scheduler that died
  (SIGKILL, a power cut) leaves its lease to expire -- at once on its own
  host, whose dead process is seen (:func:`~protectflow.bank.catalog.lease.owner_is_dead`),
  after its time to live elsewhere -- and the next one marks its unfinished
  run ``died``.
- **one run at a time**: due runs are run one after the other, so two runs
  of one plan never overlap; runs due at once run in plan and schedule order.
- **missed runs** (the scheduler was stopped, or a run outlasted the next
  due time): with ``catchup: true`` (the default) one run makes up for all of
  them, at once; with ``catchup: false`` they are logged ``skipped`` and the
  schedule waits for its next due time. A schedule's last due time that was
  run is kept in the bank, so this holds across restarts.
- **retention after protect**: when the plan's ``retention:`` says
  ``after_protect: true``, each successful protect is followed by a forget
  of that plan (and its prune when the policy says ``prune: true``).
- **stopping**: an interrupt (SIGTERM or SIGINT, raised as
  ``KeyboardInterrupt`` by the caller's handler) while idle stops at once; a
  run in progress is interrupted as Ctrl-C interrupts it from the command
  line -- the operation marks its checkpoint (a protect's is left ``error``,
  resumable with ``protectflow resume ID``) and releases its lease -- and the
  run is logged ``interrupted``. Its due time is not marked done, so the next
  scheduler catches it up (or skips it, per ``catchup``). The scheduler's
  lease is released on the way out.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence

import attrs

from protectflow import operations
from protectflow.bank import CheckpointStore
from protectflow.bank.catalog.lease import Lease, LeaseKeeper
from protectflow.compiler import Plan
from protectflow.errors import (
    BankError,
    CheckpointBusyError,
    OperationInterrupted,
    PlanError,
    ProtectflowError,
    SchedulerBusyError,
)
from protectflow.executors import Executor
from protectflow.operations.forget import forget
from protectflow.operations.lease import default_owner
from protectflow.retention import RetentionPolicy, Schedule
from protectflow.scheduler.clock import Clock, RealClock
from protectflow.scheduler.log import LEASE, RunLog, ScheduledRun
from protectflow.states import AVAILABLE, CANCELLED

__all__ = ["Scheduler"]

#: The scheduler lease's time to live (seconds); renewed every third of it.
LEASE_TTL = 60.0
#: The most missed runs counted for a message.
_COUNT_MAX = 10_000


@attrs.frozen
class Outcome:
    """How a run's operation ended."""

    ok: bool
    checkpoint: str | None
    message: str | None
    #: The operation's run loop took an interrupt and cancelled the rest.
    cancelled: bool = False


@attrs.frozen
class Job:
    """One schedule of one plan."""

    plan: Plan
    schedule: Schedule
    index: int

    @property
    def label(self) -> str:
        return f"{self.plan.name}: {self.schedule.name}"


def _iso(when: dt.datetime) -> str:
    return when.isoformat()


class Scheduler:
    """Runs the schedules of ``plans`` against ``store``'s bank (see the module).

    Parameters
    ----------
    store : CheckpointStore
        The bank.
    plans : sequence of Plan
        The plans; each needs at least one schedule, and a ``retention:``
        when it schedules ``forget``.
    clock : Clock, optional
        The time; the real clock if omitted.
    owner : str, optional
        Who runs (leases, the log); ``user@host:pid`` if omitted.
    executor : str or Executor
        Runs each operation's hooks.
    say : callable, optional
        Told one line per event (the command prints it).

    Raises
    ------
    PlanError
        If a plan has no schedule, or schedules ``forget`` with no ``retention:``.
    """

    def __init__(self, store: CheckpointStore, plans: Sequence[Plan], *,
                 clock: Clock | None = None, owner: str | None = None,
                 executor: str | Executor = "serial", lease_ttl: float = LEASE_TTL,
                 say: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or RealClock()
        self.owner = owner or default_owner()
        self.executor = executor
        self.lease_ttl = lease_ttl
        self.say = say or (lambda _line: None)
        self.log = RunLog(store.bank)
        self.jobs = _jobs(plans)
        self.stop = threading.Event()
        self._keeper = LeaseKeeper(store.bank, LEASE, f"the scheduler of bank {store.bank.url}")
        self._lease: Lease | None = None
        self._lost: BankError | None = None
        self._notes: dict[Job, str] = {}

    # -- the lease ----------------------------------------------------------------
    def _acquire(self) -> None:
        try:
            self._lease = self._keeper.acquire("scheduler", self.owner, ttl=self.lease_ttl,
                                               reclaim_dead=True)
        except CheckpointBusyError as err:
            latest = self._keeper.current()
            holder = latest.describe() if latest is not None else "another scheduler"
            raise SchedulerBusyError(
                f"another scheduler runs the schedules of bank {self.store.bank.url}: "
                f"{holder}; this one exits (one scheduler per bank: stop that one, or let "
                "this one take over when its lease ends)", holder) from err

    def _renew(self, done: threading.Event) -> None:
        while not done.wait(self.lease_ttl / 3):
            try:
                assert self._lease is not None
                self._lease = self._keeper.renew(self._lease, ttl=self.lease_ttl)
            except BankError as err:
                self._lost = err
                self.stop.set()
                return

    # -- the loop -----------------------------------------------------------------
    def run(self, *, until: dt.datetime | None = None) -> None:
        """Run due schedules until :attr:`stop` is set (or, with ``until``,
        until the next due time is past it).

        Raises
        ------
        SchedulerBusyError
            If another scheduler holds the bank.
        BankError
            If the lease was lost meanwhile, or the bank refuses the log.
        KeyboardInterrupt
            The interrupt that stopped it (after the lease is released).
        """
        self._acquire()
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(done,), daemon=True,
                                   name="protectflow-scheduler-lease")
        renewer.start()
        try:
            self._mark_died()
            self._loop(until)
        finally:
            done.set()
            renewer.join()
            if self._lease is not None and self._lost is None:
                self._keeper.release(self._lease)
        if self._lost is not None:
            raise BankError(f"the scheduler lost the lease of bank {self.store.bank.url}: "
                            f"{self._lost}; it stopped") from self._lost

    def _loop(self, until: dt.datetime | None) -> None:
        now = self.clock.now()
        due = {job: self._first_due(job, now) for job in self.jobs}
        names = ", ".join(sorted({job.plan.name for job in self.jobs}))
        self.say(f"scheduler of bank {self.store.bank.url} started for {names}")
        while not self.stop.is_set():
            job = min(due, key=lambda j: (due[j], j.index))
            when = due[job]
            if until is not None and when > until:
                return
            now = self.clock.now()
            if when > now:
                self.clock.sleep((when - now).total_seconds(), self.stop)
                continue
            self._run(job, when)
            due[job] = self._due_after(job, when, self.clock.now())

    def _first_due(self, job: Job, now: dt.datetime) -> dt.datetime:
        last = self.log.last_due(job.plan.name, job.schedule)
        if last is None:  # a new schedule: an interval starts now, cron at its next time
            return now if job.schedule.interval is not None else job.schedule.next_after(now)
        return self._due_after(job, dt.datetime.fromisoformat(last), now)

    def _due_after(self, job: Job, last: dt.datetime, now: dt.datetime) -> dt.datetime:
        """The next due time of ``job`` after ``last``: when it is already
        past, missed runs are caught up (now) or logged skipped."""
        upcoming = job.schedule.next_after(last)
        if upcoming > now:
            return upcoming
        missed, latest = 0, upcoming
        while upcoming <= now and missed < _COUNT_MAX:
            missed, latest = missed + 1, upcoming
            upcoming = job.schedule.next_after(upcoming)
        if job.schedule.catchup:
            self._notes[job] = f"catching up {missed} missed run(s), the last due {_iso(latest)}"
            return now
        self.log.start(plan=job.plan.name, operation=job.schedule.operation,
                       schedule=job.schedule.name, due_at=_iso(latest), owner=self.owner,
                       status="skipped",
                       message=f"{missed} missed run(s) skipped (catchup: false)")
        self.log.set_last_due(job.plan.name, job.schedule, _iso(latest))
        self.say(f"{job.label}: {missed} missed run(s) skipped (catchup: false)")
        return upcoming if upcoming > now else job.schedule.next_after(now)

    def _mark_died(self) -> None:
        """Runs another scheduler left ``running``: it died (we hold the lease now)."""
        for run in self.log.runs(limit=100):
            if run.status == "running" and run.owner != self.owner:
                self.log.finish(run, "died", checkpoint=run.checkpoint,
                                message=f"its scheduler {run.owner} stopped before it ended "
                                "(killed?); the run is due again")

    # -- one run ------------------------------------------------------------------
    def _run(self, job: Job, due: dt.datetime) -> None:
        note = self._notes.pop(job, None)
        run = self.log.start(plan=job.plan.name, operation=job.schedule.operation,
                             schedule=job.schedule.name, due_at=_iso(due), owner=self.owner,
                             message=note)
        self.say(f"{job.label}: started (due {_iso(due)})" + (f"; {note}" if note else ""))
        try:
            outcome = self._operate(job)
        except OperationInterrupted as err:
            self._interrupted(job, run, err.checkpoint_id, err.operation, err.bank)
            raise
        except KeyboardInterrupt:
            self._end(job, run, "interrupted", None, "interrupted")
            raise
        except ProtectflowError as err:
            outcome = Outcome(False, None, str(err))
        if outcome.cancelled:  # the run loop took the interrupt: the run ended cancelled
            self._interrupted(job, run, outcome.checkpoint, job.schedule.operation,
                              self.store.bank.url)
            if not self.stop.is_set():
                raise KeyboardInterrupt
            return
        said = "; ".join(m for m in (note, outcome.message) if m)
        self._end(job, run, "ok" if outcome.ok else "failed", outcome.checkpoint,
                  said or None)
        self.log.set_last_due(job.plan.name, job.schedule, _iso(due))

    def _interrupted(self, job: Job, run: ScheduledRun, checkpoint: str | None,
                     operation: str, bank: str) -> None:
        where = "" if checkpoint is None else (
            f" of checkpoint {checkpoint}; `protectflow checkpoints show {checkpoint} "
            f"--bank {bank}` says what to do")
        self._end(job, run, "interrupted", checkpoint,
                  f"interrupted during the {operation}{where}; it is due again")

    def _end(self, job: Job, run: ScheduledRun, status: str, checkpoint: str | None,
             message: str | None) -> None:
        self.log.finish(run, status, checkpoint=checkpoint, message=message)
        self.say(f"{job.label}: {status}" + (f" ({checkpoint})" if checkpoint else "")
                 + (f": {message}" if message else ""))

    def _operate(self, job: Job) -> Outcome:
        """Run the job's operation."""
        operation = job.schedule.operation
        if operation == "protect":
            return self._protect(job)
        if operation == "verify":
            return self._verify(job)
        report = forget(self.store, plans=[job.plan.name], plan_policies=_policies(job.plan),
                        now=self.clock.now(), owner=self.owner, executor=self.executor)
        removed = sum(len(p.removed) for p in report.plans)
        return Outcome(report.ok, None, f"{removed} checkpoint(s) forgotten")

    def _protect(self, job: Job) -> Outcome:
        result = operations.protect(job.plan, bank=self.store.bank, executor=self.executor,
                                    tags=job.schedule.tags,
                                    taken_at=self.clock.now().timestamp())
        if result.report.state == CANCELLED:
            return Outcome(False, result.checkpoint.id, None, cancelled=True)
        message = None
        retention = job.plan.retention
        if result.ok and retention is not None and retention.after_protect:
            report = forget(self.store, plans=[job.plan.name],
                            plan_policies=_policies(job.plan), now=self.clock.now(),
                            owner=self.owner, executor=self.executor)
            removed = sum(len(p.removed) for p in report.plans)
            message = f"then {removed} checkpoint(s) forgotten"
        return Outcome(result.ok, result.checkpoint.id, message)

    def _verify(self, job: Job) -> Outcome:
        newest = next((c for c in self.store.list(plan=job.plan.name, limit=None)
                       if c.status == AVAILABLE), None)
        if newest is None:
            return Outcome(False, None,
                           f"plan {job.plan.name} has no available checkpoint to verify")
        if not job.schedule.read_data:
            found = operations.check(newest.id, bank=self.store.bank)
            return Outcome(not found.problems, newest.id, f"{len(found.problems)} problem(s)")
        result = operations.verify(newest.id, bank=self.store.bank, executor=self.executor)
        return Outcome(result.ok, newest.id,
                       None if result.ok else "; ".join(result.problems[:3]),
                       cancelled=result.report.state == CANCELLED)


def _policies(plan: Plan) -> dict[str, RetentionPolicy]:
    return {} if plan.retention is None else {plan.name: plan.retention}


def _jobs(plans: Sequence[Plan]) -> tuple[Job, ...]:
    problems = []
    jobs: list[Job] = []
    for plan in plans:
        if not plan.schedules:
            problems.append(f"plan {plan.name} ({plan.source}) has no 'schedules:'; e.g. "
                            "schedules: [{operation: protect, cron: \"0 3 * * *\"}]")
        if any(s.operation == "forget" for s in plan.schedules) and plan.retention is None:
            problems.append(f"plan {plan.name} schedules forget but has no 'retention:'; "
                            "e.g. retention: {keep_daily: 7, keep_weekly: 4}")
        jobs.extend(Job(plan, schedule, len(jobs) + i)
                    for i, schedule in enumerate(plan.schedules))
    names = [plan.name for plan in plans]
    if len(set(names)) != len(names):
        problems.append(f"a plan is given twice: {', '.join(sorted(names))}")
    if problems:
        raise PlanError("the scheduler cannot run these plans:", problems)
    return tuple(jobs)
