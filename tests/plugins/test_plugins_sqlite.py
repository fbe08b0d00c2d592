"""The sqlite plugin: online snapshots, integrity-checked restores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.compiler import parse_plan
from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.executors import Event
from protectflow.plugins.builtin import sqlite as sq
from protectflow.plugins.builtin._chunkfiles import store_file
from protectflow.plugins.builtin._chunks import ChunkStore, owner_id
from tests import waits
from tests.plugins.plugin_helpers import new_checkpoint

WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad BLOB)")
print("ready", flush=True)
i = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    i += 1
    with db:
        db.execute("INSERT INTO t (id, pad) VALUES (?, randomblob(300))", (i,))
print(i, flush=True)
"""


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


def database(path: Path, rid: str = "db") -> Resource:
    return Resource(sq.DATABASE, rid, extra_info={"path": str(path)})


def make_db(path: Path, rows: int = 500) -> Path:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB)")
    with db:
        db.executemany("INSERT INTO t VALUES (?, randomblob(500))", [(i,) for i in range(rows)])
    db.close()
    return path


def protect(checkpoint: object, resource: Resource, params: dict[str, object]) -> None:
    sq.take_snapshot(checkpoint, resource, params)
    sq.store_snapshot(checkpoint, resource, params)


def rows(path: str | Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT id FROM t ORDER BY id")]
    finally:
        db.close()


def test_round_trip(bank: Bank, tmp_path: Path) -> None:
    src = make_db(tmp_path / "app.db")
    cp = new_checkpoint(bank)
    params = {"snapshot_dir": str(tmp_path / "snaps")}
    os.mkdir(tmp_path / "snaps")
    protect(cp, database(src), params)
    assert os.listdir(tmp_path / "snaps") == []  # the snapshot went into the bank
    db = sqlite3.connect(src)
    with db:
        db.execute("DELETE FROM t")
    db.close()
    dest = sq.restore_database(cp, database(src), {"target": str(tmp_path / "out")})
    assert dest == str(tmp_path / "out" / "db")
    assert rows(dest) == list(range(500)) and sq.integrity_check(dest) == "ok"
    assert sq.verify_database(cp, database(src))["integrity"] == "ok"
    # a rerun finds it restored; a changed file is refused unless forced
    sq.restore_database(cp, database(src), {"target": str(tmp_path / "out")})
    Path(dest + "-wal").write_bytes(b"stale wal of the replaced database")
    db = sqlite3.connect(dest)
    db.execute("DELETE FROM t WHERE id < 10")
    db.commit()
    db.close()
    with pytest.raises(LocalPluginError, match="not empty"):
        sq.restore_database(cp, database(src), {"target": str(tmp_path / "out")})
    sq.restore_database(cp, database(src), {"target": str(tmp_path / "out"), "force": True})
    assert rows(dest) == list(range(500)) and not os.path.exists(dest + "-wal")


@pytest.mark.slow  # a writer that writes for three seconds
def test_snapshot_while_a_writer_keeps_writing(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "busy.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), "3"],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    cp = new_checkpoint(bank)
    protect(cp, database(src), {})
    total = int(writer.stdout.readline())
    assert writer.wait(waits.LIMIT) == 0
    dest = sq.restore_database(cp, database(src), {"target": str(tmp_path / "out")})
    assert sq.integrity_check(dest) == "ok"
    got = rows(dest)
    assert got and got == list(range(1, len(got) + 1))  # a prefix of the writes
    assert len(got) < total  # the writer went on after the snapshot


def test_corrupt_copy_fails_restore_and_verify_clearly(bank: Bank, tmp_path: Path) -> None:
    src = make_db(tmp_path / "app.db", rows=2000)
    db = sqlite3.connect(src)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    broken = tmp_path / "broken.db"
    data = bytearray(src.read_bytes())
    page = 4096
    data[5 * page + 100: 5 * page + 900] = os.urandom(800)  # a page of the table
    broken.write_bytes(bytes(data))
    cp = new_checkpoint(bank)
    resource = database(src)
    digests, _, _, size = store_file(ChunkStore(bank, owner_id(cp.id, resource.key)),
                                     str(broken), 65536)
    cp.get_resource_bank_section(resource).update_object(sq.MANIFEST, {
        "version": 1, "source": str(src), "size": size, "chunk_size": 65536,
        "chunks": digests, "taken_at": 0})
    with pytest.raises(LocalPluginError, match="integrity_check did not return ok"):
        sq.restore_database(cp, resource, {"target": str(tmp_path / "out")})
    assert not os.listdir(tmp_path / "out")  # nothing half-restored left behind
    with pytest.raises(LocalPluginError, match="integrity_check"):
        sq.verify_database(cp, resource)


def test_missing_database_is_not_created(bank: Bank, tmp_path: Path) -> None:
    with pytest.raises(LocalPluginError, match="no database file"):
        sq.take_snapshot(new_checkpoint(bank), database(tmp_path / "nope.db"), {})
    assert not (tmp_path / "nope.db").exists()


def test_on_failure_discards_the_snapshot_and_delete_cleans_up(
        bank: Bank, tmp_path: Path) -> None:
    src = make_db(tmp_path / "app.db")
    cp = new_checkpoint(bank)
    snap = sq.take_snapshot(cp, database(src), {})["snapshot"]
    assert os.path.exists(snap)
    plugin = sq.SqliteProtectionPlugin()
    assert plugin.on_failure(cp, database(src), None, {}) == {"discarded": True}
    assert not os.path.exists(snap)
    with pytest.raises(LocalPluginError, match="is gone"):
        sq.store_snapshot(cp, database(src), {})
    protect(cp, database(src), {})
    sq.store_snapshot(cp, database(src), {})  # a rerun of main after it finished
    assert sq.delete_database(cp, database(src))["deleted_chunks"] > 0
    assert bank.list_objects("chunks/") == [] and bank.list_objects("refs/") == []


def test_a_protect_refuses_to_store_a_snapshot_that_fails_its_integrity_check(
        tmp_path: Path) -> None:
    src = make_db(tmp_path / "app.db", rows=2000)
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    plan = parse_plan(json.dumps({
        "name": "db", "resources": [{"type": sq.DATABASE, "id": "db",
                                     "extra_info": {"path": str(src)}}],
        "parameters": {sq.DATABASE: {"snapshot_dir": str(snapshots)}}}), source="plan.json")

    def damage_the_snapshot(event: Event) -> None:
        # Between the hook that takes the snapshot and the one that stores it.
        if event.kind == "succeeded" and event.node == f"{sq.DATABASE}#db/prepare_finish":
            [snapshot] = snapshots.iterdir()
            with open(snapshot, "r+b") as f:
                f.seek(5 * 4096 + 100)
                f.write(b"\xff" * 800)  # inside a page of the table

    result = operations.protect(plan, bank=tmp_path / "bank", executor="serial",
                                listeners=[damage_the_snapshot])
    assert not result.ok
    entry = result.checkpoint.reload().resources[f"{sq.DATABASE}#db"]
    assert entry.status == "error" and "integrity_check" in (entry.reason or ""), entry
    assert rows(src) == list(range(2000))  # the database itself is untouched
