"""``protectflow scheduler``: a foreground process that runs the schedules of
plans (:mod:`protectflow.retention.schedules`) against one bank.

:class:`Scheduler` is the loop (:mod:`.loop`), :mod:`.log` what it keeps in
the bank (each run, each schedule's last due time, the scheduler's lease),
:mod:`.clock` the time it reads, injectable for tests.
"""

from __future__ import annotations

from protectflow.scheduler.clock import Clock, RealClock
from protectflow.scheduler.log import RunLog, ScheduledRun
from protectflow.scheduler.loop import Scheduler

__all__ = ["Clock", "RealClock", "RunLog", "ScheduledRun", "Scheduler"]
