"""Ctrl-C in the first seconds of a command, as a terminal sends it (SIGINT to
the whole process group), with real processes: while the command loads, while
it opens the bank, and while a dask LocalCluster starts its workers. Each
stops the command cleanly -- exit 130, one line, no traceback -- and the run
never goes on to its end."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from protectflow.bank import Bank, CheckpointStore
from tests.robustness.robust_helpers import COMMAND
from tests.waits import wait_until

#: Two volumes whose main hooks take long enough that a run cannot end first.
SLEEPY = """\
name: sleepy
resources:
  - {type: OS::Cinder::Volume, id: v0}
  - {type: OS::Cinder::Volume, id: v1}
parameters:
  OS::Cinder::Volume: {main_seconds: 30.0}
"""


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PROTECTFLOW_BANK", "PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE")}


def _children(pid: int) -> list[str]:
    found: list[str] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            found += Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    return found


def _mapped(pid: int, name: str) -> bool:
    """Whether the process has loaded a shared library whose path holds ``name``."""
    try:
        return name in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _interrupt_when(tmp_path: Path, argv: list[str], ready: Callable[[int], bool],
                    what: str) -> subprocess.CompletedProcess[str]:
    """Start the command in a process group of its own, wait until ``ready``
    says it is where it should be, then Ctrl-C the group."""
    proc = subprocess.Popen([*COMMAND, *argv], cwd=tmp_path, env=_environment(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is not None or ready(proc.pid), what)
        assert proc.poll() is None, f"the command ended before {what}"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _assert_clean_130(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "protectflow: interrupted" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert "succeeded" not in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("milestone", "library"), [
    ("loading the compiler", "rpds"),             # jsonschema's, imported by `import protectflow`
    ("loading the bank", "cryptography"),         # the bank's crypto, loaded with the command
])
def test_ctrl_c_while_the_command_loads_exits_130(tmp_path: Path, milestone: str,
                                                  library: str) -> None:
    (tmp_path / "plan.yaml").write_text(SLEEPY)
    done = _interrupt_when(tmp_path, ["protect", "plan.yaml", "--bank", str(tmp_path / "bank")],
                           lambda pid: _mapped(pid, library), milestone)
    _assert_clean_130(done)


@pytest.mark.slow
def test_ctrl_c_while_the_bank_opens_exits_130(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(SLEEPY)
    bank = tmp_path / "bank"
    done = _interrupt_when(tmp_path, ["protect", "plan.yaml", "--bank", str(bank),
                                      "--executor", "serial"],
                           lambda pid: bank.exists(), "the bank's folder")
    _assert_clean_130(done)
    if (bank / "config").exists():  # whatever was made is no finished checkpoint
        assert all(c.status != "available" for c in CheckpointStore(Bank(bank)).list())


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_ctrl_c_while_the_dask_cluster_starts_stops_the_run(tmp_path: Path,
                                                            attempt: int) -> None:
    pytest.importorskip("distributed", reason="dask's distributed is not installed: "
                        "pip install -e '.[test]'")
    (tmp_path / "plan.yaml").write_text(SLEEPY)
    bank = tmp_path / "bank"
    done = _interrupt_when(
        tmp_path, ["protect", "plan.yaml", "--bank", str(bank), "--executor", "dask",
                   "--workers", "1"],
        lambda pid: bool(_children(pid)), "the cluster's first worker process")
    # The signal went to the whole process group, the worker process too: one
    # still starting its interpreter (before any handler can be in place: its
    # exec resets them) dies with a traceback of its own on the shared stderr,
    # CPython's "Fatal Python error", or one from multiprocessing's spawn entry
    # (File "<string>"). Those are the worker's; protectflow's own is checked.
    stderr = re.sub(r"(Fatal Python error: \w+|Traceback \(most recent call last\):\n"
                    r"  File \"<string>\", line 1, in <module>).*?KeyboardInterrupt\n", "",
                    done.stderr, flags=re.S)
    _assert_clean_130(subprocess.CompletedProcess(done.args, done.returncode, done.stdout,
                                                  stderr))
    assert "protectflow resume" in done.stderr  # the checkpoint was made: it says how on
    (checkpoint,) = CheckpointStore(Bank(bank)).list()
    assert checkpoint.status == "error"  # marked, its lease released: resumable
