"""The --json documents: built from the library's objects in one place, each
valid against the schema shipped in the package, for successes and failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.cli import results
from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import Plan, ResourceGraph
from protectflow.errors import BankError, PlanError
from protectflow.executors import get_executor, run_dag
from protectflow.plugins import get_registry

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})

PLAN: dict[str, Any] = {
    "name": "json-tenant",
    "resources": [
        {"type": "OS::Nova::Server", "id": "web", "depends_on": ["OS::Cinder::Volume#root"]},
        {"type": "OS::Cinder::Volume", "id": "root"},
    ],
    "parameters": {"OS::Cinder::Volume": {"payload_bytes": 64}},
}


def _plan(**changes: Any) -> Any:
    return parse_plan(json.dumps({**PLAN, **changes}), source="plan.json")


def _valid(kind: str, document: dict[str, Any]) -> dict[str, Any]:
    assert results.check(kind, document) == []
    # What --json prints is plain JSON: it survives a round trip unchanged.
    assert json.loads(json.dumps(document)) == document
    return document


def test_every_operation_result_follows_the_schema(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    protected = operations.protect(_plan(), bank=bank, executor="serial")
    doc = _valid("result", results.operation_result(protected))
    assert (doc["operation"], doc["ok"], doc["status"]) == ("protect", True, "available")
    assert (doc["checkpoint"], doc["bank"]) == (protected.checkpoint.id, bank.url)
    assert [r["resource"] for r in doc["resources"]] == ["OS::Cinder::Volume#root",
                                                         "OS::Nova::Server#web"]
    assert doc["run"]["counts"]["succeeded"] == doc["run"]["hooks"] == 8
    cid = protected.checkpoint.id
    restored = _valid("result", results.operation_result(
        operations.restore(cid, bank=bank, executor="serial")))
    assert restored["new_resources"]["OS::Cinder::Volume#root"] == "restored-root"
    _valid("result", results.operation_result(operations.verify(cid, bank=bank)))
    copied = _valid("result", results.operation_result(
        operations.copy(cid, to=Bank(tmp_path / "other"), bank=bank)))
    assert copied["target"]["bank"] == str(tmp_path / "other")
    deleted = _valid("result", results.operation_result(operations.delete(cid, bank=bank)))
    assert deleted["status"] == "deleted"


def test_a_failed_protect_and_its_resume_follow_the_schema(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    failing = _plan(parameters={"OS::Cinder::Volume": {"fail": ["main"]}})
    failed = operations.protect(failing, bank=bank, executor="threads")
    doc = _valid("result", results.operation_result(failed))
    assert (doc["ok"], doc["status"], doc["run"]["state"]) == (False, "error", "failed")
    (failure,) = doc["run"]["failures"]
    assert failure["node"] == "OS::Cinder::Volume#root/main"
    assert failure["error"] == "protectflow.plugins.builtin.sim.SimFailure"
    resumed = operations.resume(failed.checkpoint.id, bank=bank)
    again = _valid("result", results.operation_result(resumed))
    assert again["run"]["resumed"] > 0  # the prepare hooks came from the journal


def test_a_run_result_follows_the_schema() -> None:
    report = run_dag(compile_plan(_plan(), "verify"), get_executor("serial"))
    doc = _valid("run", results.run_result(report))
    assert doc["run"]["started_at"].endswith("Z") and doc["run"]["duration"] >= 0


def test_paging_gives_a_marker_until_the_last_page(tmp_path: Path) -> None:
    store = CheckpointStore(Bank(tmp_path / "bank"))
    made = [store.create(Plan("p", ()), NO_GRAPH, "fp", "me").id for _ in range(5)]
    seen: list[str] = []
    marker = None
    while True:
        page = _valid("checkpoints-list", results.checkpoint_page(store, limit=2, marker=marker))
        seen += [row["id"] for row in page["checkpoints"]]
        marker = page["next_marker"]
        if marker is None:
            break
        assert marker == seen[-1]
    assert sorted(seen) == sorted(made) and len(seen) == 5
    exact = results.checkpoint_page(store, limit=5)
    assert exact["next_marker"] is None and len(exact["checkpoints"]) == 5  # no empty next page
    assert len(results.checkpoint_page(store, limit=None)["checkpoints"]) == 5
    with pytest.raises(BankError, match="at least 1"):
        results.checkpoint_page(store, limit=0)


def test_a_corrupt_checkpoint_is_a_valid_row(tmp_path: Path) -> None:
    store = CheckpointStore(Bank(tmp_path / "bank"))
    bad = store.create(Plan("p", ()), NO_GRAPH, "fp", "me")
    (tmp_path / "bank" / "checkpoints" / bad.id / "record").write_bytes(b"\0junk")
    (row,) = _valid("checkpoints-list", results.checkpoint_page(store))["checkpoints"]
    assert row["status"] == "corrupt"


def test_checkpoint_show_follows_the_schema(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(_plan(), bank=bank).checkpoint.id
    operations.verify(cid, bank=bank)
    doc = _valid("checkpoint-show", results.checkpoint_show(CheckpointStore(bank).get(cid)))
    assert doc["checkpoint"]["id"] == cid and doc["busy"] is None
    assert [run["operation"] for run in doc["runs"]] == ["verify"]
    held = CheckpointStore(bank).create(Plan("p", ()), NO_GRAPH, "fp", "me")
    assert _valid("checkpoint-show", results.checkpoint_show(held))["busy"].startswith("protect")


def test_plugins_follow_the_schema() -> None:
    doc = _valid("plugins", results.plugins_result(get_registry()))
    assert "OS::Nova::Server" in doc["plugins"]["sim"]["resource_types"]
    assert doc["plugins"]["sim"]["protectable"]["OS::Nova::Server"] is True


def test_validation_follows_the_schema() -> None:
    good = compile_plan(_plan(), "protect")
    bad = PlanError("plan x is not valid:", ["one", "two"])
    doc = _valid("validate", results.validation_result("x.yaml", {"protect": good,
                                                                  "restore": bad}))
    assert doc["valid"] is False
    assert doc["operations"]["protect"] == {"valid": True, "errors": [], "resources": 2,
                                            "hooks": 8}
    assert doc["operations"]["restore"]["errors"] == ["one", "two"]


def test_the_schemas_reject_what_they_should() -> None:
    # A schema that accepts anything would make every test above pass.
    assert results.check("result", {"format": "protectflow.result"})
    assert results.check("checkpoints-list", {"format": "protectflow.checkpoints", "version": 1,
                                              "bank": "b", "plan": None, "checkpoints": [],
                                              "next_marker": None, "extra": 1})
    assert results.check("run", {"format": "protectflow.run", "version": 1,
                                 "operation": "protect", "ok": True, "run": {}})


@pytest.mark.parametrize("kind", sorted(results.SCHEMAS))
def test_every_schema_ships_and_is_a_valid_schema(kind: str) -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(results.schema(kind))
