"""A plan's schedules: what to run, and when.

A plan (or its provider) may carry::

    schedules:
      - {operation: protect, cron: "0 3 * * *", tags: [nightly]}
      - {operation: verify, interval: 1d, read_data: true}
      - {operation: forget, cron: "30 4 * * 0", catchup: false}

``cron`` is a five-field cron expression (read by the maintained ``cronsim``
library, in local time, where a service's cron runs), ``interval`` a
duration (``90s``, ``2h``, ``1d``). ``catchup`` (default true) says what a
scheduler that was not running when a run was due does: run it once when it
starts (true), or skip it and wait for the next (false). ``verify`` runs
on the plan's newest available checkpoint, reading every chunk unless
``read_data: false``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from cronsim import CronSim, CronSimError

from protectflow._fields import Fail, Fields
from protectflow.retention.durations import parse_interval

__all__ = ["OPERATIONS", "Schedule"]

#: The operations a schedule may run.
OPERATIONS = ("protect", "verify", "forget")


@attrs.frozen
class Schedule:
    """One schedule: an operation and when it runs (``cron`` or ``interval``)."""

    operation: str
    cron: str | None = None
    interval: float | None = None
    catchup: bool = True
    read_data: bool = True
    tags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``protect@0 3 * * *``, ``verify@every 86400s``: how logs name it."""
        when = self.cron if self.cron is not None else f"every {self.interval:g}s"
        return f"{self.operation}@{when}"

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first time this schedule is due strictly after ``after`` (aware).

        An interval counts from ``after``; a cron expression is read in the
        zone of ``after``.
        """
        if self.interval is not None:
            return after + dt.timedelta(seconds=self.interval)
        assert self.cron is not None
        return next(iter(CronSim(self.cron, after.replace(microsecond=0))))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"operation": self.operation}
        if self.cron is not None:
            data["cron"] = self.cron
        if self.interval is not None:
            data["interval"] = f"{self.interval:g}s"
        if not self.catchup:
            data["catchup"] = False
        if self.operation == "verify" and not self.read_data:
            data["read_data"] = False
        if self.tags:
            data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> Schedule:
        """The schedule :meth:`to_json` (or a plan's ``schedules:``) wrote;
        its cron expression or interval checked.

        Raises
        ------
        Exception
            What ``fail`` makes, naming what is wrong and how to write it.
        """
        fields = Fields(data, "schedule", fail)
        unknown = sorted(set(fields.data) - {"operation", "cron", "interval", "catchup",
                                             "read_data", "tags"})
        if unknown:
            raise fail(f"unknown schedule field(s) {', '.join(map(repr, unknown))}; known: "
                       "operation, cron, interval, catchup, read_data, tags")
        operation = fields.get("operation", str)
        if operation not in OPERATIONS:
            raise fail(f"operation {operation!r} cannot be scheduled; choose from "
                       + ", ".join(OPERATIONS))
        cron = fields.optional("cron", str)
        every = fields.optional("interval", str)
        if (cron is None) == (every is None):
            raise fail("give either 'cron' (e.g. \"0 3 * * *\") or 'interval' (e.g. 1d)")
        try:
            interval = None if every is None else parse_interval(every)
        except ValueError as err:
            raise fail(str(err)) from None
        if cron is not None:
            _check_cron(cron, fail)
        return cls(operation, cron, interval, fields.default("catchup", bool, True),
                   fields.default("read_data", bool, True), fields.strings("tags"))


def _check_cron(cron: str, fail: Fail) -> None:
    try:
        CronSim(cron, dt.datetime(2000, 1, 1))
    except CronSimError as err:
        raise fail(f"cron {cron!r} is not a cron expression ({err}); five fields: minute "
                   "hour day-of-month month day-of-week, e.g. \"0 3 * * *\"") from None
