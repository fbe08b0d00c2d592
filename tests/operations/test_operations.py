"""The five operations end to end on real banks, with the sim plugins."""

from __future__ import annotations

import copy as copy_module
import threading
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.bank import Bank, CheckpointStore, CopiedFrom
from protectflow.bank.catalog.record import StatusChange
from protectflow.compiler import parse_plan
from protectflow.errors import BankError, CheckpointBusyError, ExecutorError, ParameterError
from tests import waits

EXECUTORS = ["serial", "threads", "dask-inproc", "dask-procs"]

PLAN: dict[str, Any] = {
    "name": "shop-tenant",
    "resources": [
        {"type": "OS::Nova::Server", "id": "web", "depends_on": [
            "OS::Cinder::Volume#root", "OS::Cinder::Volume#shared"]},
        {"type": "OS::Nova::Server", "id": "db", "depends_on": ["OS::Cinder::Volume#shared"]},
        {"type": "OS::Cinder::Volume", "id": "root"},
        {"type": "OS::Cinder::Volume", "id": "shared"},
    ],
    "parameters": {"OS::Cinder::Volume": {"payload_bytes": 4096}},
}


def plan(**changes: Any) -> Any:
    data = copy_module.deepcopy(PLAN)
    data.update(changes)
    import json

    return parse_plan(json.dumps(data), source="plan.json")


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(str(tmp_path / "bank"))


def bank_files(bank: Bank) -> dict[str, bytes]:
    root = Path(bank.url.removeprefix("file://"))
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def executor(request: pytest.FixtureRequest) -> Any:
    """An executor name, or a dask executor on one of the session's clusters."""
    name: str = request.param
    if not name.startswith("dask"):
        return name
    from protectflow.executors import get_executor

    client = request.getfixturevalue(name.replace("-", "_"))  # dask_inproc, dask_procs
    return get_executor("dask", client=client)


@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_protect_restore_verify_copy_delete(bank: Bank, tmp_path: Path, executor: Any) -> None:
    protected = operations.protect(plan(), bank=bank, executor=executor)
    assert protected.ok
    checkpoint = protected.checkpoint.reload()
    assert checkpoint.status == "available"
    assert set(checkpoint.resources) == {
        "OS::Nova::Server#web", "OS::Nova::Server#db",
        "OS::Cinder::Volume#root", "OS::Cinder::Volume#shared"}
    assert {v.status for v in checkpoint.resources.values()} == {"available"}
    # the sim plugin stored each resource's data in its section
    section = checkpoint.get_resource_bank_section("OS::Cinder::Volume#root")
    assert section.get_object("data") == b"\0" * 4096
    # the plan (parameters included) and the graph are saved in the checkpoint
    assert checkpoint.plan.parameters == PLAN["parameters"]
    assert len(checkpoint.resource_graph.resources) == 4
    assert not checkpoint.busy

    restored = operations.restore(checkpoint.id, bank=bank, executor=executor)
    assert restored.ok and restored.run is not None
    assert restored.run.status == "success"
    assert restored.new_resources["OS::Cinder::Volume#root"] == "restored-root"
    assert {v.status for v in restored.resources.values()} == {"restored"}
    assert checkpoint.list_runs()[0].operation == "restore"

    verified = operations.verify(checkpoint.id, bank=bank, executor=executor)
    assert verified.ok and verified.run is not None and verified.run.status == "success"

    other = Bank(str(tmp_path / "other-bank"))
    copied = operations.copy(checkpoint.id, to=other, bank=bank, executor=executor)
    assert copied.ok and copied.target is not None
    target = CheckpointStore(other).get(copied.target.id)
    assert target.status == "available"
    assert target.record.copied_from == CopiedFrom(bank.url, checkpoint.id)
    assert (target.get_resource_bank_section("OS::Cinder::Volume#root").get_object("data")
            == b"\0" * 4096)
    assert checkpoint.reload().status == "available"
    assert any(isinstance(e, StatusChange) and e.to_status == "copying"
               for e in checkpoint.operations)

    deleted = operations.delete(checkpoint.id, bank=bank, executor=executor)
    assert deleted.ok
    tomb = CheckpointStore(bank).get(checkpoint.id)
    assert tomb.status == "deleted"
    assert bank.list_objects(tomb.prefix + "data/") == []
    # the copy in the other bank is untouched
    assert operations.verify(target.id, bank=other, executor=executor).ok


