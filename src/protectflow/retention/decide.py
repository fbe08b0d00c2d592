"""Applying a :class:`~protectflow.retention.policy.RetentionPolicy` to one
plan's checkpoints: which stay, why, and which go.

restic's rules are restic's ``ApplyPolicy`` (``internal/restic/snapshot_policy.go``),
step for step: the checkpoints newest first; a ``--keep-tag`` set keeps
every checkpoint carrying all its tags, uncounted; ``--keep-within SPAN``
keeps those newer than the newest less the span; each counted rule keeps
the newest checkpoint of each of its buckets (last: every checkpoint; hourly:
the hour; daily: the day; weekly: the ISO week; monthly; yearly -- in local
time, as restic buckets a snapshot's own time) until its count is used up
(-1: never); each ``--keep-within-*`` rule keeps the newest of each bucket
newer than the newest less its span. A checkpoint is kept when any rule
keeps it; every rule that does is a reason.

Karbor's pair is one rule more: the newest ``max_backups`` that are younger
than ``retention_duration`` (counted back from *now*, as Karbor's retention
operation does); either alone when the other is not given.

Which checkpoints count: only ``available`` ones, as restic counts
snapshots. The others are never counted, and:

- a checkpoint in progress (``protecting``, ``copying``, ``deleting``) or a
  delete that failed (``error_deleting``: ``prune`` finishes it) is left alone;
- a ``deleted`` tombstone is left alone (``forget --purge-after`` removes it);
- an ``error`` checkpoint older than the plan's newest ``available`` one is
  superseded and goes; a newer one stays, as it may still be resumed.

Two guards are above every rule: a busy checkpoint (an operation holds its
lease) is never removed, and neither is the last ``available`` checkpoint of
its plan -- a policy that would remove every one keeps the newest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

import attrs

from protectflow.retention.durations import Span
from protectflow.retention.policy import BUCKETS, WITHIN_BUCKETS, RetentionPolicy
from protectflow.states import AVAILABLE, ERROR

__all__ = ["Candidate", "Decision", "Kept", "decide", "restic_keep"]

BUSY = "busy"
LAST_AVAILABLE = "last available checkpoint of its plan"


@attrs.frozen
class Candidate:
    """What a decision needs of a checkpoint."""

    id: str
    created: dt.datetime  # aware
    status: str = AVAILABLE
    tags: frozenset[str] = frozenset()
    busy: bool = False


@attrs.frozen
class Kept:
    """A checkpoint kept and every reason why (a rule, or a guard)."""

    id: str
    reasons: tuple[str, ...]


@attrs.frozen
class Decision:
    """One plan's checkpoints sorted out: kept (newest first, with reasons),
    removed (newest first, with why), and those no rule touches."""

    keep: tuple[Kept, ...]
    remove: tuple[tuple[str, str], ...]
    untouched: tuple[str, ...] = ()

    @property
    def removed_ids(self) -> tuple[str, ...]:
        return tuple(i for i, _ in self.remove)


def _bucketers(local: Callable[[dt.datetime], dt.datetime]
               ) -> dict[str, Callable[[dt.datetime, int], int]]:
    def ymdh(t: dt.datetime, _: int) -> int:
        t = local(t)
        return t.year * 1000000 + t.month * 10000 + t.day * 100 + t.hour

    def ymd(t: dt.datetime, _: int) -> int:
        t = local(t)
        return t.year * 10000 + t.month * 100 + t.day

    def yw(t: dt.datetime, _: int) -> int:
        year, week, _day = local(t).isocalendar()
        return year * 100 + week

    def ym(t: dt.datetime, _: int) -> int:
        t = local(t)
        return t.year * 100 + t.month

    def y(t: dt.datetime, _: int) -> int:
        return local(t).year

    def always(_t: dt.datetime, nr: int) -> int:
        return nr

    return {"last": always, "hourly": ymdh, "daily": ymd, "weekly": yw, "monthly": ym,
            "yearly": y}


def _since(latest: dt.datetime, span: Span, local: Callable[[dt.datetime], dt.datetime]
           ) -> dt.datetime:
    return span.before(local(latest))


def restic_keep(times: Sequence[tuple[str, dt.datetime, frozenset[str]]],
                policy: RetentionPolicy, *, tz: dt.tzinfo | None = None
                ) -> dict[str, tuple[str, ...]]:
    """restic's rules over ``(id, time, tags)`` sorted newest first: the ids
    kept, each with its reasons (restic's words).

    ``tz`` is the zone buckets are counted in; the local one if None.
    """
    def local(t: dt.datetime) -> dt.datetime:
        return t.astimezone(tz)

    by_bucket = _bucketers(local)
    counted = [[getattr(policy, f), by_bucket[f], None, why] for f, _, why in BUCKETS]
    within = [[getattr(policy, f), by_bucket[_unit(f)], None, why]
              for f, _, why in WITHIN_BUCKETS]
    kept: dict[str, tuple[str, ...]] = {}
    if not times:
        return kept
    latest = times[0][1]
    last = len(times) - 1
    for nr, (cid, when, tags) in enumerate(times):
        reasons = [f"has tags [{' '.join(t)}]" for t in policy.keep_tags
                   if set(t) <= tags]
        if policy.within is not None and not policy.within.zero and \
                local(when) > _since(latest, policy.within, local):
            reasons.append(f"within {policy.within}")
        for bucket in counted:
            count, bucketer, prev, why = bucket
            if count > 0 or count == -1:
                value = bucketer(when, nr)
                if value != prev or (nr == last and _OLDEST):
                    bucket[2] = value
                    if count > 0:
                        bucket[0] = count - 1
                    reasons.append(why)
        for bucket in within:
            span, bucketer, prev, why = bucket
            if span is not None and not span.zero and \
                    local(when) > _since(latest, span, local):
                value = bucketer(when, nr)
                if value != prev or (nr == last and _OLDEST):
                    bucket[2] = value
                    reasons.append(f"{why} {span}")
        if reasons:
            kept[cid] = tuple(reasons)
    return kept


#: Whether the oldest snapshot is kept while a bucket has counts left:
#: restic 0.16 does (``nr == len(list)-1``); restic 0.14, the distribution's
#: here, does not. We follow the restic the tests compare with.
_OLDEST = False


def _unit(field: str) -> str:
    """``within_daily`` -> ``daily``."""
    return field.split("_", 1)[1]


def _karbor(ordered: Sequence[Candidate], policy: RetentionPolicy, now: dt.datetime
            ) -> dict[str, str]:
    if policy.max_backups is None and policy.retention_duration is None:
        return {}
    limit = len(ordered) if policy.max_backups is None else policy.max_backups
    since = None if policy.retention_duration is None else policy.retention_duration.before(now)
    words = " and ".join(
        ([f"max_backups {policy.max_backups}"] if policy.max_backups is not None else [])
        + ([f"retention_duration {policy.retention_duration}"]
           if policy.retention_duration is not None else []))
    return {c.id: words for c in ordered[:limit] if since is None or c.created > since}


def decide(candidates: Iterable[Candidate], policy: RetentionPolicy, *,
           now: dt.datetime, tz: dt.tzinfo | None = None) -> Decision:
    """Which of one plan's checkpoints ``policy`` keeps, and why; which go.

    Parameters
    ----------
    candidates : iterable of Candidate
        The plan's checkpoints, in any order.
    policy : RetentionPolicy
        The rules; an empty policy keeps everything.
    now : datetime
        The time it is (Karbor's ``retention_duration`` counts back from it).
    tz : tzinfo, optional
        The zone restic's buckets are counted in; the local one if None.

    Returns
    -------
    Decision
    """
    every = sorted(candidates, key=lambda c: (c.created, c.id), reverse=True)
    ordered = [c for c in every if c.status == AVAILABLE]
    reasons: dict[str, tuple[str, ...]]
    if policy.empty:
        reasons = {c.id: ("policy is empty",) for c in ordered}
    else:
        reasons = restic_keep([(c.id, c.created, c.tags) for c in ordered], policy, tz=tz)
        for cid, why in _karbor(ordered, policy, now).items():
            reasons[cid] = (*reasons.get(cid, ()), why)
    if ordered and not any(c.id in reasons for c in ordered):
        reasons[ordered[0].id] = (LAST_AVAILABLE,)
    newest = ordered[0].created if ordered else None
    keep: list[Kept] = []
    remove: list[tuple[str, str]] = []
    untouched: list[str] = []
    for c in every:
        if c.status == AVAILABLE:
            going = c.id not in reasons
            why = "no rule keeps it"
        elif c.status == ERROR and newest is not None and c.created < newest:
            going, why = True, "a failed checkpoint older than the newest available one"
        else:
            untouched.append(c.id)
            continue
        if going and c.busy:
            keep.append(Kept(c.id, (BUSY,)))
        elif going:
            remove.append((c.id, why))
        else:
            keep.append(Kept(c.id, reasons[c.id]))
    return Decision(tuple(keep), tuple(remove), tuple(untouched))
