"""``key rotate``: a new master key, every object re-encrypted under it and
every chunk renamed; every checkpoint restores exactly and verifies after;
the old key -- a saved key file, a saved password entry -- opens nothing,
neither what was there nor what is written after; nothing else runs while
a rotation has the bank."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.bank.chunks.store import ChunkStore, owner_id
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects import keys
from protectflow.bank.objects._rotating import RotationMark, read_mark, write_mark
from protectflow.bank.rotation import rotate_key
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import BankError, BankLockedError, ProtectflowWarning
from tests.bank.rotation_helpers import (
    change_source,
    chunk_names,
    opens_anything,
    protect_twice,
    restores_exactly,
)

OWNER = "tester@here:1"


@pytest.fixture(autouse=True)
def _own_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


def master_of(key_file: str) -> bytes:
    return base64.b64decode(json.loads(Path(key_file).read_text())["master_key"])


def test_after_a_rotation_everything_restores_and_the_old_key_opens_nothing(
        tmp_path: Path) -> None:
    plan, held = protect_twice(tmp_path)
    bank = Bank(tmp_path / "bank")
    before = keys.show_fingerprint(bank)
    assert before.key_file is not None
    saved = tmp_path / "saved-old.key"
    shutil.copy(before.key_file, saved)
    old_master = master_of(str(saved))
    old_chunks = chunk_names(bank)
    assert len(old_chunks) > 20 and opens_anything(old_master, bank)

    result = rotate_key(bank, owner=OWNER)
    assert not result.resumed and result.problems == ()
    assert result.old_fingerprint == before.fingerprint != result.new_fingerprint
    assert result.chunks == len(old_chunks) and result.key_file == before.key_file
    after = Bank(bank.url)
    assert keys.show_fingerprint(after).fingerprint == result.new_fingerprint
    assert keys.show_fingerprint(after).bank_id == before.bank_id  # the same bank
    new_chunks = chunk_names(after)
    assert len(new_chunks) == len(old_chunks) and not new_chunks & old_chunks
    assert opens_anything(old_master, after) == []
    assert not any(p.name.endswith(".next.key") for p in Path(before.key_file).parent.iterdir())
    assert sorted(os.listdir(bank.url)) == ["checkpoints", "chunks", "config", "index",
                                            "plugins", "refs"]
    restores_exactly(bank.url, held, tmp_path / "restored")

    # the renamed chunks and manifests dedup as before: nothing changed, nothing new
    assert operations.protect(plan, executor="serial").ok
    assert chunk_names(Bank(bank.url)) == new_chunks
    # what is written after opens only with the new key
    change_source(tmp_path)
    third = operations.protect(plan, executor="serial")
    assert third.ok and chunk_names(Bank(bank.url)) > new_chunks
    assert opens_anything(old_master, Bank(bank.url)) == []

    # the saved old key file, put back, opens nothing: refused against the config
    Path(before.key_file).write_bytes(saved.read_bytes())
    keystore.forget_unlocked()
    with pytest.raises(BankLockedError, match="from before a `protectflow key rotate`"):
        Bank(bank.url).get_object(f"checkpoints/{third.checkpoint.id}/record")


def test_a_password_bank_rotates_to_a_new_password(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "old password")
    _, held = protect_twice(tmp_path)
    bank = Bank(tmp_path / "bank")
    (old_entry,) = keys.show_fingerprint(bank).passwords
    saved = Path(bank.url, "keys", old_entry).read_bytes()
    result = rotate_key(Bank(bank.url), owner=OWNER, new_password=lambda: "new password")
    assert result.removed_passwords == 1 and len(result.passwords) == 1
    assert result.passwords != (old_entry,) and result.key_file is None
    with pytest.raises(BankLockedError, match="wrong password"):
        Bank(bank.url).keyring  # noqa: B018 -- the old password opens nothing now
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "new password")
    restores_exactly(bank.url, held, tmp_path / "restored")
    # the old password with the saved old entry put back: it unwraps the old
    # key, which opens neither the config nor any object
    Path(bank.url, "keys", old_entry).write_bytes(saved)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "old password")
    keystore.forget_unlocked()
    with pytest.warns(ProtectflowWarning, match=f"keys/{old_entry} .* holds a key that does "
                                                "not open the bank"), \
            pytest.raises(BankLockedError, match="wrong password"):
        Bank(bank.url).keyring  # noqa: B018


def test_keep_password_and_a_bank_with_both_a_key_file_and_a_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, held = protect_twice(tmp_path)
    bank = Bank(tmp_path / "bank")
    keys.add_password(bank, "pw")  # both: the key file here, a password anywhere
    with pytest.raises(BankError, match="opened with its key file: there is no password"):
        rotate_key(Bank(bank.url), owner=OWNER, keep_password=True)
    with pytest.raises(BankError, match="give its password in \\$PROTECTFLOW_NEW_PASSWORD"):
        rotate_key(Bank(bank.url), owner=OWNER)
    assert read_mark(bank.backend, bank.url) is None  # refused before anything was written
    result = rotate_key(Bank(bank.url), owner=OWNER, new_password=lambda: "pw2")
    assert result.key_file is not None and len(result.passwords) == 1
    # either opens it: the new key file here, the new password elsewhere
    os.rename(result.key_file, tmp_path / "aside.key")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "pw2")
    restores_exactly(bank.url, held, tmp_path / "by-password")
    again = rotate_key(Bank(bank.url), owner=OWNER, keep_password=True)
    assert again.key_file is None and again.removed_passwords == 1
    restores_exactly(bank.url, held, tmp_path / "kept")


def test_a_memory_bank_rotates(tmp_path: Path) -> None:
    bank = Bank("memory://rotate-" + tmp_path.name)
    store = CheckpointStore(bank)
    cp = store.create(Plan("p", ()), ResourceGraph({}, {}), "f", "me")
    cp.get_resource_bank_section("t#r").update_object("manifest", {"chunks": []})
    cp.transition("available")
    cp.release()
    master = master_of(keys.show_fingerprint(bank).key_file or "")
    result = rotate_key(bank, owner=OWNER)
    assert result.problems == () and result.moved > 5
    assert opens_anything(master, Bank(bank.url)) == []
    assert CheckpointStore(Bank(bank.url)).get(cp.id).status == "available"


# -- nothing runs across a rotation ------------------------------------------------
def test_a_bank_mid_rotation_refuses_every_other_command(tmp_path: Path) -> None:
    _, held = protect_twice(tmp_path)
    bank = Bank(tmp_path / "bank")
    write_mark(bank.backend, RotationMark(OWNER, "2024-01-01T00:00:00Z", "x"))
    checkpoint_id = next(iter(held))
    for attempt in (lambda: Bank(bank.url).get_object("config"),
                    lambda: operations.restore(checkpoint_id, bank=bank.url, parameters={
                        "protectflow::fs::Directory": {"target": str(tmp_path / "r")}}),
                    lambda: keys.show_fingerprint(Bank(bank.url)),
                    lambda: keys.add_password(Bank(bank.url), "x")):
        keystore.forget_unlocked()
        with pytest.raises(BankLockedError, match=r"in the middle of a key rotation \(started at "
                                               rf"2024-01-01T00:00:00Z by {OWNER}\).*"
                                               "`protectflow key rotate --bank"):
            attempt()
    assert not (tmp_path / "r").exists()


def test_a_process_holding_the_old_key_takes_no_lease_mid_rotation(tmp_path: Path) -> None:
    _, held = protect_twice(tmp_path)
    bank = Bank(tmp_path / "bank")
    cached = CheckpointStore(bank).get(next(iter(held)))  # unlocked before the rotation
    before = bank.list_objects(cached.prefix + "lease/")
    write_mark(bank.backend, RotationMark(OWNER, "now", "x"))
    with pytest.raises(BankLockedError, match="in the middle of a key rotation"):
        cached.acquire("restore", "late@here:2")
    assert bank.list_objects(cached.prefix + "lease/") == before  # its generation taken back


def test_a_rotation_waits_for_no_busy_checkpoint(tmp_path: Path) -> None:
    _, held = protect_twice(tmp_path)
    bank = Bank(tmp_path / "bank")
    checkpoint = Checkpoint(bank, next(iter(held)))
    checkpoint.acquire("restore", "busy@elsewhere:7")
    with pytest.raises(BankError, match=f"checkpoint {checkpoint.id} is busy \\(restore by "
                                        "busy@elsewhere:7"):
        rotate_key(Bank(bank.url), owner=OWNER)
    assert read_mark(bank.backend, bank.url) is None  # taken back: the bank works on
    assert not Path(bank.url, "rotating", "state").exists()
    assert not any(p.name.endswith(".next.key") for p in (tmp_path / "config").rglob("*"))
    checkpoint.release()
    keystore.forget_unlocked()
    assert rotate_key(Bank(bank.url), owner=OWNER).problems == ()


def test_damage_from_before_is_named_and_left(tmp_path: Path) -> None:
    protect_twice(tmp_path)
    bank = Bank(tmp_path / "bank")
    victim = max(p for p in Path(bank.url, "chunks").rglob("*") if p.is_file())
    data = bytearray(victim.read_bytes())
    data[-5] ^= 1
    victim.write_bytes(bytes(data))
    result = rotate_key(Bank(bank.url), owner=OWNER)
    assert len(result.problems) == 1 and victim.name in result.problems[0]
    assert "opens under neither the old key nor the new one" in result.problems[0]
    assert victim.read_bytes() == bytes(data)  # left as it was
    assert result.chunks == len(chunk_names(Bank(bank.url))) - 1


def test_every_ref_follows_its_chunk_with_many_threads(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    owners = [owner_id("c" * 32, f"t#{i}") for i in range(3)]
    stores = [ChunkStore(bank, owner, durable=False) for owner in owners]
    for i in range(600):
        data = f"chunk {i}".encode()
        for store in stores:
            store.add(store.chunk_id(data), data)
    bank.sync()
    result = rotate_key(Bank(bank.url, fsync=False), owner=OWNER, workers=8)
    assert result.chunks == 600 and result.problems == ()
    after = Bank(bank.url)
    chunks = chunk_names(after)
    refs = after.list_objects("refs/")
    assert len(refs) == 1800
    for key in refs:
        assert key.split("/")[2] in chunks, key
        assert after.get_object(key) == b""  # a marker under the new key
    # no folder is left named after an old chunk name
    assert {p.name for p in Path(bank.url, "refs").glob("*/*")} == chunks
