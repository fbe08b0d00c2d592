"""The command in a real terminal (a pseudo-terminal, through pexpect): the
progress bar shows its total; Ctrl-C and SIGTERM during protect, restore and
run exit 130 and, for a checkpoint, print its id and the exact command that
resumes it, which then succeeds -- on the serial, threads and dask executors."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from protectflow.bank import Bank, CheckpointStore
from protectflow.states import AVAILABLE, ERROR
from tests import needs, waits
from tests.robustness.robust_helpers import COMMAND, protectflow

pexpect = pytest.importorskip("pexpect", reason=f"pexpect {needs.TEST_EXTRA}")
pytestmark = pytest.mark.slow  # commands in a terminal, most of them interrupted

#: Four volumes whose main hooks take a while: 16 hooks, long enough to interrupt.
PLAN = """\
name: sleepy
resources:
{resources}
parameters:
  OS::Cinder::Volume: {{main_seconds: {seconds}}}
"""
HOOKS = 16
RESUME = re.compile(r"resume it with: (protectflow resume (\w+) --bank (\S+)[^\r\n]*)")


def _plan(tmp_path: Path, seconds: float = 1.5) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(seconds=seconds, resources="\n".join(
        f"  - {{type: OS::Cinder::Volume, id: v{i}}}" for i in range(4))))
    return path


def _spawn(args: list[str], tmp_path: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "PROTECTFLOW_BANK"}
    env.update(COLUMNS="160", LINES="40", TERM="xterm")
    return pexpect.spawn(COMMAND[0], [*COMMAND[1:], *args], cwd=str(tmp_path), env=env,
                         encoding="utf-8", timeout=waits.LIMIT, dimensions=(40, 160))


def _interrupt(child: Any, how: str) -> str:
    """Wait for the bar to know its total (the run has started), then stop it."""
    child.expect(rf"\d+/{HOOKS}")
    if how == "sigint":
        child.sendintr()  # Ctrl-C: SIGINT to the terminal's foreground process group
    elif how == "kill-int":
        child.kill(signal.SIGINT)  # `kill -INT PID`: the command's own process only
    else:
        child.kill(signal.SIGTERM)
    child.expect(pexpect.EOF)
    child.close()
    return str(child.before)


def _available(tmp_path: Path) -> str:
    bank = tmp_path / "bank"
    done = protectflow(["protect", str(_plan(tmp_path, 0.0)), "--bank", str(bank), "-q"])
    assert done.returncode == 0, done.stderr
    (checkpoint,) = CheckpointStore(Bank(str(bank))).list(limit=None)
    return checkpoint.id


def test_the_progress_bar_shows_its_total(tmp_path: Path) -> None:
    child = _spawn(["protect", str(_plan(tmp_path, 0.3)), "--bank", str(tmp_path / "bank"),
                    "--executor", "serial"], tmp_path)
    child.expect(rf"protect \(serial\).*\d+/{HOOKS}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "protect of sleepy succeeded: 4 resources, 16 hooks" in str(child.before)


@pytest.mark.parametrize("executor, how", [
    ("serial", "sigint"), ("threads", "sigint"), ("threads", "sigterm"),
    # A terminal's Ctrl-C also reaches a local dask cluster's worker processes
    # (one process group): they ignore it, so the command's own stop wins.
    ("dask", "sigint"), ("dask", "kill-int"), ("dask", "sigterm"),
])
def test_an_interrupted_protect_says_how_to_resume_and_resume_succeeds(
        tmp_path: Path, executor: str, how: str) -> None:
    bank = tmp_path / "bank"
    workers = [] if executor == "serial" else ["--workers", "2"]
    child = _spawn(["protect", str(_plan(tmp_path)), "--bank", str(bank),
                    "--executor", executor, *workers], tmp_path)
    out = _interrupt(child, how)
    assert child.exitstatus == 130, out
    found = RESUME.search(out)
    assert found is not None, out
    command, checkpoint_id, named = found.groups()
    assert named == str(bank)
    assert "not_run" not in out  # no table of the hooks that never ran
    store = CheckpointStore(Bank(str(bank)))
    checkpoint = store.get(checkpoint_id)
    assert (checkpoint.status, checkpoint.lease) == (ERROR, None)
    resumed = subprocess.run([*COMMAND, *command.split()[1:], "-q"], capture_output=True,
                             text=True, timeout=waits.LIMIT, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert store.get(checkpoint_id).status == AVAILABLE


@pytest.mark.parametrize("executor, how", [
    ("serial", "sigint"), ("serial", "sigterm"), ("threads", "sigint"), ("dask", "sigint")])
def test_an_interrupted_restore_says_how_to_resume_and_resume_succeeds(
        tmp_path: Path, executor: str, how: str) -> None:
    checkpoint_id = _available(tmp_path)
    params = tmp_path / "restore.yaml"
    params.write_text("OS::Cinder::Volume: {main_seconds: 1.5}\n")
    bank = str(tmp_path / "bank")
    workers = [] if executor == "serial" else ["--workers", "2"]
    child = _spawn(["restore", checkpoint_id[:8], "--bank", bank, "--parameters", str(params),
                    "--executor", executor, *workers], tmp_path)
    out = _interrupt(child, how)
    assert child.exitstatus == 130, out
    found = RESUME.search(out)
    assert found is not None and found.group(2) == checkpoint_id, out
    # the command it printed gives the restore's parameters back (a resume
    # takes them from the operator, never from the bank alone)
    assert "--parameters" in found.group(1), out
    resumed = protectflow(shlex.split(found.group(1))[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed restore of checkpoint" in resumed.stdout


@pytest.mark.parametrize("executor", ["serial", "threads", "dask"])
def test_an_interrupted_run_exits_130(tmp_path: Path, executor: str) -> None:
    workers = ["--workers", "2"] if executor == "dask" else []
    child = _spawn(["run", str(_plan(tmp_path)), "--executor", executor, *workers], tmp_path)
    out = _interrupt(child, "sigint")
    assert child.exitstatus == 130, out
    assert "interrupted: the protect run stopped" in out
