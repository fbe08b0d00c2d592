"""Retention decisions: restic's rules over generated histories (against a
reference written in the test), Karbor's rules, and the guards above them."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protectflow.retention import (
    Candidate,
    RetentionPolicy,
    Span,
    decide,
    parse_interval,
    parse_span,
)
from protectflow.retention.decide import BUSY, LAST_AVAILABLE, restic_keep
from protectflow.states import AVAILABLE, DELETED, ERROR, PROTECTING
from tests.retention.reference import reference_keep
from tests.strategies import histories, retention_policies

UTC = dt.timezone.utc


def _at(day: int, hour: int = 0, month: int = 1, year: int = 2024) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


@settings(max_examples=400, deadline=None)
@given(histories(), retention_policies())
def test_the_kept_set_is_restics(history: list[tuple[str, dt.datetime, frozenset[str]]],
                                 policy: RetentionPolicy) -> None:
    ordered = sorted(history, key=lambda h: h[1], reverse=True)
    kept = set(restic_keep(ordered, policy, tz=UTC))
    assert kept == reference_keep(history, policy)


@settings(max_examples=200, deadline=None)
@given(histories(), retention_policies(), st.data())
def test_a_decision_never_removes_a_busy_or_the_last_available_one(
        history: list[tuple[str, dt.datetime, frozenset[str]]], policy: RetentionPolicy,
        data: st.DataObject) -> None:
    statuses = data.draw(st.lists(st.sampled_from([AVAILABLE, AVAILABLE, ERROR, DELETED,
                                                   PROTECTING]),
                                  min_size=len(history), max_size=len(history)))
    busy = data.draw(st.lists(st.booleans(), min_size=len(history), max_size=len(history)))
    candidates = [Candidate(i, t, s, tags, b)
                  for (i, t, tags), s, b in zip(history, statuses, busy, strict=True)]
    decision = decide(candidates, policy, now=_at(1, year=2030), tz=UTC)
    removed = set(decision.removed_ids)
    by_id = {c.id: c for c in candidates}
    assert not any(by_id[i].busy for i in removed)
    assert not any(by_id[i].status in (DELETED, PROTECTING) for i in removed)
    available = [c for c in candidates if c.status == AVAILABLE]
    if available:
        assert any(c.id not in removed for c in available)
    kept = {k.id for k in decision.keep}
    assert kept.isdisjoint(removed) and all(k.reasons for k in decision.keep)
    assert kept | removed | set(decision.untouched) == set(by_id)


def test_reasons_name_every_rule_that_keeps() -> None:
    candidates = [Candidate("new", _at(10, 12), tags=frozenset({"gold"})),
                  Candidate("mid", _at(10, 6)), Candidate("old", _at(3, 6))]
    policy = RetentionPolicy(last=1, daily=2, keep_tags=(("gold",),))
    decision = decide(candidates, policy, now=_at(11), tz=UTC)
    assert {k.id: k.reasons for k in decision.keep} == {
        "new": ("has tags [gold]", "last snapshot", "daily snapshot"),
        "old": ("daily snapshot",)}
    assert decision.remove == (("mid", "no rule keeps it"),)


def test_karbor_max_backups_and_retention_duration_from_now() -> None:
    candidates = [Candidate(f"c{d}", _at(d)) for d in range(1, 11)]
    only_max = decide(candidates, RetentionPolicy(max_backups=3), now=_at(20), tz=UTC)
    assert [k.id for k in only_max.keep] == ["c10", "c9", "c8"]
    both = decide(candidates, RetentionPolicy(max_backups=5, retention_duration=Span(days=13)),
                  now=_at(20), tz=UTC)
    assert [k.id for k in both.keep] == ["c10", "c9", "c8"]  # newer than the 7th
    assert both.keep[0].reasons == ("max_backups 5 and retention_duration 13d",)
    gone = decide(candidates, RetentionPolicy(retention_duration=Span(days=1)), now=_at(30),
                  tz=UTC)
    assert [(k.id, k.reasons) for k in gone.keep] == [("c10", (LAST_AVAILABLE,))]


def test_a_busy_checkpoint_stays_and_failed_ones_older_than_the_newest_go() -> None:
    candidates = [Candidate("new", _at(10)), Candidate("busy", _at(9), busy=True),
                  Candidate("failed-old", _at(8), ERROR), Candidate("failed-new", _at(11), ERROR),
                  Candidate("tomb", _at(7), DELETED)]
    decision = decide(candidates, RetentionPolicy(last=1), now=_at(12), tz=UTC)
    assert {k.id: k.reasons for k in decision.keep} == {"new": ("last snapshot",),
                                                        "busy": (BUSY,)}
    assert decision.removed_ids == ("failed-old",)
    assert set(decision.untouched) == {"failed-new", "tomb"}


def test_an_empty_policy_keeps_everything() -> None:
    decision = decide([Candidate("a", _at(1))], RetentionPolicy(), now=_at(2))
    assert decision.keep[0].reasons == ("policy is empty",) and not decision.remove


def test_unlimited_counts_keep_every_bucket() -> None:
    candidates = [Candidate(f"c{d}{h}", _at(d, h)) for d in range(1, 6) for h in (1, 2)]
    decision = decide(candidates, RetentionPolicy(daily=-1), now=_at(9), tz=UTC)
    assert sorted(k.id for k in decision.keep) == [f"c{d}2" for d in range(1, 6)]


def test_spans_and_intervals() -> None:
    assert parse_span("1y2m3d4h") == Span(1, 2, 3, 4)
    assert parse_span("30d") == Span(days=30)
    for bad in ("", "1x", "2d1y", "1d1d", "d"):
        with pytest.raises(ValueError, match="not a span"):
            parse_span(bad)
    assert [parse_interval(t) for t in ("90s", "2h", "1d", "1h30m", "1w")] == [
        90, 7200, 86400, 5400, 604800]
    for bad in ("", "0s", "5", "1y", "h"):
        with pytest.raises(ValueError, match="interval"):
            parse_interval(bad)
    # Go's AddDate: March 31st less a month is "February 31st", i.e. March 2nd or 3rd.
    assert Span(months=1).before(_at(31, month=3)) == _at(2, month=3)
