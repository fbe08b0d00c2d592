"""The scheduler: a simulated month with an injected clock, missed runs
caught up or skipped across a restart; and, as real processes, two
schedulers on one bank, SIGTERM during a run, a scheduler killed and restarted."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.compiler import parse_plan
from protectflow.errors import BankError, PlanError, SchedulerBusyError
from protectflow.scheduler import RunLog, Scheduler
from protectflow.states import AVAILABLE, ERROR
from tests.waits import wait_until

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 1, 0, 30, tzinfo=UTC)


class FakeClock:
    """Time that passes only when the scheduler sleeps."""

    def __init__(self, start: dt.datetime) -> None:
        self.at = start
        self.slept: list[float] = []

    def now(self) -> dt.datetime:
        return self.at

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        self.slept.append(seconds)
        self.at += dt.timedelta(seconds=seconds)


def plan(text: str, name: str = "nightly"):  # type: ignore[no-untyped-def]
    return parse_plan(f"name: {name}\nresources:\n  - {{type: OS::Cinder::Volume, id: v1}}\n"
                      + text, source=f"{name}.yaml")


MONTH = """\
retention: {keep_daily: 7, keep_weekly: 4, after_protect: true}
schedules:
  - {operation: protect, cron: "0 3 * * *", tags: [nightly]}
  - {operation: verify, interval: 1d, read_data: false}
  - {operation: forget, cron: "0 4 * * 0"}
"""


def test_a_simulated_month(tmp_path: Path) -> None:
    store = CheckpointStore(Bank(tmp_path / "bank"))
    clock = FakeClock(START)
    Scheduler(store, [plan(MONTH)], clock=clock).run(until=START + dt.timedelta(days=31))
    runs = RunLog(store.bank).runs()
    protects = [r for r in runs if r.operation == "protect"]
    failed = [r for r in runs if r.status != "ok"]
    # the first verify, at 00:30 on the first day, finds nothing to verify yet
    assert [(r.operation, r.message) for r in failed] == [
        ("verify", "plan nightly has no available checkpoint to verify")]
    assert len(protects) == 31
    assert {r.due_at[11:19] for r in protects} == {"03:00:00"}
    # daily from 00:30 on Jan 1st to 00:30 on Feb 1st, the end included
    assert len([r for r in runs if r.operation == "verify"]) == 32
    assert len([r for r in runs if r.operation == "forget"]) == 4  # Sundays of January
    kept = [c for c in store.list(limit=None) if c.status == AVAILABLE]
    # the last 7 days, and the newest of each of the 4 last ISO weeks (restic's rules)
    assert sorted(c.created_at[8:10] for c in kept) == [
        "14", "21", "25", "26", "27", "28", "29", "30", "31"]
    assert all(c.record.tags == ("nightly",) for c in kept)
    newest = max(c.created_at for c in kept)
    assert newest.startswith("2024-01-31T03:00:00")


@pytest.mark.parametrize("catchup", [True, False])
def test_missed_runs_are_caught_up_or_skipped_after_a_restart(tmp_path: Path,
                                                              catchup: bool) -> None:
    store = CheckpointStore(Bank(tmp_path / "bank"))
    text = ("schedules:\n  - {operation: protect, cron: \"0 3 * * *\", catchup: "
            f"{str(catchup).lower()}}}\n")
    clock = FakeClock(START)
    Scheduler(store, [plan(text)], clock=clock).run(until=START + dt.timedelta(days=2))
    assert len(RunLog(store.bank).runs()) == 2  # Jan 1st and 2nd, 03:00
    clock.at += dt.timedelta(days=5)  # stopped for five days
    Scheduler(store, [plan(text)], clock=clock).run(until=clock.at + dt.timedelta(hours=1))
    runs = RunLog(store.bank).runs()
    if catchup:
        assert runs[0].status == "ok" and "catching up 5 missed run(s)" in (runs[0].message
                                                                          or "")
        assert len(store.list(limit=None)) == 3
    else:
        assert runs[0].status == "skipped" and runs[0].message == (
            "5 missed run(s) skipped (catchup: false)")
        assert len(store.list(limit=None)) == 2


def test_bad_plans_are_refused_before_anything_runs(tmp_path: Path) -> None:
    store = CheckpointStore(Bank(tmp_path / "bank"))
    with pytest.raises(PlanError) as info:
        Scheduler(store, [plan(""), plan("schedules: [{operation: forget, interval: 1d}]",
                                         "other")])
    assert "has no 'schedules:'" in str(info.value) and "no 'retention:'" in str(info.value)
    with pytest.raises(PlanError, match="not a cron expression"):
        plan("schedules: [{operation: protect, cron: '61 * * * *'}]")
    with pytest.raises(PlanError, match="interval"):
        plan("schedules: [{operation: protect, interval: 1y}]")


def test_a_second_scheduler_on_the_bank_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(Bank(tmp_path / "bank"))
    text = "schedules: [{operation: protect, interval: 1d}]\n"
    first = Scheduler(store, [plan(text)], owner="other-host:1")
    first._acquire()
    with pytest.raises(SchedulerBusyError, match="another scheduler runs the schedules"):
        Scheduler(store, [plan(text)], clock=FakeClock(START)).run(until=START)


# -- real processes ----------------------------------------------------------------
SLOW = """\
name: slow
bank: {bank}
resources:
  - {{type: OS::Cinder::Volume, id: v1}}
