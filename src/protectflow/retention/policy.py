"""A retention policy: which checkpoints of a plan to keep.

restic's rules (``forget --keep-last N --keep-hourly N --keep-daily N
--keep-weekly N --keep-monthly N --keep-yearly N --keep-within SPAN
--keep-within-hourly SPAN ... --keep-tag T``; ``-1`` keeps every bucket) and
Karbor's (``max_backups``, ``retention_duration`` in days), written in a plan
under ``retention:`` with the same names (``keep_daily: 7``) or given on the
command line. :func:`~protectflow.retention.decide.decide` applies it.

Beside the rules, what ``forget`` does with the result: ``prune`` (free the
data nothing kept needs), ``after_protect`` (the scheduler applies the policy
after each protect of the plan) and ``purge_after`` (seconds after which a
``deleted`` checkpoint's tombstone is removed).
"""

from __future__ import annotations

from typing import Any

import attrs

from protectflow._fields import Fail, Fields
from protectflow.retention.durations import Span, parse_interval, parse_span

__all__ = ["BUCKETS", "RetentionPolicy", "tag_set"]

#: The counted rules, in restic's order: (field, its name in a plan, its reason).
BUCKETS = (("last", "keep_last", "last snapshot"),
           ("hourly", "keep_hourly", "hourly snapshot"),
           ("daily", "keep_daily", "daily snapshot"),
           ("weekly", "keep_weekly", "weekly snapshot"),
           ("monthly", "keep_monthly", "monthly snapshot"),
           ("yearly", "keep_yearly", "yearly snapshot"))
#: The ``--keep-within-*`` rules: (field, its name in a plan, its reason).
WITHIN_BUCKETS = (("within_hourly", "keep_within_hourly", "hourly within"),
                  ("within_daily", "keep_within_daily", "daily within"),
                  ("within_weekly", "keep_within_weekly", "weekly within"),
                  ("within_monthly", "keep_within_monthly", "monthly within"),
                  ("within_yearly", "keep_within_yearly", "yearly within"))


def tag_set(text: str) -> tuple[str, ...]:
    """``a,b`` as the tags ``("a", "b")`` (restic's ``--keep-tag a,b``: both).

    Raises
    ------
    ValueError
        If a tag in it is empty.
    """
    tags = tuple(t.strip() for t in text.split(","))
    if not all(tags):
        raise ValueError(f"{text!r} holds an empty tag; write T or T1,T2")
    return tags


def _count(value: int, name: str) -> int:
    if value < -1:
        raise ValueError(f"{name} is {value}: give a count, or -1 for no limit")
    return value


