"""The catalog's stored documents: each reads back what today's (and the last
release's) protectflow wrote, byte for byte, and refuses a damaged one with
the error that names it.

The golden files in ``tests/data/golden/catalog`` were written by the
protectflow before these documents were typed (a protect, restore and verify
of the sim plugins; a restore and copy of the guide's notes; a failed
protect): they are the stored layout that existing banks hold.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protectflow import cli, operations
from protectflow.bank import Bank, CheckpointRecord, CheckpointStore
from protectflow.bank.catalog.journal import JournalEnd, JournalEntry, RunMeta
from protectflow.bank.catalog.lease import Lease
from protectflow.bank.catalog.runs import RunRecord
from protectflow.bank.catalog.stored import Stored
from protectflow.cli.outcome import exit_code
from protectflow.compiler import parse_plan
from protectflow.dag import ResourceStatus
from protectflow.errors import (
    BankError,
    BankFullError,
    BankLockedError,
    BankNotFoundError,
    CheckpointBusyError,
    CheckpointNotFoundError,
    CorruptObjectError,
    NotResumableError,
    RunFailed,
)
from tests.scripts import ROOT
from tests.strategies import mutated

GOLDEN = ROOT / "tests" / "data" / "golden" / "catalog"
SOURCE = Stored("checkpoints/c1/record", "/banks/b")


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def _fail(why: str) -> Exception:
    return CorruptObjectError(why)


@pytest.mark.parametrize("name", ["record.json", "record-copy.json", "record-error.json"])
def test_a_stored_record_reads_back_and_writes_the_same(name: str) -> None:
    data = golden(name)
    record = CheckpointRecord.from_json(data, SOURCE)
    assert record.to_json() == data
    assert record.plan.to_json() == data["plan"]
    assert record.resource_graph.to_json() == data["resource_graph"]


def test_the_other_stored_documents_read_back_and_write_the_same() -> None:
    run = golden("run.json")
    assert RunRecord.from_json(run, SOURCE).to_json() == run
    meta = golden("journal-meta.json")
    assert RunMeta.from_json(meta, SOURCE).to_json() == meta
    end = golden("journal-end.json")
    assert JournalEnd.from_json(end, SOURCE).to_json() == end
    batch = golden("journal-batch.json")
    assert {e["event"] for e in batch} == {"started", "succeeded", "failed"}
    assert any("status_updates" in e for e in batch)
    assert [JournalEntry.from_json(e, _fail).to_json() for e in batch] == batch
    for value in golden("statuses.json").values():
        assert ResourceStatus.from_json(value, _fail).to_json() == value
    lease = golden("lease.json")
    assert Lease.from_json(lease, _fail).to_json() == lease


def _without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    where = changed
    for part in path[:-1]:
        where = where[part]
    del where[path[-1]]
    return changed


def _with(data: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    where: Any = changed
    for part in path[:-1]:
        where = where[part]
    where[path[-1]] = value
    return changed


RECORD = golden("record.json")
DAMAGED = {
    "no status": (_without(RECORD, "status"), "'status' is not a str"),
    "a status of no checkpoint": (_with(RECORD, "done", "status"), "not a checkpoint status"),
    "a number for an owner": (_with(RECORD, 3, "owner"), "'owner' is not a str"),
    "a history entry without its time": (_without(RECORD, "operations", 1, "at"),
                                         r"operations\[1\]: 'at' is not a str"),
    "a history entry of no known event": (_with(RECORD, "lunch", "operations", 0, "event"),
                                          "'lunch' is not a lease's event"),
    "a plan without a name": (_without(RECORD, "plan", "name"), "its plan: .*'name'"),
    "a half verification": (_without(RECORD, "verification", "ok"), "verification: 'ok'"),
    "a copy's source without a bank": (_with(RECORD, {"checkpoint": "x"}, "copied_from"),
                                       "copied_from: 'bank' is not a str"),
    "a graph with a cycle": (_with(RECORD, [["OS::Nova::Server#web", "OS::Cinder::Volume#v"],
                                            ["OS::Cinder::Volume#v", "OS::Nova::Server#web"]],
                                   "resource_graph", "dependencies"), "its resource graph: cycle"),
    "a graph with a dangling dependency": (
        _with(RECORD, [["OS::Nova::Server#web", "OS::Cinder::Volume#gone"]],
              "resource_graph", "dependencies"), "names OS::Cinder::Volume#gone, which is not"),
    "a graph listing a resource twice": (
        _with(RECORD, RECORD["resource_graph"]["resources"] * 2, "resource_graph",
              "resources"), "listed twice"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_record_is_refused_naming_it(case: str) -> None:
    data, why = DAMAGED[case]
    with pytest.raises(CorruptObjectError, match=why) as info:
        CheckpointRecord.from_json(data, SOURCE)
    message = str(info.value)
    assert message.startswith("checkpoint 'c1' has a corrupt record (checkpoints/c1/record in "
                              "bank /banks/b): ")
    assert message.endswith("restore that object from a copy of the bank, or remove the "
                            "folder checkpoints/c1/ to drop the checkpoint")
    assert info.value.key == "checkpoints/c1/record"


@settings(max_examples=300)
@given(mutated(st.just(RECORD)))
def test_a_damaged_record_is_refused_as_a_bank_error_or_read(data: Any) -> None:
    try:
        record = CheckpointRecord.from_json(data, SOURCE)
    except BankError:  # corrupt (or of another version): never another error
        return
    assert CheckpointRecord.from_json(record.to_json(), SOURCE) == record


def test_a_record_of_another_version_is_refused_before_its_fields() -> None:
    with pytest.raises(BankError, match="checkpoint 'c1' has record format 3; this protectflow "
                                        "reads format 1 or 2") as info:
        CheckpointRecord.from_json({"version": 3}, SOURCE)
    assert not isinstance(info.value, CorruptObjectError)


def _planted(tmp_path: Path, change: Any) -> tuple[Bank, str]:
    """A protected checkpoint whose record a writer with the key changed."""
    plan = parse_plan(json.dumps({"name": "t", "resources": [
        {"type": "OS::Nova::Server", "id": "web", "depends_on": ["OS::Cinder::Volume#v"]},
        {"type": "OS::Cinder::Volume", "id": "v"}]}), source="t.json")
    bank = Bank(tmp_path / "bank")
    checkpoint = operations.protect(plan, bank=bank, executor="serial").checkpoint
    key = checkpoint.prefix + "record"
    bank.update_object(key, change(bank.get_object(key)))
    return bank, checkpoint.id


@pytest.mark.parametrize("dependencies", [
    [["OS::Nova::Server#web", "OS::Cinder::Volume#v"],
     ["OS::Cinder::Volume#v", "OS::Nova::Server#web"]],
    [["OS::Nova::Server#web", "OS::Cinder::Volume#nowhere"]],
])
def test_a_resource_graph_read_back_with_a_cycle_or_a_dangling_dependency_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], dependencies: list[Any]) -> None:
    bank, cid = _planted(tmp_path, lambda record: _with(record, dependencies,
                                                         "resource_graph", "dependencies"))
    before = sorted(bank.list_objects())
    for call in (operations.restore, operations.verify, operations.delete):
        with pytest.raises(CorruptObjectError, match="its resource graph"):
            call(cid, bank=bank, executor="serial")
    with pytest.raises(CorruptObjectError):
        CheckpointStore(bank).get(cid)
    assert cli.main(["restore", cid, "--bank", bank.url]) == 2
    assert f"checkpoint '{cid}' has a corrupt record" in capsys.readouterr().err
    assert sorted(bank.list_objects()) == before  # nothing written


def test_error_kinds_keep_their_data_across_processes_and_exit_as_the_cli_says() -> None:
    kinds: list[BankError] = [
        BankNotFoundError("there is no bank at 'x'"),
        BankLockedError("wrong password for bank x", BankLockedError.WRONG),
        CheckpointNotFoundError("no checkpoint 'c' in x"),
        CheckpointBusyError("checkpoint c is busy: restore by alice"),
        CorruptObjectError("bank object 'k' failed authentication", key="k"),
        NotResumableError("nothing to resume"),
    ]
    for err in kinds:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert back.__dict__ == err.__dict__
        assert exit_code(err) == 2
    assert isinstance(kinds[2], LookupError)
    assert exit_code(BankFullError("full")) == exit_code(RunFailed("failed")) == 1