def test_failed_protect_records_which_resources_failed_and_why(bank: Bank) -> None:
    bad = plan(parameters={"OS::Cinder::Volume#shared": {"fail": ["main"]}})
    result = operations.protect(bad, bank=bank, executor="serial")
    assert not result.ok
    checkpoint = result.checkpoint.reload()
    assert checkpoint.status == "error"
    assert "OS::Cinder::Volume#shared/main" in (checkpoint.record.status_reason or "")
    statuses = checkpoint.resources
    assert statuses["OS::Cinder::Volume#shared"].status == "error"
    assert "main failed" in (statuses["OS::Cinder::Volume#shared"].reason or "")
    # the servers wait for the shared volume's complete: they never completed
    assert statuses["OS::Nova::Server#web"].status == "not_run"
    assert not checkpoint.busy
    with pytest.raises(BankError, match="it is error"):
        operations.restore(checkpoint.id, bank=bank)
    # a failed checkpoint can be deleted
    assert operations.delete(checkpoint.id, bank=bank).ok


def test_bad_input_writes_nothing(bank: Bank) -> None:
    with pytest.raises(ParameterError, match="main_seconds"):
        operations.protect(plan(parameters={"OS::Cinder::Volume": {"main_seconds": -1}}),
                           bank=bank)
    with pytest.raises(ExecutorError, match=r"available: .*serial"):
        operations.protect(plan(), bank=bank, executor="daks")
    assert bank_files(bank) == {}


def test_an_operation_on_a_busy_checkpoint_is_refused(bank: Bank) -> None:
    slow = plan(parameters={"OS::Cinder::Volume": {"main_seconds": 0.5}})
    checkpoint = operations.protect(plan(), bank=bank).checkpoint
    started = threading.Event()

    def listener(event: Any) -> None:
        if event.kind == "started":
            started.set()

    errors: list[BaseException] = []

    def run_verify() -> None:
        try:
            operations.verify(checkpoint.id, bank=bank, parameters=slow.parameters,
                              listeners=[listener])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    thread = threading.Thread(target=run_verify)
    thread.start()
    assert started.wait(waits.LIMIT)
    with pytest.raises(CheckpointBusyError):
        operations.delete(checkpoint.id, bank=bank)
    thread.join()
    assert errors == []
    assert operations.delete(checkpoint.id, bank=bank).ok


def test_restore_parameters_are_validated_against_the_restore_schema(bank: Bank) -> None:
    checkpoint = operations.protect(plan(), bank=bank).checkpoint
    with pytest.raises(ParameterError, match="OS::Cinder::Volume"):
        operations.restore(checkpoint.id, bank=bank,
                           parameters={"OS::Cinder::Volume": {"no_such_option": 1}})
    assert checkpoint.list_runs() == []


def test_copy_to_its_own_bank_is_refused(bank: Bank) -> None:
    checkpoint = operations.protect(plan(), bank=bank).checkpoint
    with pytest.raises(BankError, match="own bank"):
        operations.copy(checkpoint.id, to=bank, bank=bank)


def test_a_copy_whose_target_cannot_be_created_leaves_the_source_available(
        bank: Bank, tmp_path: Path) -> None:
    checkpoint = operations.protect(plan(), bank=bank).checkpoint
    target = tmp_path / "broken-bank"
    target.mkdir()
    (target / "checkpoints").write_text("a file where the bank wants a folder")
    (target / "index").write_text("the same")
    with pytest.raises((BankError, OSError)):
        operations.copy(checkpoint.id, to=str(target), bank=bank)
    checkpoint.reload()
    assert checkpoint.status == "available" and not checkpoint.busy
    back = [e for e in checkpoint.operations
            if isinstance(e, StatusChange) and e.from_status == "copying"]
    assert back and back[-1].to_status == "available" and back[-1].reason == "copy interrupted"


def test_limits_naming_nothing_in_the_plan_are_refused_before_anything_is_written(
        bank: Bank) -> None:
    with pytest.raises(ExecutorError, match="'OS::Cinder::Volum' is no resource type"):
        operations.protect(plan(), bank=bank, limits={"OS::Cinder::Volum": 1})
    assert bank_files(bank) == {}
    checkpoint = operations.protect(plan(), bank=bank, limits={"OS::Cinder::Volume": 1})
    assert checkpoint.ok


def test_gc_resolves_a_delete_that_died_and_delete_then_finishes(bank: Bank) -> None:
    checkpoint = operations.protect(plan(), bank=bank).checkpoint
    # a delete that took its lease, began, and died: nobody renews the lease
    lease = checkpoint.acquire("delete", "root@elsewhere:1", ttl=60)
    checkpoint.transition("deleting")
    store = CheckpointStore(bank)
    assert store.gc() == []  # the lease still holds
    assert store.gc(now=lease.expires_at + 1) == [checkpoint.id]
    assert store.get(checkpoint.id).status == "error_deleting"
    assert operations.delete(checkpoint.id, bank=bank).ok
    assert store.get(checkpoint.id).status == "deleted"
    assert bank.list_objects(checkpoint.prefix + "data/") == []
