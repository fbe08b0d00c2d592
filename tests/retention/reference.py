"""restic's forget rules written again, plainly, for the property tests: a
second reading of ``internal/restic/snapshot_policy.go`` (restic 0.14, the
distribution's), independent of :mod:`protectflow.retention.decide`."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence

from protectflow.retention import RetentionPolicy, Span


def _minus(when: dt.datetime, span: Span) -> dt.datetime:
    """Go's ``when.AddDate(-y, -m, -d).Add(-h)``: normalise the month, then
    let a day past the month's end run on into the next."""
    month = when.month - span.months
    year = when.year - span.years
    while month < 1:
        month += 12
        year -= 1
    day = when.day - span.days
    # Normalise the day as Go does: count from the month's first day.
    start = dt.datetime(year, month, 1, when.hour, when.minute, when.second,
                        when.microsecond, tzinfo=when.tzinfo)
    assert calendar.monthrange(year, month)  # a real month
    return start + dt.timedelta(days=day - 1) - dt.timedelta(hours=span.hours)


def _keys(t: dt.datetime, nr: int) -> dict[str, int]:
    year, week, _ = t.isocalendar()
    return {"last": nr, "hourly": int(t.strftime("%Y%m%d%H")), "daily": int(t.strftime("%Y%m%d")),
            "weekly": year * 100 + week, "monthly": t.year * 100 + t.month, "yearly": t.year}


def reference_keep(history: Sequence[tuple[str, dt.datetime, frozenset[str]]],
                   policy: RetentionPolicy) -> set[str]:
    """The ids restic keeps of ``history`` (times in UTC, any order)."""
    ordered = sorted(history, key=lambda h: h[1], reverse=True)
    if not ordered:
        return set()
    latest = ordered[0][1]
    left = {k: getattr(policy, k) for k in ("last", "hourly", "daily", "weekly", "monthly",
                                             "yearly")}
    seen: dict[str, int | None] = dict.fromkeys(left)
    seen_within: dict[str, int | None] = dict.fromkeys(left)
    kept = set()
    for nr, (cid, when, tags) in enumerate(ordered):
        keys = _keys(when, nr)
        keep = any(set(t) <= tags for t in policy.keep_tags)
        if policy.within is not None and when > _minus(latest, policy.within):
            keep = True
        for name in left:
            if (left[name] == -1 or left[name] > 0) and keys[name] != seen[name]:
                seen[name] = keys[name]
                keep = True
                if left[name] > 0:
                    left[name] -= 1
        for name in ("hourly", "daily", "weekly", "monthly", "yearly"):
            span = getattr(policy, f"within_{name}")
            if span is not None and when > _minus(latest, span) and \
                    keys[name] != seen_within[name]:
                seen_within[name] = keys[name]
                keep = True
        if keep:
            kept.add(cid)
    return kept
