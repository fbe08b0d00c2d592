"""Leases: one operation at a time per checkpoint, renewals, expiry and gc."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from protectflow.bank import Bank, Checkpoint, CheckpointStore, CopiedFrom
from protectflow.bank.catalog.checkpoint import IN_PROGRESS
from protectflow.bank.catalog.record import LeaseEvent
from protectflow.dag import Plan, ResourceGraph
from protectflow.errors import BankError, CheckpointBusyError, CheckpointNotFoundError
from tests import waits
from tests.bank.bank_helpers import race_for_lease
from tests.waits import queue_get, wait_until

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})

PLAN = Plan("p", ())


def _available(bank: Bank) -> Checkpoint:
    checkpoint = CheckpointStore(bank).create(PLAN, NO_GRAPH, "fp", "creator")
    checkpoint.transition("available")
    checkpoint.release()
    assert not checkpoint.busy
    return checkpoint


def test_second_operation_is_refused(bank: Bank) -> None:
    checkpoint = _available(bank)
    lease = checkpoint.acquire("restore", "alice")
    assert checkpoint.busy and checkpoint.lease == lease
    other = Checkpoint(bank, checkpoint.id)  # another client of the same bank
    for operation in ("verify", "copy", "delete"):
        with pytest.raises(CheckpointBusyError, match=f"checkpoint {checkpoint.id} is busy: "
                                            "restore by alice"):
            other.acquire(operation, "bob")
    with pytest.raises(CheckpointBusyError, match="busy with restore by alice"):
        other.transition("deleting")
    assert other.reload().status == "available"
    checkpoint.release()
    assert not other.busy
    with other.running("delete", "bob") as lease:
        assert lease.operation == "delete"
        other.transition("deleting")
        other.transition("deleted")
    events = [(e.event, e.operation, None) if isinstance(e, LeaseEvent)
              else ("status", None, e.to_status) for e in other.reload().operations]
    assert events == [("start", "protect", None), ("status", None, "available"),
                      ("end", "protect", None), ("start", "restore", None),
                      ("end", "restore", None), ("start", "delete", None),
                      ("status", None, "deleting"), ("status", None, "deleted"),
                      ("end", "delete", None)]


def test_running_releases_on_error(bank: Bank) -> None:
    checkpoint = _available(bank)
    with pytest.raises(RuntimeError), checkpoint.running("verify", "alice"):
        raise RuntimeError("verify failed")
    assert not checkpoint.busy
    checkpoint.acquire("restore", "bob")


def test_expired_lease_frees_the_checkpoint(bank: Bank) -> None:
    checkpoint = _available(bank)
    first = checkpoint.acquire("restore", "alice", ttl=0.2)
    other = Checkpoint(bank, checkpoint.id)
    with pytest.raises(CheckpointBusyError):  # judged before it expires, however late
        other.acquire("verify", "bob", now=first.expires_at - 0.1)
    wait_until(lambda: time.time() > first.expires_at, "the lease to expire")
    assert not other.busy
    lease = other.acquire("verify", "bob")
    # The first holder lost it: renewing says so, releasing changes nothing.
    with pytest.raises(BankError, match="expired"):
        checkpoint.renew(ttl=10)
    checkpoint.release()
    assert other.lease == lease


def test_renew(bank: Bank) -> None:
    checkpoint = _available(bank)
    # Renewed long before it expires, however busy the machine.
    lease = checkpoint.acquire("copy", "alice", ttl=60)
    renewed = checkpoint.renew(ttl=120)
    assert renewed.generation == lease.generation and renewed.expires_at > lease.expires_at
    # still held thanks to the renewal, judged after the first lease expired
    with pytest.raises(BankError, match="busy"):
        Checkpoint(bank, checkpoint.id).acquire("verify", "bob", now=lease.expires_at + 1)
    assert checkpoint.busy
    with pytest.raises(BankError, match="no lease to renew"):
        Checkpoint(bank, checkpoint.id).renew()


def test_lease_taken_over_cannot_be_renewed(bank: Bank) -> None:
    checkpoint = _available(bank)
    lease = checkpoint.acquire("copy", "alice", ttl=60)
    other = Checkpoint(bank, checkpoint.id)
    other.acquire("gc", "gc", now=time.time() + 120)  # judged after alice's expiry
    with pytest.raises(CheckpointBusyError, match="it was lost; now held by gc by gc"):
        checkpoint.renew(lease)


def test_gc_marks_dead_protect_as_error(bank: Bank) -> None:
    store = CheckpointStore(bank)
    dead = store.create(PLAN, NO_GRAPH, "fp", "crashed-host", lease_ttl=60)
    alive = store.create(PLAN, NO_GRAPH, "fp", "live-host", lease_ttl=60)
    finished = store.create(PLAN, NO_GRAPH, "fp", "done-host", lease_ttl=60)
    finished.transition("available")
    finished.release()
    alive.renew(ttl=3600)
    # Judged 10 minutes later: 'dead' never renewed.
    assert store.gc(now=time.time() + 600) == [dead.id]
    assert dead.reload().status == "error"
    assert "crashed-host expired" in (dead.record.status_reason or "")
    assert alive.reload().status == "protecting"
    assert finished.reload().status == "available"
    assert not dead.busy
    assert bank.list_objects(IN_PROGRESS) == [IN_PROGRESS + alive.id]
    assert store.gc(now=time.time() + 600) == []  # idempotent


def test_gc_delete_and_copies(bank: Bank) -> None:
    store = CheckpointStore(bank)
    dead = store.create(PLAN, NO_GRAPH, "fp", "crashed", lease_ttl=1)
    target = store.create(PLAN, NO_GRAPH, "fp", "copier", lease_ttl=1,
                          copied_from=CopiedFrom("memory://b", "x"))
    source = _available(bank)
    source.acquire("copy", "copier", ttl=1)
    source.transition("copying")
    later = time.time() + 60
    assert sorted(store.gc(now=later, delete=True)) == sorted([dead.id, target.id, source.id])
    with pytest.raises(CheckpointNotFoundError):
        store.get(dead.id)
    assert not bank.list_objects(dead.prefix)
    assert [c.id for c in store.list()] == [source.id]  # the copy target was removed too
    assert source.reload().status == "available"


def test_gc_cleans_up_a_create_that_died_before_its_record(bank: Bank) -> None:
    store = CheckpointStore(bank)
    checkpoint = store.create(PLAN, NO_GRAPH, "fp", "crashed", lease_ttl=1)
    bank.delete_object(checkpoint.prefix + "record")
    assert store.gc(now=time.time() + 60) == []
    assert bank.list_objects(IN_PROGRESS) == []


def test_one_winner_across_processes(local_bank: Bank) -> None:
    checkpoint = _available(local_bank)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=race_for_lease, args=(local_bank.url, checkpoint.id, start, out))
             for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue_get(out, procs) for _ in procs]
    for p in procs:
        p.join(waits.LIMIT)
    winners = [r for r in results if r[0] == "won"]
    assert len(winners) == 1, results
    assert all("is busy: verify by pid-" in r[1] for r in results if r[0] == "lost")
    assert checkpoint.lease is not None and checkpoint.lease.generation == winners[0][1]
