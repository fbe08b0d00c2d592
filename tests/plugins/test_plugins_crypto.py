"""An encrypted bank end to end: tampering refused, bit flips harmless or
detected, the whole cycle on every executor with worker processes."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects import keys
from protectflow.errors import ProtectflowError
from tests.plugins.plugin_helpers import make_shop, snapshot_tree

SECRET = "card 4111-1111-1111-1111"
PASSWORD = "a long and secret password"


def _shop(tmp_path: Path) -> tuple[str, Path]:
    shop = tmp_path / "shop"
    plan = make_shop.make_shop(str(shop))
    (shop / "uploads" / "private.txt").write_text(f"customer {SECRET}\n" * 50)
    return plan, shop


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _restore(bank: Bank, cid: str, target: Path) -> Any:
    params = {"protectflow::fs::Directory": {"target": str(target)},
              "protectflow::sqlite::Database": {"target": str(target)}}
    return operations.restore(cid, bank=bank, executor="serial", parameters=params)


@pytest.mark.parametrize("executor", ["serial", "threads", "dask-procs"])
def test_encrypted_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         executor: str, request: pytest.FixtureRequest) -> None:
    runner: Any = executor
    if executor == "dask-procs":
        from protectflow.executors import get_executor

        # The session's worker processes, started with no PROTECTFLOW_*
        # variable (tests/conftest.py): whatever they read and write, they
        # do with the keys sent to them.
        runner = get_executor("dask", client=request.getfixturevalue("dask_procs"))
    plan, shop = _shop(tmp_path)
    before = snapshot_tree(shop / "uploads")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
    monkeypatch.setenv("PROTECTFLOW_SECRET_TOKEN", "from-the-environment-42")
    keystore.forget_unlocked()
    bank = Bank(tmp_path / "bank", fsync=False)
    result = operations.protect(plan, bank=bank, executor=runner)
    assert result.ok, result.report
    assert keys.show_fingerprint(bank).key_file is None  # wrapped by the password only
    cid = result.checkpoint.id
    restored = _restore(bank, cid, tmp_path / "restored")
    assert restored.ok, restored.report
    assert snapshot_tree(tmp_path / "restored" / "uploads") == before
    assert operations.verify(cid, bank=bank, executor=runner).ok
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")  # the target gets a key file instead
    other = Bank(tmp_path / "bank2", fsync=False)
    copied = operations.copy(cid, to=other, bank=bank, executor=runner)
    assert copied.ok, copied.report
    assert copied.target is not None
    assert other.keyring.fingerprint != bank.keyring.fingerprint
    # re-encrypted and renamed under the target's key: no chunk name in common
    assert not set(bank.list_objects("chunks/")) & set(other.list_objects("chunks/"))
    assert operations.verify(copied.target.id, bank=other, executor=runner).ok
    for root in (tmp_path / "bank", tmp_path / "bank2"):
        stored = b"".join(_files(root).values())
        for secret in (SECRET, PASSWORD, "from-the-environment-42", "alice"):
            assert secret.encode() not in stored, (root, secret)
    for key in bank.list_objects("checkpoints/"):  # nothing from the environment, decrypted
        assert PASSWORD not in repr(bank.get_object(key))
        assert "from-the-environment-42" not in repr(bank.get_object(key))
    assert operations.delete(cid, bank=bank, executor=runner).ok
    assert bank.list_objects("chunks/") == []
    again = _restore(other, copied.target.id, tmp_path / "again")
    assert again.ok and snapshot_tree(tmp_path / "again" / "uploads") == before


@pytest.fixture(scope="module")
def protected_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A bank holding two checkpoints of the shop, made once for the module."""
    folder = tmp_path_factory.mktemp("protected")
    plan, shop = _shop(folder)
    bank = Bank(folder / "bank", fsync=False)
    first = operations.protect(plan, bank=bank, executor="serial")
    (shop / "uploads" / "new.txt").write_text("second")
    second = operations.protect(plan, bank=bank, executor="serial")
    assert first.ok and second.ok
    return folder / "bank", first.checkpoint.id, second.checkpoint.id


@pytest.fixture
def protected(protected_once: tuple[Path, str, str], tmp_path: Path) -> tuple[Bank, str, str]:
    """A copy of that bank for each test to tamper with (its key file is
    named after the bank's id, which the copy keeps)."""
    made, first, second = protected_once
    shutil.copytree(made, tmp_path / "bank")
    return Bank(tmp_path / "bank", fsync=False), first, second


