"""The kept set equals what restic itself keeps, on the same timestamps and
tags: a restic repository of a tiny folder backed up once per timestamp
(``restic backup --time``), then ``restic forget --dry-run --json`` with the
same policy, for policies hypothesis draws. restic 0.14 (the distribution's)
has no ``-1`` counts, so the policies here have none (``test_decide.py``
checks them against the reference)."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from protectflow.retention import RetentionPolicy
from protectflow.retention.decide import restic_keep
from tests.needs import tool
from tests.strategies import TAGS, retention_policies

pytestmark = [tool("restic", "restic"), pytest.mark.slow]

UTC = dt.timezone.utc
History = list[tuple[str, dt.datetime, frozenset[str]]]


def _history(seed: int, size: int) -> History:
    rng = random.Random(seed)
    at = dt.datetime(2022, 3, 1, tzinfo=UTC)
    out: History = []
    for index in range(size):
        at += dt.timedelta(seconds=rng.choice([1800, 3600, 7 * 3600, 86400, 3 * 86400,
                                               9 * 86400, 45 * 86400, 190 * 86400])
                           + rng.randrange(60))
        out.append((f"c{index:02d}", at, frozenset(rng.sample(TAGS, rng.randrange(3)))))
    return out


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str],
                                                                         dict[str, str]]]:
    """A restic repository with one snapshot per timestamp of the history;
    its environment, and each snapshot's time mapped to our id."""
    root = tmp_path_factory.mktemp("restic")
    (root / "data").mkdir()
    (root / "data" / "file").write_text("x")
    env = {**os.environ, "RESTIC_PASSWORD": "test", "RESTIC_REPOSITORY": str(root / "repo"),
           "TZ": "UTC", "RESTIC_CACHE_DIR": str(root / "cache")}
    subprocess.run(["restic", "init", "-q"], env=env, check=True, capture_output=True)
    history = _history(7, 24)
    # Backups take shared locks: all at once, a few at a time.
    for start in range(0, len(history), 8):
        procs = [subprocess.Popen(
            ["restic", "backup", "-q", "--host", "h", "--time",
             when.strftime("%Y-%m-%d %H:%M:%S"), *(["--tag", ",".join(sorted(tags))]
                                                   if tags else []), "data"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _, when, tags in history[start:start + 8]]
        for proc in procs:
            _, err = proc.communicate()
            assert proc.returncode == 0, err
    by_time = {when.strftime("%Y-%m-%dT%H:%M:%SZ"): cid for cid, when, _ in history}
    yield env, by_time


def _flags(policy: RetentionPolicy) -> list[str]:
    words: list[str] = []
    for field in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        if getattr(policy, field):
            words += [f"--keep-{field}", str(getattr(policy, field))]
    for field in ("within", "within_hourly", "within_daily", "within_weekly",
                  "within_monthly", "within_yearly"):
        if getattr(policy, field) is not None:
            words += [f"--keep-{field.replace('_', '-')}", str(getattr(policy, field))]
    for tags in policy.keep_tags:
        words += ["--keep-tag", ",".join(tags)]
    return words


def _restic_kept(env: dict[str, str], by_time: dict[str, str],
                 policy: RetentionPolicy) -> set[str]:
    done = subprocess.run(["restic", "forget", "--dry-run", "--json", "--no-lock",
                           *_flags(policy)], env=env, check=True, capture_output=True,
                          text=True)
    groups = json.loads(done.stdout)
    assert len(groups) == 1  # one host, one path: one group, as one plan
    return {by_time[snap["time"][:19] + "Z"] for snap in groups[0]["keep"]}


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=retention_policies(unlimited=False))
def test_the_kept_set_is_what_restic_keeps(
        repository: tuple[dict[str, str], dict[str, str]], policy: RetentionPolicy) -> None:
    if policy.empty:
        return  # restic refuses to forget with no policy; so does `protectflow forget`
    env, by_time = repository
    history = _history(7, 24)
    ordered = sorted(history, key=lambda h: h[1], reverse=True)
    ours = set(restic_keep(ordered, policy, tz=UTC))
    assert ours == _restic_kept(env, by_time, policy), policy.describe()


def test_the_repository_holds_the_history(
        repository: tuple[dict[str, str], dict[str, str]], tmp_path: Path) -> None:
    env, by_time = repository
    done = subprocess.run(["restic", "snapshots", "--json", "--no-lock"], env=env, check=True,
                          capture_output=True, text=True)
    assert len(json.loads(done.stdout)) == len(by_time) == 24
