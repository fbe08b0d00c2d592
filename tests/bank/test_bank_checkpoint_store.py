"""The checkpoint catalog: listing order and paging, processes, runs, sections."""

from __future__ import annotations

import multiprocessing
import pickle
import time
from typing import Any

import pytest

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.dag import Plan, ResourceGraph, ResourceStatus, StatusUpdate
from protectflow.dag.model import Resource
from protectflow.errors import BankError, CheckpointNotFoundError
from tests import waits
from tests.bank.bank_helpers import create_many, use_checkpoint
from tests.waits import queue_get

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})

DAY = 86_400.0
T0 = 1_700_000_000.0  # 2023-11-14


def _populate(store: CheckpointStore) -> list[tuple[str, str]]:
    """Checkpoints of plans a/b over five days, several per day; (plan, id) oldest first."""
    made = []
    for i in range(30):
        plan = "a" if i % 3 else "b/with slash"
        # A few per day, some in the same second, spanning day boundaries.
        checkpoint = store.create(Plan(plan, ()), NO_GRAPH, "fp", "me",
                                  now=T0 + i * DAY / 6 + i % 2)
        made.append((plan, checkpoint.id))
    return made


def _page_through(store: CheckpointStore, plan: str | None, limit: int) -> list[str]:
    out: list[str] = []
    marker = None
    while page := store.list(plan=plan, limit=limit, marker=marker):
        assert len(page) <= limit
        out += [c.id for c in page]
        marker = page[-1].id
    return out


def test_newest_first_by_date_and_by_plan(bank: Bank) -> None:
    store = CheckpointStore(bank)
    made = _populate(store)
    newest_first = [cid for _, cid in reversed(made)]
    assert [c.id for c in store.list(limit=None)] == newest_first
    assert [c.id for c in store.list(limit=4)] == newest_first[:4]
    for plan in ("a", "b/with slash"):
        assert [c.id for c in store.list(plan=plan, limit=None)] == [
            cid for p, cid in reversed(made) if p == plan]
    assert store.list(plan="unknown") == []
    for limit in (1, 4, 7, 50):
        assert _page_through(store, None, limit) == newest_first
        assert _page_through(store, "a", limit) == [cid for p, cid in reversed(made) if p == "a"]
    created = [c.created_at for c in store.list(limit=None)]
    assert created == sorted(created, reverse=True)


def test_listing_reads_no_record(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(bank)
    _populate(store)
    reads: list[str] = []
    real = Bank.get_object

    def counting(self: Bank, key: str) -> Any:
        reads.append(key)
        return real(self, key)

    monkeypatch.setattr(Bank, "get_object", counting)
    page = store.list(limit=10)
    assert len(page) == 10 and reads == []
    store.list(plan="a", limit=10, marker=page[-1].id)
    assert reads == [page[-1].prefix + "record"]  # the marker's record, only


def test_bad_marker(bank: Bank) -> None:
    with pytest.raises(CheckpointNotFoundError, match="'gone'"):
        CheckpointStore(bank).list(marker="gone")


def test_concurrent_creation_from_processes(local_bank: Bank) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=create_many, args=(local_bank.url, f"plan{i % 2}", 15, out))
             for i in range(4)]
    for p in procs:
        p.start()
    ids = [cid for _ in procs for cid in queue_get(out, procs)]
    for p in procs:
        p.join(waits.LIMIT)
        assert p.exitcode == 0
    assert len(ids) == len(set(ids)) == 60
    store = CheckpointStore(local_bank)
    listed = store.list(limit=None)
    assert sorted(c.id for c in listed) == sorted(ids)
    assert all(c.status == "available" and not c.busy for c in listed)
    keys = [(c.created_at, c.id) for c in listed]
    assert keys == sorted(keys, reverse=True)
    assert len(store.list(plan="plan0", limit=None)) == 30
    assert local_bank.list_objects("index/in-progress/") == []


def test_pickled_checkpoint_used_in_another_process(local_bank: Bank) -> None:
    checkpoint = CheckpointStore(local_bank).create(Plan("p", ()), NO_GRAPH, "fp", "me")
    assert checkpoint.status == "protecting"  # record loaded here...
    clone = pickle.loads(pickle.dumps(checkpoint))
    assert clone == checkpoint and clone._record is None  # ...but not shipped
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=use_checkpoint, args=(checkpoint, out))
    proc.start()
    lazily, status, pid = queue_get(out, [proc])
    proc.join(waits.LIMIT)
    assert lazily and status == "protecting" and pid == proc.pid
    section = checkpoint.get_resource_bank_section(Resource("sim.volume", "vol/1"))
    assert section.get_object("meta") == {"size": 10}
    assert len(section.get_object("data")) == 100_000
    assert checkpoint.resources == {"sim.volume#vol/1": ResourceStatus("available", None)}


def test_resource_sections_are_separate(bank: Bank) -> None:
    checkpoint = CheckpointStore(bank).create(Plan("p", ()), NO_GRAPH, "fp", "me")
    server = checkpoint.get_resource_bank_section(Resource("sim.server", "1"))
    volume = checkpoint.get_resource_bank_section(Resource("sim.volume", "1"))
    by_id = checkpoint.get_resource_bank_section("1")
    dotted = checkpoint.get_resource_bank_section("..")
    for i, section in enumerate((server, volume, by_id, dotted)):
        section.update_object("k", i)
    assert [s.get_object("k") for s in (server, volume, by_id, dotted)] == [0, 1, 2, 3]
    assert all(k.startswith(checkpoint.prefix + "data/resources/")
               for k in bank.list_objects(checkpoint.prefix + "data/"))
    checkpoint.bank_section.update_object("summary", "ok")
    assert checkpoint.bank_section.list_objects("summary") == ["summary"]
    read_only = checkpoint.get_resource_bank_section(Resource("sim.server", "1"), read_only=True)
    assert read_only.get_object("k") == 0
    with pytest.raises(BankError, match="read-only"):
        read_only.delete_object("k")


