"""Durations as a user writes them.

Two kinds, as the tools they come from write them:

- a **span** (:class:`Span`), restic's ``--keep-within 1y2m3d4h``: years,
  months, days and hours, counted back on the calendar (``m`` is a month);
- an **interval** (:func:`parse_interval`), a schedule's ``interval: 90s``
  or a tombstone's ``--purge-after 30d``: ``s``, ``m`` (minutes), ``h``,
  ``d`` and ``w``, a number of seconds.
"""

from __future__ import annotations

import datetime as dt
import re

import attrs

__all__ = ["Span", "parse_interval", "parse_span"]

_SPAN = re.compile(r"(\d+)([ymdh])")
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@attrs.frozen
class Span:
    """A calendar span: ``years``, ``months``, ``days`` and ``hours``."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        return "".join(f"{n}{unit}" for n, unit in ((self.years, "y"), (self.months, "m"),
                                                    (self.days, "d"), (self.hours, "h"))
                       if n) or "0h"

    def before(self, when: dt.datetime) -> dt.datetime:
        """``when`` less this span, as Go's ``AddDate(-y, -m, -d).Add(-h)``
        (restic's): a day past the month's end rolls into the next month."""
        month0 = when.year * 12 + (when.month - 1) - self.years * 12 - self.months
        year, month = divmod(month0, 12)
        first = when.replace(year=year, month=month + 1, day=1)
        moved = first + dt.timedelta(days=when.day - 1 - self.days)
        return moved - dt.timedelta(hours=self.hours)


def parse_span(text: str) -> Span:
    """A span written ``1y2m3d4h`` (any of the parts, in that order).

    Raises
    ------
    ValueError
        Saying how a span is written.
    """
    parts = _SPAN.findall(text)
    units = [unit for _, unit in parts]
    if not text or "".join(f"{n}{u}" for n, u in parts) != text or units != sorted(
            set(units), key="ymdh".index):
        raise ValueError(f"{text!r} is not a span: write it as restic does, years, months, "
                         "days and hours in that order, e.g. 1y2m3d4h, 30d or 12h")
    found = {unit: int(n) for n, unit in parts}
    return Span(found.get("y", 0), found.get("m", 0), found.get("d", 0), found.get("h", 0))


def parse_interval(text: str) -> float:
    """Seconds, from ``90s``, ``15m``, ``2h``, ``1d``, ``1w`` or a sum such as ``1h30m``.

    Raises
    ------
    ValueError
        Saying how an interval is written, when it is not one or is zero.
    """
    parts = _INTERVAL.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not an interval: write a number and a unit, s, m "
                         "(minutes), h, d or w, e.g. 90s, 2h, 1d or 1h30m")
    seconds = sum(float(n) * _SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not an interval: it must be longer than 0s")
    return seconds
