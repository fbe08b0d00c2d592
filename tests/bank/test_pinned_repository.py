"""What the repository promises, pinned through the operations and the
command: a full verify re-hashes every chunk against its name; deletes free
a shared chunk once, only when no live checkpoint needs it, and keep it for
a sharing checkpoint whose record is damaged; ``gc --delete`` finishes a
dead delete; a lost ``index/`` hides no in-progress checkpoint from gc.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.compiler import Plan, ResourceGraph, parse_plan
from protectflow.operations import OperationResult

FS = "protectflow::fs::Directory"
KEY = f"{FS}#src"


def tree(tmp_path: Path) -> Plan:
    """A folder of one chunked file and two packed ones, and its plan."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "big.bin").write_bytes(os.urandom(150_000))
    (src / "small.txt").write_text("small file\n")
    (src / "other.txt").write_text("another small file\n")
    return parse_plan(json.dumps({"name": "tree", "resources": [
        {"type": FS, "id": "src", "extra_info": {"path": str(src)}}]}),
        source=str(tmp_path / "plan.json"))


def protect(bank: Bank, plan: Plan) -> str:
    result = operations.protect(plan, bank=bank, executor="serial",
                                parameters={FS: {"chunk_size": 65536}})
    assert result.ok, result.report
    return result.checkpoint.id


def chunks(bank: Bank) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in bank.list_objects("chunks/")}


def refs_of(bank: Bank, checkpoint_id: str) -> list[str]:
    return [key for key in bank.list_objects("refs/") if f"/{checkpoint_id}@" in key]


def deleted_chunks(result: OperationResult) -> int:
    """How many chunks the delete's hooks say they deleted."""
    return sum(hook.output["deleted_chunks"] for hook in result.report.hooks.values()
               if isinstance(hook.output, dict) and "deleted_chunks" in hook.output)


def restored(bank: Bank, checkpoint_id: str, target: Path) -> dict[str, bytes]:
    result = operations.restore(checkpoint_id, bank=bank, executor="serial",
                                parameters={FS: {"target": str(target)}})
    assert result.ok, result.report
    return {p.name: p.read_bytes() for p in (target / "src").iterdir()}


def start_deleting(bank: Bank, checkpoint_id: str, *, refs_dropped: bool,
                   lease_expired: bool) -> None:
    """Leave the checkpoint as a delete that died leaves it: ``deleting``, its
    lease taken by a process elsewhere (already expired, or expiring in a
    minute), and, once the delete had begun releasing, its refs dropped while
    its manifest stays."""
    checkpoint = operations.open_store(bank).get(checkpoint_id)
    lease = checkpoint.acquire("delete", "someone@elsewhere:1", ttl=60)
    checkpoint.transition("deleting")
    if lease_expired:
        checkpoint.release(lease)
    if refs_dropped:
        for key in refs_of(bank, checkpoint_id):
            bank.delete_object(key)


# -- verify re-hashes -----------------------------------------------------------------
def test_a_full_verify_finds_wrong_bytes_sealed_under_a_chunks_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bytes authenticate (sealed under the chunk's key by a holder of the
    key, or a bug) and are as long as the right ones: only hashing them again
    tells them from the chunk's."""
    bank = Bank(tmp_path / "bank", fsync=False)
    cid = protect(bank, tree(tmp_path))
    manifest = operations.open_store(bank).get(cid).get_resource_bank_section(KEY) \
        .get_object("manifest")
    digest = next(e for e in manifest["entries"] if e["path"] == "big.bin")["chunks"][0]
    key = f"chunks/{digest[:2]}/{digest}"
    wrong = bytearray(bank.get_object(key))
    wrong[100] ^= 0x01
    bank.update_object(key, bytes(wrong))
    assert cli.main(["verify", cid, "--bank", bank.url, "--metadata-only"]) == 0
    capsys.readouterr()
    assert cli.main(["verify", cid, "--bank", bank.url, "--read-data",
                     "--executor", "serial"]) == 1
    assert digest in capsys.readouterr().out
    found = operations.check(cid, bank=bank, read_data=True)
    assert found.problems == (f"chunk {digest} in bank {bank.url}: its bytes do not match "
                              "its name",)
    # marked, so that the next protect of the data stores the chunk again
    assert bank.list_objects("bad/chunks/") == [f"bad/chunks/{digest[:2]}/{digest}"]


