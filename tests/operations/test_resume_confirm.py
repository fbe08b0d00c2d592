"""A resume takes its commands and targets from the operator, never from the
bank alone: records and journals forged by someone who holds the bank's key
(the test has it: it writes through the bank, which seals every object) are
refused, naming what differs, and nothing runs, nothing is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.bank.catalog.journal import BankJournal, RunMeta, read_journal
from protectflow.compiler import compile_plan, load_plan, parse_plan
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import NotResumableError
from protectflow.operations.journal import plan_fingerprint
from protectflow.operations.prepared import RunSettings, prepare_checkpoint, prepare_plan

APP = "protectflow::app::Application"
DIRECTORY = "protectflow::fs::Directory"


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank")


def _app_plan(tmp_path: Path, *, failing: bool) -> dict[str, Any]:
    """An application frozen by a lock file, with a folder and a volume that
    fails its main hook (so the protect ends in error, to be resumed)."""
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "a.txt").write_text("data\n")
    (tmp_path / "app.lock").touch()
    data: dict[str, Any] = {"name": "app", "resources": [
        {"type": APP, "id": "app", "depends_on": [f"{DIRECTORY}#data"],
         "extra_info": {"lock_file": str(tmp_path / "app.lock"),
                        "state_dir": str(tmp_path / "state")}},
        {"type": DIRECTORY, "id": "data", "extra_info": {"path": str(source)}},
        {"type": "OS::Cinder::Volume", "id": "vol"}]}
    if failing:
        data["parameters"] = {"OS::Cinder::Volume": {"fail": ["main"]}}
    return data


def _failed_protect(tmp_path: Path, bank: Bank) -> tuple[Path, Checkpoint]:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(_app_plan(tmp_path, failing=True)))
    result = operations.protect(plan_file, bank=bank, executor="serial")
    assert not result.ok and result.checkpoint.reload().status == "error"
    return plan_file, result.checkpoint


def _forge_commands(tmp_path: Path, checkpoint: Checkpoint, *, keep_source: bool) -> Path:
    """Seal into the record a freeze command (and the fingerprints that go
    with it into the journal), as a key holder can; the file it would make."""
    pwned = tmp_path / "PWNED"
    data = _app_plan(tmp_path, failing=False)
    info = data["resources"][0]["extra_info"]
    del info["lock_file"]
    info["freeze"] = [sys.executable, "-c", f"open({str(pwned)!r}, 'w').close()"]
    info["thaw"] = ["true"]
    forged_file = tmp_path / "forged.json"  # beside the real one: the same base_dir
    forged_file.write_text(json.dumps(data))
    forged = attrs.evolve(load_plan(forged_file), source=str(tmp_path / "plan.json"))
    dag = compile_plan(forged, "protect")
    record = checkpoint.reload().record
    bank = checkpoint.bank
    prepared = prepare_plan(forged, "protect", parameters=None, executor="serial",
                            settings=RunSettings())
    bank.update_object(checkpoint.prefix + "record", attrs.evolve(
        record, plan=forged, resource_graph=ResourceGraph.from_dag(dag),
        dag_fingerprint=prepared.fingerprint).to_json())
    for run in read_journal(checkpoint):
        meta = attrs.evolve(run.meta, plan_fingerprint=plan_fingerprint(forged),
                            dag_fingerprint=prepared.fingerprint,
                            plugin_versions=dict(prepared.plugin_versions),
                            plan_source=run.meta.plan_source if keep_source else None)
        bank.update_object(f"{checkpoint.prefix}journal/{run.run_id}/meta", meta.to_json())
    return pwned


def test_a_forged_freeze_command_is_not_run_without_a_plan_that_gives_it(
        tmp_path: Path, bank: Bank, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file, checkpoint = _failed_protect(tmp_path, bank)
    pwned = _forge_commands(tmp_path, checkpoint, keep_source=False)
    with pytest.raises(NotResumableError, match=r"names commands to run for "
                       rf"{APP}#app \(freeze, thaw\).*--plan PLAN") as info:
        operations.resume(checkpoint.id, bank=bank, executor="serial")
    assert "no plan of yours is at hand" in str(info.value)
    assert cli.main(["resume", checkpoint.id, "--bank", bank.url, "--executor", "serial"]) == 2
    assert "freeze, thaw" in capsys.readouterr().err
    assert not pwned.exists()
    # The operator's plan, given: the record differs from it, named.
    with pytest.raises(NotResumableError, match=rf"resource {APP}#app extra_info freeze: "
                       r"\[.*\] in the record, absent in your plan"):
        operations.resume(checkpoint.id, bank=bank, executor="serial", plan=plan_file)
    assert not pwned.exists()
    assert CheckpointStore(bank).get(checkpoint.id).status == "error"  # nothing changed


def test_a_forged_freeze_command_is_refused_against_the_plan_file_on_disk(
        tmp_path: Path, bank: Bank) -> None:
    _, checkpoint = _failed_protect(tmp_path, bank)
    pwned = _forge_commands(tmp_path, checkpoint, keep_source=True)
    with pytest.raises(NotResumableError, match=r"differs from your plan: .*"
                       r"extra_info freeze"):
        operations.resume(checkpoint.id, bank=bank, executor="serial")
    assert not pwned.exists()


def test_a_commands_plan_resumes_with_the_operators_plan(tmp_path: Path, bank: Bank) -> None:
    plan_file, checkpoint = _failed_protect(tmp_path, bank)
    # The fix the operator makes (the volume no longer fails) is a new plan:
    # refused as before, naming the parameter that changed.
    plan_file.write_text(json.dumps(_app_plan(tmp_path, failing=False)))
    with pytest.raises(NotResumableError, match="parameter OS::Cinder::Volume fail"):
        operations.resume(checkpoint.id, bank=bank, executor="serial")
    plan_file.write_text(json.dumps(_app_plan(tmp_path, failing=True)))
    result = operations.resume(checkpoint.id, bank=bank, executor="serial")
    # The same plan: the resume ran it (the volume fails again, as the plan says).
    assert [r.node for r in result.report.failed()] == ["OS::Cinder::Volume#vol/main"]


def _forge_restore(checkpoint: Checkpoint, target: Path, *, force: bool = False) -> None:
    """An unfinished restore into ``target``, sealed into the journal as a key
    holder can (with the fingerprints a real one would have)."""
    parameters = {DIRECTORY: {"target": str(target), **({"force": True} if force else {})}}
    prepared = prepare_checkpoint(checkpoint, "restore", parameters=parameters,
                                  executor="serial", settings=RunSettings())
    BankJournal.start(checkpoint, RunMeta(
        operation="restore", dag_fingerprint=prepared.fingerprint,
        plan_fingerprint=plan_fingerprint(checkpoint.plan),
        plugin_versions=dict(prepared.plugin_versions), executor="serial", owner="forger",
        parameters=parameters))


@pytest.fixture
def protected(tmp_path: Path, bank: Bank) -> Checkpoint:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("restored\n")
    plan = parse_plan(json.dumps({"name": "tree", "resources": [
        {"type": DIRECTORY, "id": "data", "extra_info": {"path": str(source)}}]}),
        source="tree.json")
    result = operations.protect(plan, bank=bank, executor="serial")
    assert result.ok
    return result.checkpoint


def test_a_forged_unfinished_restore_writes_nothing_into_the_folder_the_bank_names(
        tmp_path: Path, bank: Bank, protected: Checkpoint,
        capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim"
    _forge_restore(protected, victim, force=True)
    with pytest.raises(NotResumableError, match=rf"{DIRECTORY} target: '{victim}' in the "
                       r"journal, absent given.*--target"):
        operations.resume(protected.id, bank=bank, executor="serial")
    assert cli.main(["resume", protected.id, "--bank", bank.url, "--executor", "serial"]) == 2
    assert f"--target {victim}" in capsys.readouterr().err
    # Another target given: the difference is named, nothing written anywhere.
    mine = tmp_path / "mine"
    assert cli.main(["resume", protected.id, "--bank", bank.url, "--executor", "serial",
                     "--target", str(mine), "--force"]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and str(mine) in err
    assert not victim.exists() and not mine.exists()


def test_an_unfinished_restore_resumes_into_the_target_the_operator_gives(
        tmp_path: Path, bank: Bank, protected: Checkpoint) -> None:
    target = tmp_path / "out"
    _forge_restore(protected, target)  # as a restore killed before its first hook leaves it
    assert cli.main(["resume", protected.id, "--bank", bank.url, "--executor", "serial",
                     "--target", str(target), "-q"]) == 0
    assert (target / "data" / "a.txt").read_text() == "restored\n"

