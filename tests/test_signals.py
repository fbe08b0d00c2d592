"""SIGTERM on Ctrl-C's path: a protect terminated by SIGTERM cancels its run,
marks its checkpoint and releases its lease, as Ctrl-C does; without the
helper the same signal leaves the checkpoint held and in progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from protectflow.bank import Bank, CheckpointStore
from protectflow.errors import Terminated
from protectflow.signals import terminate_as_interrupt
from protectflow.states import ERROR, PROTECTING
from tests import waits

SCRIPT = """
import contextlib, json, sys
from protectflow import operations
from protectflow.signals import terminate_as_interrupt

plan, bank, executor, use = sys.argv[1:5]
seen = []

def listener(event):
    if event.kind == "started" and not seen:
        seen.append(event)
        print("started", flush=True)

try:
    with terminate_as_interrupt() if use == "1" else contextlib.nullcontext():
        result = operations.protect(plan, bank=bank, executor=executor, listeners=[listener])
except KeyboardInterrupt:  # the signal came between the run and the end of protect
    print(json.dumps({"state": "interrupted"}), flush=True)
    sys.exit(130)
print(json.dumps({"id": result.checkpoint.id, "state": result.report.state}), flush=True)
sys.exit(130 if result.report.state == "cancelled" else 0)
"""

PLAN = """\
name: sleepy
resources:
{resources}
parameters:
  OS::Cinder::Volume: {{main_seconds: 3.0}}
"""


def _plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(resources="\n".join(
        f"  - {{type: OS::Cinder::Volume, id: v{i}}}" for i in range(4))))
    return path


def _terminated_protect(tmp_path: Path, executor: str,
                        use: bool) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(_plan(tmp_path)), str(tmp_path / "bank"), executor,
         "1" if use else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "started\n", proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    # communicate, not wait: a child blocked on a full stderr pipe never ends.
    out, err = proc.communicate(timeout=waits.LIMIT)
    return proc, out + err


def _only_checkpoint(bank: Path) -> tuple[str, object, object]:
    (checkpoint,) = CheckpointStore(Bank(bank)).list(limit=None)
    return checkpoint.status, checkpoint.lease, checkpoint.record.next_steps


@pytest.mark.slow  # a protect in a process of its own, terminated
@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_sigterm_marks_the_checkpoint_and_releases_the_lease(tmp_path: Path,
                                                            executor: str) -> None:
    proc, text = _terminated_protect(tmp_path, executor, use=True)
    out = json.loads(text.splitlines()[0])
    assert proc.returncode == 130, text
    # The run is cancelled (the signal lands in it: its hooks take seconds);
    # "interrupted" if a loaded machine delays it past the run's end.
    assert out["state"] in ("cancelled", "interrupted")
    status, lease, next_steps = _only_checkpoint(tmp_path / "bank")
    assert (status, lease) == (ERROR, None)
    if out["state"] == "cancelled":
        assert out["id"] in str(next_steps)  # the resume hint names the checkpoint


@pytest.mark.slow
def test_without_the_helper_sigterm_leaves_the_checkpoint_held(tmp_path: Path) -> None:
    # The control: the test above would fail without terminate_as_interrupt.
    proc, text = _terminated_protect(tmp_path, "threads", use=False)
    assert proc.returncode == -signal.SIGTERM, text
    status, lease, _ = _only_checkpoint(tmp_path / "bank")
    assert status == PROTECTING and lease is not None


def test_the_previous_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with terminate_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_raises_terminated_a_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt) as info, terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)  # handled as the call returns, in this thread
    assert isinstance(info.value, Terminated) and info.value.signum == signal.SIGTERM


def test_outside_the_main_thread_nothing_changes() -> None:
    seen: list[object] = []

    def body() -> None:
        with terminate_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]
