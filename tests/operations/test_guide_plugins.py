"""The operations with plugins written to the guide alone: a plain class
runs every operation, a provider chooses between two plugins for one type
(for the protect and for everything done later with its checkpoint), its
configuration reaches the plugins (in worker processes too), the extras
arrive and their status updates land in the run records, copy hooks get the
plan's parameters, and a resume or a clean-up works through the contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.bank import Bank, CheckpointStore, RunRecord
from protectflow.bank.catalog.journal import JournalEntry, JournalRun, RunMeta
from protectflow.bank.catalog.runs import last_reports
from protectflow.bank.catalog.stored import Stored
from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import StatusUpdate
from protectflow.dag.model import Resource
from protectflow.errors import PluginError
from protectflow.operations.outcomes import on_failure
from protectflow.operations.resume import broken_windows, completed_hooks
from protectflow.plugins import Registry
from protectflow.plugins.registry import using_registry
from protectflow.states import AVAILABLE, DELETED
from tests import needs
from tests.operations import guide_plugins
from tests.operations.guide_plugins import NOTE, plan_json

N1, N2 = f"{NOTE}#n1", f"{NOTE}#n2"


@pytest.fixture(autouse=True)
def plugins() -> Iterator[Registry]:
    with using_registry(guide_plugins.registry()) as registry:
        yield registry


def _plan(provider: Any = None, **extra: Any) -> Any:
    chosen = {"plugins": {NOTE: "notes-a"}} if provider is None else provider
    return parse_plan(json.dumps(plan_json(chosen, **extra)), source="notes.json")


def _outputs(result: operations.OperationResult) -> dict[str, Any]:
    return {node: record.output for node, record in result.report.hooks.items()
            if record.output is not None}


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_plain_plugin_runs_every_operation(tmp_path: Path, executor: str) -> None:
    bank = Bank(tmp_path / "bank")
    protected = operations.protect(_plan(), bank=bank, executor=executor)
    assert protected.ok, protected.report.failed()
    cid = protected.checkpoint.id
    section = protected.checkpoint.get_resource_bank_section(Resource(NOTE, "n1"))
    # The text went on self in prepare_finish and reached the bank in main.
    assert section.get_object("note")["text"] == "hello"

    restored = operations.restore(cid, bank=bank, executor=executor)
    assert restored.ok
    assert {k: v["text"] for k, v in restored.new_resources.items()} == {N1: "hello", N2: "world!"}
    verified = operations.verify(cid, bank=bank, executor=executor)
    assert verified.ok
    deleted = operations.delete(cid, bank=bank, executor=executor)
    assert deleted.ok
    checkpoint = CheckpointStore(bank).get(cid)
    assert checkpoint.status == DELETED
    assert not section.has_object("note")
    assert [run.operation for run in checkpoint.list_runs()] == ["delete", "verify", "restore"]


@pytest.mark.parametrize("chosen", ["notes-a", "notes-b"])
def test_a_provider_chooses_the_plugin_for_the_checkpoints_whole_life(
        tmp_path: Path, chosen: str) -> None:
    label = chosen.removeprefix("notes-")
    bank = Bank(tmp_path / "bank")
    protected = operations.protect(_plan({"plugins": {NOTE: chosen}}), bank=bank)
    assert protected.ok
    assert {n.plugin for n in compile_plan(_plan({"plugins": {NOTE: chosen}})).nodes} == {chosen}
    cid = protected.checkpoint.id
    restored = operations.restore(cid, bank=bank)
    verified = operations.verify(cid, bank=bank)
    deleted = operations.delete(cid, bank=bank)
    for result in (protected, restored, verified, deleted):
        assert result.ok, (result.operation, result.report.failed())
        # Every hook that ran is the chosen plugin's, in every operation.
        assert {out["by"] for out in _outputs(result).values()} == {label}, result.operation
    assert {v["by"] for v in restored.new_resources.values()} == {label}


def test_without_a_provider_the_conflict_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    with pytest.raises(PluginError) as caught:
        operations.protect(_plan({}), bank=tmp_path / "bank")
    message = str(caught.value)
    assert "'notes-a'" in message and "'notes-b'" in message and "provider" in message
    assert not (tmp_path / "bank" / "checkpoints").exists()


def test_restore_verify_and_copy_status_updates_land_in_the_run_records(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(_plan(), bank=bank).checkpoint.id
    restored = operations.restore(cid, bank=bank)
    verified = operations.verify(cid, bank=bank)
    copied = operations.copy(cid, bank=bank, to=tmp_path / "other")
    assert restored.run is not None and verified.run is not None and copied.run is not None
    assert {k: (v.status, v.reason) for k, v in restored.run.status_updates.items()} == {
        N1: ("restored", "by a"), N2: ("restored", "by a")}
    assert verified.run.status_updates[N2].reason == "6 chars, by a"
    assert {v.status for v in copied.run.status_updates.values()} == {"copied"}
    # As kept in the bank, not only as returned.
    kept = {run.operation: run for run in CheckpointStore(bank).get(cid).list_runs()}
    assert kept["restore"].status_updates == restored.run.status_updates
    assert kept["verify"].status_updates[N1].status == "verified"


def test_copy_hooks_get_the_plans_parameters(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(_plan(), bank=bank).checkpoint.id
    copied = operations.copy(cid, bank=bank, to=tmp_path / "other")
    assert copied.ok
    got = [out["parameters"] for out in _outputs(copied).values()]
    assert got == [{"tag": "weekly"}, {"tag": "weekly"}]


@pytest.mark.parametrize("executor", ["threads", "dask"])
def test_the_providers_configuration_reaches_the_plugins(
        tmp_path: Path, executor: str, request: pytest.FixtureRequest) -> None:
    pytest.importorskip("distributed", reason=f"distributed {needs.TEST_EXTRA}")
    provider = {"plugins": {NOTE: "notes-b"}, "config": {"notes-b": {"endpoint": "https://x"}}}
    bank = Bank(tmp_path / "bank")
    # dask workers are other processes: they find the plugins by the registry's spec.
    options: dict[str, Any] = {"registry": guide_plugins.SPEC}
    runner: Any = executor
    if executor == "dask":
        from protectflow.executors import get_executor

        runner = get_executor("dask", client=request.getfixturevalue("dask_procs"))
    protected = operations.protect(_plan(provider), bank=bank, executor=runner, **options)
    assert protected.ok, protected.report.failed()
    restored = operations.restore(protected.checkpoint.id, bank=bank, executor=runner,
                                  **options)
    assert {v["config"]["endpoint"] for v in restored.new_resources.values()} == {"https://x"}


def test_a_plain_plugin_without_config_is_refused_a_configuration(tmp_path: Path) -> None:
    provider = {"plugins": {NOTE: "notes-a"}, "config": {"notes-a": {"x": 1}}}
    registry = Registry({"notes-a": _NoConfig(), "notes-b": guide_plugins.NotesB()})
    with using_registry(registry), pytest.raises(PluginError, match="takes no configuration"):
        operations.protect(_plan(provider), bank=tmp_path / "bank")


class _NoConfig(guide_plugins.NotesA):
    def __init__(self) -> None:
        super().__init__()


def test_protect_keeps_its_checkpoint_in_the_providers_bank(tmp_path: Path) -> None:
    provider = {"plugins": {NOTE: "notes-a"}, "bank": str(tmp_path / "provider-bank")}
    result = operations.protect(_plan(provider), executor="serial")
    assert result.checkpoint.bank == Bank(tmp_path / "provider-bank")
    assert result.checkpoint.status == AVAILABLE
    # The plan's own bank comes first.
    mine = operations.protect(_plan(provider, bank=str(tmp_path / "mine")), executor="serial")
    assert mine.checkpoint.bank == Bank(tmp_path / "mine")


class _Cleaning(guide_plugins.NotesA):
    """on_failure with its arguments in an order of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.cleaned: list[tuple[str, Any, Any]] = []

    def on_failure(self, parameters: dict[str, Any], resource: Resource, context: Any,
                   checkpoint: Any) -> None:
        self.cleaned.append((resource.key, checkpoint, dict(parameters)))