def _fs_manifest(bank: Bank, cid: str) -> str:
    return next(k for k in bank.list_objects(f"checkpoints/{cid}/data/")
                if k.endswith("/manifest") and "fs" in k)


def _refused(bank: Bank, cid: str, target: Path) -> None:
    data_before = {k: bank.backend.read(k) for k in bank.list_objects("chunks/")}
    try:
        result = _restore(bank, cid, target)
        ok = result.ok
    except ProtectflowError:
        ok = False
    assert not ok
    assert not target.exists() or _files(target) == {}
    assert {k: bank.backend.read(k) for k in bank.list_objects("chunks/")} == data_before


def test_an_edited_manifest_is_refused(protected: tuple[Bank, str, str], tmp_path: Path) -> None:
    bank, cid, _ = protected
    key = _fs_manifest(bank, cid)
    data = bytearray(bank.backend.read(key))
    data[len(data) // 2] ^= 0x20
    bank.backend.write(key, (bytes(data),))
    _refused(bank, cid, tmp_path / "target")
    assert not operations.verify(cid, bank=bank, executor="serial").ok


def test_a_manifest_swapped_between_checkpoints_is_refused(
        protected: tuple[Bank, str, str], tmp_path: Path) -> None:
    bank, first, second = protected
    older = bank.backend.read(_fs_manifest(bank, first))
    bank.backend.write(_fs_manifest(bank, second), (older,))
    _refused(bank, second, tmp_path / "target")


def test_an_edited_record_or_journal_is_refused(protected: tuple[Bank, str, str],
                                                tmp_path: Path) -> None:
    bank, cid, _ = protected
    journal = bank.list_objects(f"checkpoints/{cid}/journal/")[0]
    for key in (journal, f"checkpoints/{cid}/record"):
        data = bytearray(bank.backend.read(key))
        data[-1] ^= 0x01
        bank.backend.write(key, (bytes(data),))
        with pytest.raises(ProtectflowError, match="failed authentication"):
            bank.get_object(key)
    _refused(bank, cid, tmp_path / "target")
    with pytest.raises(ProtectflowError, match="failed authentication"):
        operations.resume(cid, bank=bank, executor="serial")


def test_an_edited_or_planted_chunk_is_refused(protected: tuple[Bank, str, str],
                                               tmp_path: Path) -> None:
    bank, first, second = protected
    chunks = bank.list_objects("chunks/")
    planted = bank.backend.read(chunks[1])  # a real chunk, under another chunk's name
    bank.backend.write(chunks[0], (planted,))
    with pytest.raises(ProtectflowError, match="failed authentication"):
        bank.get_object(chunks[0])
    # every chunk belongs to one checkpoint or both: its verify fails
    verified = [operations.verify(c, bank=bank, executor="serial").ok for c in (first, second)]
    assert not all(verified)


@pytest.mark.slow  # sixty restores
def test_random_bit_flips_are_harmless_or_detected(protected: tuple[Bank, str, str],
                                                  tmp_path: Path) -> None:
    """A seeded survey: a flip in every kind of object, never wrong data."""
    bank, _, cid = protected
    good = tmp_path / "good"
    assert _restore(bank, cid, good).ok
    expected = _files(good)
    root = Path(bank.url)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    kinds: dict[str, list[Path]] = {}
    for p in files:
        rel = p.relative_to(root).parts
        kind = rel[0] if rel[0] != "checkpoints" else "/".join(rel[2:3])
        kinds.setdefault(kind, []).append(p)
    rng = random.Random(11)
    outcomes = {"detected": 0, "harmless": 0}
    for n in range(60):
        kind = sorted(kinds)[n % len(kinds)]
        path = rng.choice(kinds[kind])
        if not path.exists():  # an old lease generation, pruned by a restore since
            continue
        original = path.read_bytes()
        if not original:
            continue
        flipped = bytearray(original)
        bit = rng.randrange(len(original) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(flipped))
        keystore.forget_unlocked()
        target = tmp_path / f"t{n}"
        try:
            ok = _restore(Bank(bank.url), cid, target).ok
        except ProtectflowError:
            ok = False
        if ok:
            assert _files(target) == expected, (path, bit)  # never wrong data
            outcomes["harmless"] += 1
        else:
            outcomes["detected"] += 1
        path.write_bytes(original)
        shutil.rmtree(target, ignore_errors=True)
    assert outcomes["detected"] > 0, outcomes
