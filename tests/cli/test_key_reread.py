"""What a key holder can still do, and ``protect --reread``, the defence: with
the bank's key, someone re-points an unchanged file's entry in the last
manifest at data they planted; the next protect trusts the file's size and
times and carries the planted data forward (as restic's and borg's parent
snapshots would). ``--reread`` reads every file again: the planted data is
not carried forward."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.chunks.store import ChunkStore, owner_id
from protectflow.bank.objects import _keystore as keystore

FS = "protectflow::fs::Directory"
GENUINE = b"the genuine bytes of the file\n" * 400
PLANTED = b"PLANTED BY WHOEVER HOLDS THE KEY" * 375


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


def protect(plan: Path, bank: Path, *argv: str) -> str:
    assert cli.main(["protect", str(plan), "--bank", str(bank), "-q", *argv]) == 0
    keystore.forget_unlocked()
    return CheckpointStore(Bank(bank)).list()[0].id


def restored(checkpoint_id: str, bank: Path, target: Path) -> bytes:
    assert cli.main(["restore", checkpoint_id, "--bank", str(bank), "--target", str(target),
                     "-q"]) == 0
    return (target / "data" / "file.bin").read_bytes()


def plant(bank: Path, checkpoint_id: str) -> None:
    """As a holder of the key: point file.bin's entry in the checkpoint's
    manifest at chunks of other bytes of the same size."""
    b = Bank(bank)
    section = CheckpointStore(b).get(checkpoint_id).get_resource_bank_section(f"{FS}#data")
    manifest = section.get_object("manifest")
    (entry,) = [e for e in manifest["entries"] if e["path"] == "file.bin"]
    store = ChunkStore(b, owner_id(checkpoint_id, f"{FS}#data"))
    size = manifest["chunk_size"]
    pieces = [PLANTED[i:i + size] for i in range(0, len(PLANTED), size)]
    entry["chunks"] = [store.chunk_id(p) for p in pieces]
    for digest, piece in zip(entry["chunks"], pieces, strict=True):
        store.add(digest, piece)
    section.update_object("manifest", manifest)


def test_reread_does_not_carry_planted_data_forward(tmp_path: Path) -> None:
    assert len(PLANTED) == len(GENUINE)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file.bin").write_bytes(GENUINE)
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({"name": "p", "resources": [
        {"type": FS, "id": "data", "extra_info": {"path": str(tmp_path / "data")}}],
        "parameters": {FS: {"chunk_size": 4096, "pack_size": 0}}}))
    bank = tmp_path / "bank"
    first = protect(plan, bank)
    plant(bank, first)
    stat_before = os.stat(tmp_path / "data" / "file.bin")

    trusting = protect(plan, bank)  # the file did not change: its entry is reused
    assert restored(trusting, bank, tmp_path / "r1") == PLANTED  # the threat is real

    rereading = protect(plan, bank, "--reread")
    assert restored(rereading, bank, tmp_path / "r2") == GENUINE
    after = os.stat(tmp_path / "data" / "file.bin")
    assert (after.st_mtime_ns, after.st_size) == (stat_before.st_mtime_ns, stat_before.st_size)
    saved = CheckpointStore(Bank(bank)).get(rereading).plan.parameters
    assert saved[FS]["reread"] is True  # a resume of it rereads too