parameters:
  OS::Cinder::Volume: {{main_seconds: {seconds}}}
schedules:
  - {{operation: protect, interval: 1h}}
"""


def _start(path: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "protectflow.cli", "scheduler", str(path)],
                                stdout=out, stderr=subprocess.STDOUT)


def _running(bank: Bank, proc: subprocess.Popen[bytes] | None = None) -> bool:
    assert proc is None or proc.poll() is None, "the scheduler exited"
    try:
        return any(r.status == "running" for r in RunLog(bank).runs())
    except BankError:  # not made yet
        return False


@pytest.mark.slow
def test_sigterm_during_a_run_stops_cleanly_and_a_second_scheduler_exits_75(
        tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    path = tmp_path / "slow.yaml"
    # A hook running is waited for (as on Ctrl-C), the hooks after it cancelled:
    # long enough for the signal to come during it, short enough to wait for.
    path.write_text(SLOW.format(bank=bank.url, seconds=15))
    first = _start(path, tmp_path / "first.log")
    try:
        wait_until(lambda: _running(bank, first), "the first scheduler's run")
        second = subprocess.run([sys.executable, "-m", "protectflow.cli", "scheduler", str(path)],
                                capture_output=True, text=True)
        assert second.returncode == 75, second.stderr
        assert "another scheduler runs the schedules" in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait() == 0
    finally:
        if first.poll() is None:
            first.kill()
    (run,) = RunLog(bank).runs()
    assert run.status == "interrupted" and run.checkpoint is not None
    assert CheckpointStore(bank).get(run.checkpoint).status == ERROR
    status = subprocess.run([sys.executable, "-m", "protectflow.cli", "scheduler", "status",
                             "--bank", bank.url], capture_output=True, text=True, check=True)
    assert "not running" in status.stdout and "interrupted" in status.stdout


@pytest.mark.slow
def test_a_killed_scheduler_is_taken_over_and_its_run_marked_died(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW.format(bank=bank.url, seconds=600))
    first = _start(path, tmp_path / "first.log")
    wait_until(lambda: _running(bank, first), "the first scheduler's run")
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = _start(path, tmp_path / "second.log")
    try:
        # the killed run's due time was never marked done: it is run again
        wait_until(lambda: len(RunLog(bank).runs()) == 2 and _running(bank, second),
                   "the second scheduler's run")
        runs = RunLog(bank).runs()
        assert [r.status for r in runs] == ["running", "died"]
        assert "stopped before it ended" in (runs[1].message or "")
        second.send_signal(signal.SIGTERM)
        assert second.wait() == 0
    finally:
        if second.poll() is None:
            second.kill()


def test_the_command_refuses_bad_plans_and_shows_the_status(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    path = tmp_path / "plain.yaml"
    path.write_text(f"name: plain\nbank: {bank.url}\nresources:\n"
                    "  - {type: OS::Cinder::Volume, id: v1}\n")
    assert cli.main(["scheduler", str(path)]) == 2
    assert "has no 'schedules:'" in capsys.readouterr().err
    store = CheckpointStore(bank)
    clock = FakeClock(START)
    Scheduler(store, [plan("schedules: [{operation: protect, interval: 1h}]")],
              clock=clock).run(until=START + dt.timedelta(hours=2))
    assert cli.main(["scheduler", "status", "--bank", bank.url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scheduler"] is None
    assert [r["status"] for r in doc["runs"]] == ["ok", "ok", "ok"]
    assert cli.main(["scheduler", "status", "--bank", bank.url]) == 0
    out = capsys.readouterr().out
    assert "not running" in out and out.count(" protect ") == 3