@attrs.frozen
class RetentionPolicy:
    """Which checkpoints of a plan to keep; every rule off by default.

    A count of 0 is a rule not given, -1 keeps every bucket (restic's
    ``--keep-daily -1``).
    """

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Span | None = None
    within_hourly: Span | None = None
    within_daily: Span | None = None
    within_weekly: Span | None = None
    within_monthly: Span | None = None
    within_yearly: Span | None = None
    #: Each a set of tags a checkpoint must all carry to be kept (restic's
    #: ``--keep-tag a,b``).
    keep_tags: tuple[tuple[str, ...], ...] = ()
    #: Karbor's: the newest ``max_backups`` are kept...
    max_backups: int | None = None
    #: ...that are younger than this (from now, not from the newest).
    retention_duration: Span | None = None
    prune: bool = False
    after_protect: bool = False
    #: Seconds a ``deleted`` checkpoint's tombstone is kept; None: forever.
    purge_after: float | None = None

    @property
    def empty(self) -> bool:
        """Whether no rule is given (restic then removes nothing)."""
        return not (any(getattr(self, f) for f, _, _ in BUCKETS)
                    or any(getattr(self, f) is not None and not getattr(self, f).zero
                           for f in ("within", *(w for w, _, _ in WITHIN_BUCKETS)))
                    or self.keep_tags or self.max_backups is not None
                    or self.retention_duration is not None)

    def merged(self, other: RetentionPolicy) -> RetentionPolicy:
        """This policy with what ``other`` (the command line's) sets instead."""
        default = RetentionPolicy()
        changes = {f.name: getattr(other, f.name) for f in attrs.fields(RetentionPolicy)
                   if getattr(other, f.name) != getattr(default, f.name)}
        return attrs.evolve(self, **changes)

    def describe(self) -> str:
        """The rules as restic's options (and Karbor's names), for messages."""
        words = [f"--keep-{name[5:]} {getattr(self, f)}" for f, name, _ in BUCKETS
                 if getattr(self, f)]
        words += [f"--{name.replace('_', '-')} {getattr(self, f)}"
                  for f, name, _ in (("within", "keep_within", ""), *WITHIN_BUCKETS)
                  if getattr(self, f) is not None]
        words += [f"--keep-tag {','.join(t)}" for t in self.keep_tags]
        if self.max_backups is not None:
            words.append(f"max_backups {self.max_backups}")
        if self.retention_duration is not None:
            words.append(f"retention_duration {self.retention_duration}")
        return " ".join(words) or "no rule"

    def to_json(self) -> dict[str, Any]:
        """The policy as a plan writes it (only what is set)."""
        data: dict[str, Any] = {name: getattr(self, f) for f, name, _ in BUCKETS
                                if getattr(self, f)}
        for f, name, _ in (("within", "keep_within", ""), *WITHIN_BUCKETS):
            if getattr(self, f) is not None:
                data[name] = str(getattr(self, f))
        if self.keep_tags:
            data["keep_tag"] = [",".join(t) for t in self.keep_tags]
        if self.max_backups is not None:
            data["max_backups"] = self.max_backups
        if self.retention_duration is not None:
            data["retention_duration"] = str(self.retention_duration)
        for name in ("prune", "after_protect"):
            if getattr(self, name):
                data[name] = True
        if self.purge_after is not None:
            data["purge_after"] = f"{self.purge_after:g}s"
        return data

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> RetentionPolicy:
        """The policy :meth:`to_json` (or a plan's ``retention:``) wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the first field that is wrong.
        """
        fields = Fields(data, "retention policy", fail)
        known = {name for _, name, _ in (*BUCKETS, *WITHIN_BUCKETS)} | {
            "keep_within", "keep_tag", "max_backups", "retention_duration", "prune",
            "after_protect", "purge_after"}
        unknown = sorted(set(fields.data) - known)
        if unknown:
            raise fail(f"unknown retention field(s) {', '.join(map(repr, unknown))}; known: "
                       + ", ".join(sorted(known)))
        try:
            return cls._read(fields)
        except ValueError as err:
            raise fail(str(err)) from None

    @classmethod
    def _read(cls, fields: Fields) -> RetentionPolicy:
        counts = {f: _count(fields.default(name, int, 0), name) for f, name, _ in BUCKETS}
        spans = {f: _span(fields, name)
                 for f, name, _ in (("within", "keep_within", ""), *WITHIN_BUCKETS)}
        max_backups = fields.optional("max_backups", int)
        if max_backups is not None and max_backups < 1:
            raise ValueError(f"max_backups is {max_backups}: keep at least 1")
        purge = fields.optional("purge_after", str)
        return cls(counts["last"], counts["hourly"], counts["daily"], counts["weekly"],
                   counts["monthly"], counts["yearly"], spans["within"],
                   spans["within_hourly"], spans["within_daily"], spans["within_weekly"],
                   spans["within_monthly"], spans["within_yearly"],
                   keep_tags=tuple(tag_set(t) for t in fields.strings("keep_tag")),
                   max_backups=max_backups, retention_duration=_days(fields),
                   prune=fields.default("prune", bool, False),
                   after_protect=fields.default("after_protect", bool, False),
                   purge_after=None if purge is None else parse_interval(purge))


def _span(fields: Fields, name: str) -> Span | None:
    text = fields.optional(name, str)
    return None if text is None else parse_span(text)


def _days(fields: Fields) -> Span | None:
    """Karbor's ``retention_duration``: a number of days, or a span."""
    value = fields.data.get("retention_duration")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return Span(days=value)
    if isinstance(value, str):
        return parse_span(value)
    raise ValueError(f"retention_duration is {value!r}: give days (30) or a span (1y2m)")
