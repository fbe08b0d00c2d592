"""Interrupts the command promises to take calmly, pinned: Ctrl-C (or
SIGTERM) outside an operation's run -- at the password prompt, while the
plan compiles, during the plugins' preflight -- exits 130 with no traceback
and nothing written; an interrupted run with ``--json`` exits 130 and still
prints its result document."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli
from protectflow.bank import Bank
from protectflow.cli import results
from protectflow.errors import Terminated
from protectflow.plugins import get_registry
from tests.robustness.robust_helpers import COMMAND, tree_digest

FS = "protectflow::fs::Directory"
PASSWORD = "a password nobody types"
#: Four volumes whose main hooks take a while: 16 hooks, long enough to interrupt.
SLEEPY = """\
name: sleepy
resources:
{resources}
parameters:
  OS::Cinder::Volume: {{main_seconds: 1.0}}
"""


def fs_plan(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: files\nresources:\n  - type: {FS}\n    id: src\n"
                    f"    extra_info: {{path: {tmp_path / 'src'}}}\n")
    return plan


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROTECTFLOW_BANK", "PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE")}
    return env | extra


# -- outside the run ---------------------------------------------------------------------
@pytest.mark.parametrize("command", ["protect", "restore"])
def test_ctrl_c_at_the_password_prompt_exits_130_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    pexpect = pytest.importorskip(
        "pexpect", reason="a real terminal needs pexpect: pip install -e '.[test]'")
    plan = fs_plan(tmp_path)
    bank = tmp_path / "bank"
    with monkeypatch.context() as m:  # a bank only its password opens
        m.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
        assert cli.main(["protect", str(plan), "--bank", str(bank), "-q"]) == 0
        checkpoint_id = Bank(bank).list_objects("checkpoints/")[0].split("/")[1]
    before = tree_digest(bank)
    argv = ["protect", str(plan)] if command == "protect" else [
        "restore", checkpoint_id, "--target", str(tmp_path / "out")]
    child = pexpect.spawn(COMMAND[0], [*COMMAND[1:], *argv, "--bank", str(bank)],
                          cwd=str(tmp_path), env=environment(TERM="xterm"),
                          encoding="utf-8", timeout=60, dimensions=(40, 160))
    child.expect("password of bank")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    out = str(child.before)
    assert child.exitstatus == 130, (child.signalstatus, out)
    assert "interrupted" in out and "Traceback" not in out, out
    assert tree_digest(bank) == before and not (tmp_path / "out").exists()


def _interrupt(monkeypatch: pytest.MonkeyPatch, method: str, signum: int) -> None:
    """Make the fs plugin's ``method`` be where a Ctrl-C (or a SIGTERM, which
    the command turns into one) arrives."""
    registry = get_registry()
    name = registry.plugin_name_for(FS)
    assert name is not None
    plugin_class = type(registry.plugin(name))

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    monkeypatch.setattr(plugin_class, method, interrupted)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize(("where", "method"), [
    ("compile", "get_options_schema"),  # the parameters checked against their schema
    ("preflight", "preflight"),         # the plugins' checks of every resource
])
def test_an_interrupt_before_the_run_exits_130_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        where: str, method: str, signum: int) -> None:
    plan = fs_plan(tmp_path)
    _interrupt(monkeypatch, method, signum)
    for json_flag in ([], ["--json"]):
        try:
            code = cli.main(["protect", str(plan), "--bank", str(tmp_path / "bank"),
                             *json_flag])
        except KeyboardInterrupt:  # not let through to pytest: it would stop the session
            pytest.fail(f"an interrupt during {where} escaped the command")
        out, err = capsys.readouterr()
        assert code == 130, (where, err)
        assert "protectflow: interrupted" in err and "Traceback" not in err + out
        assert out == ""  # no result: nothing ran
    assert not (tmp_path / "bank").exists()  # nothing was written


# -- inside the run, with --json ---------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_json_run_exits_130_and_prints_its_result(
        tmp_path: Path, signum: int) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(SLEEPY.format(resources="\n".join(
        f"  - {{type: OS::Cinder::Volume, id: v{i}}}" for i in range(4))))
    proc = subprocess.Popen(
        [*COMMAND, "protect", str(plan), "--bank", str(tmp_path / "bank"), "--json",
         "--executor", "threads", "--workers", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment(PROTECTFLOW_PROGRESS_INTERVAL="0.05"))
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the plain progress lines: wait for the run's total
        seen.append(line)
        if "/16 hooks done" in line:
            break
    assert seen and "/16 hooks done" in seen[-1], seen
    proc.send_signal(signum)
    # communicate, not wait: a child blocked on a full pipe never ends
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    document = json.loads(out)  # stdout holds the document and nothing else
    assert results.check("result", document) == []
    assert document["ok"] is False and document["run"]["state"] == "cancelled"
    assert f"protectflow resume {document['checkpoint']}" in err
    assert document["status"] == "error"  # marked, its lease released: resumable
    assert "Traceback" not in err
