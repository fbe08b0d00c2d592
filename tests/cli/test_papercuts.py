"""The operator's papercuts, each through the command that showed it."""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank
from protectflow.bank.objects import _keystore as keystore
from protectflow.cli import results
from protectflow.cli.output import timing
from protectflow.cli.progress import PlainProgress
from protectflow.compiler import compile_plan, parse_plan
from protectflow.errors import PluginError
from protectflow.executors import Event, RunOptions
from protectflow.executors.dask import _announce_dashboard
from protectflow.executors.report import DASHBOARD
from tests import needs, waits
from tests.robustness.robust_helpers import COMMAND

PLAN = json.dumps({"name": "one", "resources": [{"type": "OS::Cinder::Volume", "id": "v1"}]})


@pytest.fixture
def checkpoint(tmp_path: Path) -> str:
    """A checkpoint in ``tmp_path/bank``."""
    plan = parse_plan(PLAN, source="one.json")
    return operations.protect(plan, bank=Bank(str(tmp_path / "bank"))).checkpoint.id


def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("PROTECTFLOW_CONFIG", str(path))


def test_copy_to_a_bank_name_of_the_config_file(
        tmp_path: Path, checkpoint: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config(tmp_path, monkeypatch, f'[banks]\nmine = "{tmp_path / "other"}"\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli.main(["copy", checkpoint, "--bank", str(tmp_path / "bank"), "--to", "mine"]) == 0
    assert (tmp_path / "other" / "config").exists()
    assert list(work.iterdir()) == []  # no bank called 'mine' here
    capsys.readouterr()
    # Beside a folder of that name, the name still means the config's bank,
    # and the config file stays valid.
    (work / "mine").mkdir()
    assert cli.main(["checkpoints", "list", "--bank", "mine", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["bank"] == str(tmp_path / "other") and len(listed["checkpoints"]) == 1
    assert cli.main(["checkpoints", "list", "--bank", "./mine", "--json"]) == 0  # the folder
    assert json.loads(capsys.readouterr().out)["checkpoints"] == []


def test_copy_into_a_password_bank_names_the_to_password_file(
        tmp_path: Path, checkpoint: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "secret")
    Bank(str(tmp_path / "locked")).update_object("a", b"x")  # key wrapped by the password only
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    keystore.forget_unlocked()  # as a new process would
    assert cli.main(["copy", checkpoint, "--bank", str(tmp_path / "bank"),
                     "--to", str(tmp_path / "locked")]) == 2
    err = capsys.readouterr().err
    assert "--to-password-file" in err and " --password-file" not in err
    (tmp_path / "pw").write_text("secret\n")
    os.chmod(tmp_path / "pw", 0o600)
    assert cli.main(["copy", checkpoint, "--bank", str(tmp_path / "bank"),
                     "--to", str(tmp_path / "locked"),
                     "--to-password-file", str(tmp_path / "pw")]) == 0


@pytest.mark.parametrize(("url", "meant"), [("file://tmp/x", "file:///tmp/x"),
                                             ("s3//bucket/x", "s3://bucket/x")])
def test_a_mistyped_bank_url_is_refused_with_what_was_meant(
        url: str, meant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    plan = tmp_path / "one.json"
    plan.write_text(PLAN)
    assert cli.main(["protect", str(plan), "--bank", url]) == 2
    assert f"did you mean {meant}?" in capsys.readouterr().err
    assert cli.main(["copy", "abc", "--bank", str(tmp_path / "b"), "--to", url]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json"]  # no folder made


def test_a_checkpoint_of_a_plan_with_its_own_bank_is_found_through_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({**json.loads(PLAN), "bank": str(tmp_path / "own")}))
    monkeypatch.setenv("PROTECTFLOW_BANK", str(tmp_path / "elsewhere"))
    assert cli.main(["protect", str(plan)]) == 0
    found = re.search(r"checkpoint (\w+): available, in the bank (\S+)", capsys.readouterr().out)
    assert found is not None and found.group(2) == str(tmp_path / "own")
    Bank(str(tmp_path / "elsewhere")).update_object("a", b"x")  # another bank, without it
    for argv in (["checkpoints", "show"], ["restore"]):
        assert cli.main([*argv, found.group(1)]) == 2
        err = capsys.readouterr().err
        assert "the bank came from $PROTECTFLOW_BANK" in err
        assert f"`protectflow {' '.join(argv)} {found.group(1)} --plan PLAN`" in err
    assert cli.main(["checkpoints", "show", found.group(1), "--plan", str(plan)]) == 0
    assert cli.main(["checkpoints", "show", "nope", "--bank", str(tmp_path / "own")]) == 2
    assert "--plan PLAN" not in capsys.readouterr().err  # --bank chose: no guess


def test_workers_with_the_serial_executor_one_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "one.json"
    plan.write_text(PLAN)
    run = ["run", str(plan)]
    # --workers with serial, however serial was chosen: a usage error naming both.
    assert cli.main([*run, "--executor", "serial", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers 2 conflicts with --executor serial" in err and "takes no" not in err
    monkeypatch.setenv("PROTECTFLOW_EXECUTOR", "serial")
    assert cli.main([*run, "--workers", "2"]) == 2
    assert ("--workers 2 conflicts with the serial executor (from PROTECTFLOW_EXECUTOR)"
            in capsys.readouterr().err)
    # Workers from the environment or the config file: ignored, and a note says so.
    monkeypatch.delenv("PROTECTFLOW_EXECUTOR")
    monkeypatch.setenv("PROTECTFLOW_WORKERS", "4")
    assert cli.main([*run, "--executor", "serial"]) == 0
    assert ("note: workers = 4 (from PROTECTFLOW_WORKERS) is ignored: --executor serial runs "
            "one hook at a time" in capsys.readouterr().err)
    monkeypatch.delenv("PROTECTFLOW_WORKERS")
    config(tmp_path, monkeypatch, 'executor = "serial"\nworkers = 3\n')
    assert cli.main(run) == 0
    assert "note: workers = 3 (from the config file" in capsys.readouterr().err
    assert cli.main([*run, "--executor", "threads"]) == 0  # the others take them
    assert "note:" not in capsys.readouterr().err


def test_the_summary_gives_the_whole_commands_time_and_the_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "one.json"
    plan.write_text(PLAN)
    assert cli.main(["protect", str(plan), "--bank", str(tmp_path / "b"),
                     "--executor", "serial"]) == 0
    assert re.search(r"succeeded: 1 resources, 4 hooks, in [\d.]+ s \(the run [\d.]+ s, serial\)",
                     capsys.readouterr().out)
    report = operations.run(parse_plan(PLAN, source="one.json"), executor="serial")
    args = argparse.Namespace(started=time.monotonic() - 19)
    assert timing(args, report).startswith("in 19 s (the run ")
    assert timing(argparse.Namespace(), report).endswith(" s (serial)")


def test_a_dask_runs_dashboard_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    class Client:
        dashboard_link = "http://127.0.0.1:8787/status"

    seen: list[Event] = []
    _announce_dashboard(Client(), RunOptions(listeners=[seen.append]))
    assert [(e.kind, e.message) for e in seen] == [(DASHBOARD, Client.dashboard_link)]
    plain = PlainProgress("protect")
    try:
        plain.listener(seen[0])
    finally:
        plain.stop()
    assert capsys.readouterr().err == (
        "protectflow: the dask dashboard is at http://127.0.0.1:8787/status\n")


def test_restore_without_a_target_says_to_give_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    plan = json.dumps({"name": "d", "resources": [
        {"type": "protectflow::fs::Directory", "id": "docs", "extra_info": {"path": str(folder)}},
        {"type": "OS::Cinder::Volume", "id": "v1"}]})
    bank = str(tmp_path / "bank")
    cid = operations.protect(parse_plan(plan, source="d.json"), bank=bank).checkpoint.id
    assert cli.main(["restore", cid, "--bank", bank]) == 2
    err = capsys.readouterr().err
    assert "needs a folder to restore into: give --target DIR" in err
    assert "for protectflow::fs::Directory" in err and "required property" not in err
    assert cli.main(["restore", cid, "--bank", bank, "--target", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "docs").is_dir()


@pytest.mark.parametrize(("argv", "said"), [
    (["restor"], "did you mean 'restore'"),
    (["checkpoints", "shwo"], "did you mean 'show'"),
    (["key", "chnage-password"], "did you mean 'change-password'"),
])
def test_a_mistyped_command_gets_a_did_you_mean(
        argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "usage"), [
    (["restore", "x", "--bogus"], "usage: protectflow restore "),
    (["checkpoints", "show", "x", "--bogus"], "usage: protectflow checkpoints show "),
    (["compile", "p.yaml", "--bogus"], "usage: protectflow compile "),
])
def test_an_unknown_option_prints_its_commands_usage(
        argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "unrecognized arguments: --bogus" in err and usage in err
    assert "COMMAND ..." not in err  # not the top level's


def test_change_password_asks_for_the_current_password_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pexpect = pytest.importorskip("pexpect", reason=f"pexpect {needs.TEST_EXTRA}")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "old")
    bank = str(tmp_path / "bank")
    Bank(bank).update_object("a", b"x")  # the key wrapped by 'old' only
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROTECTFLOW_")}
    child = pexpect.spawn(COMMAND[0], [*COMMAND[1:], "key", "change-password", "--bank", bank],
                          env=env, encoding="utf-8", timeout=waits.LIMIT)
    prompts = []
    for answer in ("old", "new", "new"):
        child.expect(r"[^\r\n]*password[^\r\n]*: ")
        prompts.append(child.after.strip())
        child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert prompts == [f"password of bank {bank}:", "new password:", "new password again:"]
    assert child.exitstatus == 0 and "replaces the old one" in str(child.before)


THREE_STAGES = """\
name: bad
resources:
  - {type: OS::Nova::Server, id: s1, depends_on: ["OS::Cinder::Volume#v9"], colour: red}
  - {type: OS::Cinder::Volume, id: v1}
  - {type: OS::Cinder::Volum, id: v2}
parameters:
  OS::Cinder::Volume: {main_seconds: -1}
  OS::Nova::Server#s1: {bogus: 1}
"""


@pytest.mark.parametrize("schema_error", [True, False])
def test_validate_names_every_stages_mistakes_in_one_run(
        schema_error: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text(THREE_STAGES if schema_error else THREE_STAGES.replace(", colour: red", ""))
    assert cli.main(["validate", str(plan)]) == 2
    err = capsys.readouterr().err
    for mistake in (
        "depends on OS::Cinder::Volume#v9, which the plan does not list",  # references
        "no protection plugin handles OS::Cinder::Volum",  # the graph's plugins
        "main_seconds: -1 is less than the minimum of 0",  # parameters
        "unknown parameter 'bogus'",
    ):
        assert mistake in err, mistake
    assert ("unknown field 'colour'" in err) == schema_error
    assert "(checked: the plan" in err


def test_a_type_without_a_plugin_and_bad_parameters_are_both_named() -> None:
    plan = parse_plan(THREE_STAGES.replace(", colour: red", "").replace("#v9", "#v1"),
                      source="bad.yaml")
    with pytest.raises(PluginError) as info:
        compile_plan(plan)
    message = str(info.value)
    assert "no protection plugin handles OS::Cinder::Volum " in message
    assert "unknown parameter 'bogus'" in message


ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


def test_saved_info_times_are_iso_8601_utc(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "orders.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (x)")
    conn.close()
    plan = json.dumps({"name": "db", "resources": [
        {"type": "protectflow::sqlite::Database", "id": "orders",
         "extra_info": {"path": str(db)}}]})
    bank = str(tmp_path / "bank")
    cid = operations.protect(parse_plan(plan, source="db.json"), bank=bank).checkpoint.id
    show = ["checkpoints", "show", cid, "--bank", bank,
            "--resource", "protectflow::sqlite::Database#orders"]
    assert cli.main(show) == 0
    assert re.search(rf'"taken_at": "{ISO}"', capsys.readouterr().out)
    assert cli.main([*show, "--json"]) == 0
    assert re.fullmatch(ISO, json.loads(capsys.readouterr().out)["info"]["taken_at"])
    assert results.iso_times({"a": [{"frozen_at": 0}], "size_at": True, "n": 5}) == {
        "a": [{"frozen_at": "1970-01-01T00:00:00Z"}], "size_at": True, "n": 5}
