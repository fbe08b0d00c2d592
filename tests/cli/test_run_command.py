"""``protectflow run`` as a user runs it: a subprocess, exit codes, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import waits

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "tenant.yaml")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "protectflow.cli", "run", *args],
                          capture_output=True, text=True, timeout=waits.LIMIT,
                          env=dict(os.environ))


def with_parameters(extra: str) -> str:
    """The example plan with ``extra`` lines in its parameters section."""
    return Path(EXAMPLE).read_text().replace("parameters:\n", "parameters:\n" + extra)


def test_success_writes_report_and_trace(tmp_path: Path) -> None:
    report, trace = tmp_path / "report.json", tmp_path / "trace.json"
    out = cli(EXAMPLE, "--executor", "threads", "--report", str(report), "--trace", str(trace),
              "--limit", "OS::Cinder::Volume=1")
    assert out.returncode == 0, out.stderr
    data = json.loads(report.read_text())
    assert data["state"] == "succeeded" and data["counts"]["succeeded"] == 48
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" for e in events) == 48


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_failed_run_exits_1(tmp_path: Path, executor: str) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(with_parameters("  OS::Glance::Image:\n    fail: [main]\n"))
    report = tmp_path / "r.json"
    out = cli(str(plan), "--executor", executor, "--report", str(report))
    assert out.returncode == 1, out.stderr
    assert "failed" in out.stderr and "SimFailure" in out.stderr
    assert json.loads(report.read_text())["state"] == "failed"


def test_retries_flag_turns_failure_into_success(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(with_parameters(
        "  OS::Glance::Image:\n    fail: [main]\n    fail_attempts: 1\n"))
    assert cli(str(plan), "--executor", "serial").returncode == 1
    assert cli(str(plan), "--executor", "serial", "--retries", "1").returncode == 0


def test_hookdag_file(tmp_path: Path) -> None:
    dag = tmp_path / "dag.json"
    subprocess.run([sys.executable, "-m", "protectflow.cli", "compile", EXAMPLE,
                    "--operation", "restore", "-o", str(dag)], check=True)
    assert cli(str(dag), "--executor", "serial").returncode == 0
    out = cli(str(dag), "--operation", "protect")
    assert out.returncode == 2 and "is a restore DAG" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--executor", "daks"], "unknown executor 'daks'; available: dask, serial, threads"),
    (["--limit", "OS::Cinder::Volume=two"], "bad --limit"),
    (["--limit", "OS::Cinder::Volum=2"], "is no resource type or pool"),
    (["--scheduler", "tcp://127.0.0.1:1", "--executor", "threads"],
     "--scheduler is for the dask executor, not threads"),
    # --scheduler alone means dask: the scheduler is tried, not refused
    (["--scheduler", "tcp://127.0.0.1:1"], "cannot reach the dask scheduler"),
    (["--workers", "0"], "argument --workers: 0 is below 1"),
    (["--retries", "-1"], "argument --retries: -1 is below 0"),
    (["--timeout", "-5"], "argument --timeout: -5 is not a number of seconds > 0"),
    (["--timeout", "nan"], "argument --timeout: nan is not a number of seconds > 0"),
    (["--limit", "OS::Cinder::Volume=0"], "bad --limit"),
])
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    out = cli(EXAMPLE, *args)
    assert out.returncode == 2
    assert message in out.stderr


def test_missing_plan_exits_2(tmp_path: Path) -> None:
    assert cli(str(tmp_path / "nope.yaml")).returncode == 2


def test_dask_on_a_running_scheduler(dask_remote: str, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    out = cli(EXAMPLE, "--executor", "dask", "--scheduler", dask_remote, "--report", str(report))
    assert out.returncode == 0, out.stderr
    assert json.loads(report.read_text())["executor"] == "dask"


@pytest.mark.slow  # a cluster of its own
def test_dask_starts_its_own_cluster() -> None:
    out = cli(EXAMPLE, "--executor", "dask", "--workers", "1")
    assert out.returncode == 0, out.stderr
