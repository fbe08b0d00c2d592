"""The checkpoint status machine: every (status, target) pair is checked."""

from __future__ import annotations

import itertools

import pytest

from protectflow.bank import (
    STATUSES,
    Bank,
    Checkpoint,
    CheckpointStore,
    CopiedFrom,
    allowed_transitions,
)
from protectflow.bank.catalog.record import LeaseEvent, StatusChange
from protectflow.dag import Plan, Resource, ResourceGraph, ResourceStatus
from protectflow.dag.resource_graph import from_edges
from protectflow.errors import BankError, CheckpointNotFoundError

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})

# Written from the specification, not from the implementation's table.
LEGAL = {
    ("protecting", "available"), ("protecting", "error"),
    ("available", "deleting"), ("error", "deleting"),
    ("error", "protecting"),  # a resumed protect (issue 6)
    ("deleting", "deleted"), ("deleting", "error_deleting"),
    ("error_deleting", "deleting"),
    ("available", "copying"), ("copying", "available"),
}
COPY_TARGET_LEGAL = {("copying", "available"), ("copying", "error")}

# How to reach each starting status from a new checkpoint.
PATHS = {
    "protecting": [],
    "available": ["available"],
    "error": ["error"],
    "copying": ["available", "copying"],
    "deleting": ["available", "deleting"],
    "deleted": ["available", "deleting", "deleted"],
    "error_deleting": ["available", "deleting", "error_deleting"],
}
PLAN = Plan("nightly", (), parameters={"sim.server": {"x": 1}})


def _checkpoint_in(bank: Bank, status: str, *, copy_target: bool = False) -> Checkpoint:
    store = CheckpointStore(bank)
    if copy_target:
        return store.create(PLAN, NO_GRAPH, "fp", "tester",
                            copied_from=CopiedFrom("memory://b", "src"))
    checkpoint = store.create(PLAN, NO_GRAPH, "fp", "tester")
    for step in PATHS[status]:
        checkpoint.transition(step)
    assert checkpoint.status == status
    return checkpoint


@pytest.mark.parametrize(("start", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_every_pair(bank: Bank, start: str, target: str) -> None:
    checkpoint = _checkpoint_in(bank, start)
    if (start, target) in LEGAL:
        checkpoint.transition(target, reason="test")
        assert checkpoint.status == target
        assert CheckpointStore(bank).get(checkpoint.id).status == target
        last = checkpoint.operations[-1]
        assert isinstance(last, StatusChange)
        assert (last.from_status, last.to_status, last.reason) == (start, target, "test")
    else:
        with pytest.raises(BankError) as info:
            checkpoint.transition(target)
        message = str(info.value)
        assert f"illegal transition {start} -> {target} for checkpoint {checkpoint.id}" in message
        assert "allowed: " in message
        assert CheckpointStore(bank).get(checkpoint.id).status == start


@pytest.mark.parametrize("target", STATUSES)
def test_copy_target_pairs(bank: Bank, target: str) -> None:
    checkpoint = _checkpoint_in(bank, "copying", copy_target=True)
    assert checkpoint.status == "copying"
    if ("copying", target) in COPY_TARGET_LEGAL:
        checkpoint.transition(target)
        assert checkpoint.reload().status == target
    else:
        with pytest.raises(BankError, match=f"illegal transition copying -> {target}"):
            checkpoint.transition(target)


def test_table_matches_specification() -> None:
    for start, target in itertools.product(STATUSES, STATUSES):
        assert (target in allowed_transitions(start)) == ((start, target) in LEGAL)
        assert (target in allowed_transitions(start, copy_target=True)) == (
            (start, target) in (LEGAL | COPY_TARGET_LEGAL) - {("error", "protecting")})


def test_unknown_status(bank: Bank) -> None:
    checkpoint = _checkpoint_in(bank, "protecting")
    with pytest.raises(BankError, match="illegal transition protecting -> done"):
        checkpoint.transition("done")
    with pytest.raises(BankError, match="unknown checkpoint status 'done'; known: protecting"):
        allowed_transitions("done")


def test_record_contents(bank: Bank) -> None:
    graph = from_edges([Resource("sim.server", "1"), Resource("sim.volume", "a/b")],
                       [("sim.server#1", "sim.volume#a/b")])
    checkpoint = CheckpointStore(bank).create(PLAN, graph, "sha256:abc", "alice@host")
    checkpoint.set_resource_status("sim.server#1", "available")
    checkpoint.set_resource_status("sim.volume#a/b", "error", reason="disk full")
    fresh = CheckpointStore(bank).get(checkpoint.id)
    record = fresh.record
    assert record.to_json()["version"] == 1 and record.id == checkpoint.id
    assert fresh.plan == PLAN and fresh.resource_graph == graph
    assert fresh.plan.parameters == PLAN.parameters
    assert fresh.dag_fingerprint == "sha256:abc" and fresh.owner == "alice@host"
    assert record.created_at == record.updated_at and record.created_at.endswith("Z")
    assert fresh.resources == {
        "sim.server#1": ResourceStatus("available", None),
        "sim.volume#a/b": ResourceStatus("error", "disk full"),
    }
    assert fresh.operations == (LeaseEvent("start", "protect", "alice@host",
                                           at=record.created_at),)


def test_missing_and_bad_ids(bank: Bank) -> None:
    store = CheckpointStore(bank)
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint 'nope' in bank"):
        store.get("nope")
    for bad in ("a/b", "..", ""):
        with pytest.raises(BankError, match="checkpoint id"):
            store.get(bad)
    with pytest.raises(BankError, match="needs a non-empty 'name'"):
        store.create(Plan("", ()), NO_GRAPH, "fp", "me")