# -- deletes of checkpoints sharing chunks ----------------------------------------------
def test_a_delete_keeps_the_chunks_of_a_sharing_checkpoint_whose_record_is_damaged(
        tmp_path: Path) -> None:
    """The sharing checkpoint lost its refs and its record does not
    authenticate: its manifests still name the chunks, so they stay."""
    bank = Bank(tmp_path / "bank", fsync=False)
    plan = tree(tmp_path)
    doomed, sharing = protect(bank, plan), protect(bank, plan)
    before = chunks(bank)
    lost = refs_of(bank, sharing)
    for key in lost:
        bank.delete_object(key)
    record = Path(bank.url) / "checkpoints" / sharing / "record"
    good = record.read_bytes()
    record.write_bytes(good[:-1] + bytes([good[-1] ^ 0x01]))
    result = operations.delete(doomed, bank=bank, executor="serial")
    assert result.ok and deleted_chunks(result) == 0
    assert chunks(bank) == before
    assert sorted(refs_of(bank, sharing)) == sorted(lost)  # given back
    record.write_bytes(good)  # the record restored from a copy: all is there
    expected = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    assert restored(bank, sharing, tmp_path / "out") == expected


def test_two_deletes_of_checkpoints_sharing_chunks_free_them_once(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    plan = tree(tmp_path)
    first, second, third = protect(bank, plan), protect(bank, plan), protect(bank, plan)
    shared = chunks(bank)
    # while another checkpoint needs them, a delete frees nothing
    result = operations.delete(first, bank=bank, executor="serial")
    assert result.ok and deleted_chunks(result) == 0 and chunks(bank) == shared
    # two deletes that died after dropping their refs: neither needs the
    # chunks any more, so the first to finish frees them -- neither keeps
    # them for the other -- and the second finds nothing left to free
    for doomed in (second, third):
        start_deleting(bank, doomed, refs_dropped=True, lease_expired=True)
    result = operations.delete(second, bank=bank, executor="serial")
    assert result.ok and deleted_chunks(result) == len(shared)
    assert chunks(bank) == set()
    result = operations.delete(third, bank=bank, executor="serial")
    assert result.ok and deleted_chunks(result) == 0
    assert bank.list_objects("refs/") == [] and bank.list_objects("locks/") == []


# -- gc ---------------------------------------------------------------------------------
@pytest.mark.parametrize("refs_dropped", [False, True], ids=["before-release", "mid-release"])
def test_gc_delete_finishes_a_dead_delete(tmp_path: Path, refs_dropped: bool) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    doomed = protect(bank, tree(tmp_path))
    held = chunks(bank)
    start_deleting(bank, doomed, refs_dropped=refs_dropped, lease_expired=False)
    store = operations.open_store(bank)
    now = time.time()
    assert operations.gc(store, delete=True, now=now).changed == ()  # its lease holds
    report = operations.gc(store, delete=True, now=now + 120)
    assert report.changed == (doomed,) and report.freed_chunks == len(held)
    assert chunks(bank) == set() and bank.list_objects("refs/") == []
    assert bank.list_objects(f"checkpoints/{doomed}/") == []


def test_gc_after_index_is_lost_during_a_protect_finds_the_protect(tmp_path: Path) -> None:
    """A protect under way when ``index/`` is lost, then gone (its process
    died): gc, run while it still held its lease and after, resolves it, and
    the rebuilt index lists it."""
    bank = Bank(tmp_path / "bank", fsync=False)
    plan = tree(tmp_path)
    done = protect(bank, plan)
    store = CheckpointStore(bank)
    running = store.create(plan, ResourceGraph({}, {}), "fingerprint", "someone@elsewhere:1",
                           lease_ttl=60)  # a protect of another process, under way
    shutil.rmtree(Path(bank.url) / "index")
    now = time.time()
    assert operations.gc(store, now=now).changed == ()  # it still runs
    report = operations.gc(store, now=now + 120)  # it died: its lease expired
    assert report.changed == (running.id,)
    assert store.get(running.id).status == "error"
    assert {c.id for c in store.list(limit=None)} == {done, running.id}
    assert bank.list_objects("index/in-progress/") == []