def test_on_failure_is_called_by_keyword_and_optional() -> None:
    cleaning = _Cleaning()
    registry = Registry({"notes-a": cleaning, "notes-b": guide_plugins.NotesB()})
    with using_registry(registry):
        dag = compile_plan(_plan(), "protect")
        assert on_failure(dag, checkpoint="the checkpoint", registry_spec=None) == {}
        assert sorted(cleaning.cleaned) == [(N1, "the checkpoint", {"tag": "weekly"}),
                                            (N2, "the checkpoint", {"tag": "weekly"})]
        # A plugin without on_failure has nothing to undo.
        plain = compile_plan(_plan({"plugins": {NOTE: "notes-b"}}), "protect")
        assert on_failure(plain, checkpoint=None, registry_spec=None) == {}


class _Atomic(guide_plugins.NotesA):
    def get_protect_operation(self, resource: Resource) -> Any:
        op = super().get_protect_operation(resource)
        op.atomic_prepare = True  # type: ignore[attr-defined]
        return op


def test_broken_windows_read_the_operation_through_the_contract() -> None:
    registry = Registry({"notes-a": _Atomic(), "notes-b": guide_plugins.NotesB()})
    with using_registry(registry):
        for chosen, redone in (("notes-b", set()), ("notes-a", {f"{N1}/prepare_begin"})):
            dag = compile_plan(_plan({"plugins": {NOTE: chosen}}), "protect")
            done = {f"{N1}/prepare_begin": None}  # its window opened, never closed
            assert broken_windows(dag, done, None) == redone, chosen


def test_a_resumed_run_keeps_the_journaled_status_updates() -> None:
    update = StatusUpdate(*N1.split("#"), "restored", "by a", 12.5)
    entries = (
        JournalEntry(f"{N1}/main", "succeeded", 1, 1.0, "w", output={"by": "a"},
                     new_resources={N1: "x"}, status_updates=(update,)),
        JournalEntry(f"{N2}/main", "succeeded", 1, 1.0, "w"),
    )
    meta = RunMeta(operation="restore", dag_fingerprint="d", plan_fingerprint="p",
                   plugin_versions={}, executor="serial", owner="me")
    done = completed_hooks([JournalRun("r1", meta, entries, None)])
    (kept,) = done[f"{N1}/main"].status_updates
    assert (kept.key, kept.status, kept.reason, kept.time) == (N1, "restored", "by a", 12.5)
    assert done[f"{N2}/main"].status_updates == ()  # an entry from before they were kept


def test_a_run_record_keeps_the_last_report_and_reads_old_records() -> None:
    rtype, rid = N1.split("#")
    reports = [StatusUpdate(rtype, rid, "restoring", None, 2.0),
               StatusUpdate(rtype, rid, "restored", "done", 3.0),
               StatusUpdate(rtype, rid, "restoring", None, 1.0)]  # older: kept out
    run = RunRecord("r", "c", "restore", "me").finished(
        "success", resources={}, new_resources={}, status_updates=last_reports(reports))
    assert run.status_updates == {N1: reports[1]}
    source = Stored("checkpoints/c/runs/r", "memory://b")
    assert RunRecord.from_json(run.to_json(), source) == run
    old = {k: v for k, v in run.to_json().items() if k != "status_updates"}
    assert RunRecord.from_json(old, source).status_updates == {}