def test_run_records(bank: Bank) -> None:
    checkpoint = CheckpointStore(bank).create(Plan("p", ()), NO_GRAPH, "fp", "me")
    first = checkpoint.start_run("restore", "alice")
    time.sleep(0.002)
    second = checkpoint.start_run("verify", "bob")
    update = StatusUpdate("sim.server", "1", "restored", "by a", 1.5)
    first = first.finished("success", resources={"sim.server#1": ResourceStatus("success")},
                           new_resources={"sim.server#1": "new-1"},
                           status_updates={update.key: update})
    checkpoint.save_run(first)
    got = Checkpoint(bank, checkpoint.id).get_run(first.id)
    assert got == first and got.finished_at is not None
    assert got.resources == {"sim.server#1": ResourceStatus("success", None)}
    assert got.status_updates == {"sim.server#1": update}
    assert [r.id for r in checkpoint.list_runs()] == [second.id, first.id]
    assert checkpoint.list_runs(limit=1)[0].status == "running"
    with pytest.raises(BankError, match="no bank object"):
        checkpoint.get_run("nope")


def test_remove(bank: Bank) -> None:
    store = CheckpointStore(bank)
    keep = store.create(Plan("p", ()), NO_GRAPH, "fp", "me")
    gone = store.create(Plan("p", ()), NO_GRAPH, "fp", "me")
    gone.get_resource_bank_section("x").update_object("k", b"1")
    gone.start_run("verify", "me")
    store.remove(gone.id)
    assert [c.id for c in store.list()] == [keep.id]
    assert [c.id for c in store.list(plan="p")] == [keep.id]
    assert bank.list_objects(gone.prefix) == []
    assert not any(gone.id in k for k in bank.list_objects())


def test_first_page_opens_only_the_newest_shards(bank: Bank,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(bank)
    made = _populate(store)  # five days of history, a shard per day
    opened: list[str] = []
    backend = bank.backend
    real = backend.listdir

    def spying(rel: str) -> list[tuple[str, bool]]:
        opened.append(rel)
        return real(rel)

    monkeypatch.setattr(backend, "listdir", spying)
    assert [c.id for c in store.list(limit=3)] == [cid for _, cid in reversed(made)][:3]
    day_shards = [d for d in opened if d.count("/") == 4]  # index/by-date/YYYY/MM/DD
    assert len(day_shards) == 1, opened


def _made(store: CheckpointStore, n: int) -> list[str]:
    return [store.create(Plan("p", ()), NO_GRAPH, "fp", "me").id for _ in range(n)]


def test_resolve_takes_a_whole_id_and_any_unique_prefix(bank: Bank) -> None:
    store = CheckpointStore(bank)
    ids = _made(store, 5)
    for checkpoint_id in ids:
        assert store.resolve(checkpoint_id) == checkpoint_id
        # The shortest prefix no other id shares resolves, and so does every longer one.
        n = next(k for k in range(1, 33)
                 if sum(i.startswith(checkpoint_id[:k]) for i in ids) == 1)
        for k in range(n, 33):
            assert store.resolve(checkpoint_id[:k]) == checkpoint_id


def test_resolve_lists_every_candidate_of_an_ambiguous_prefix(bank: Bank) -> None:
    store = CheckpointStore(bank)
    ids = _made(store, 17)  # 16 hex digits: two ids share a first character
    first = next(c for c in "0123456789abcdef" if sum(i[0] == c for i in ids) >= 2)
    with pytest.raises(BankError, match="ambiguous") as info:
        store.resolve(first)
    listed = {line.strip() for line in str(info.value).splitlines()[1:]}
    assert listed == {i for i in ids if i.startswith(first)}


def test_resolve_suggests_close_ids_when_none_matches(bank: Bank) -> None:
    store = CheckpointStore(bank)
    ids = _made(store, 3)
    target = ids[0]
    typo = next(target[:7] + c for c in "0123456789abcdef"
                if not any(i.startswith(target[:7] + c) for i in ids))
    with pytest.raises(CheckpointNotFoundError, match=f"no checkpoint '{typo}'") as info:
        store.resolve(typo)
    assert f"did you mean {target}" in str(info.value)


def test_resolve_ignores_removed_checkpoints_and_unrelated_prefixes(bank: Bank) -> None:
    store = CheckpointStore(bank)
    kept, removed = _made(store, 2)
    store.remove(removed)
    with pytest.raises(CheckpointNotFoundError):
        store.resolve(removed)
    assert store.resolve(kept[:12]) == kept
    with pytest.raises(CheckpointNotFoundError, match="checkpoints list"):
        store.resolve("zzzz")


def test_resolve_refuses_an_id_with_a_slash(bank: Bank) -> None:
    with pytest.raises(BankError, match="may not contain '/'"):
        CheckpointStore(bank).resolve("ab/cd")
