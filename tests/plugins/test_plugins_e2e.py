"""The shop end to end through protectflow.operations: protect, change,
restore, verify, copy, delete -- on every local executor."""

from __future__ import annotations

import filecmp
import os
import sqlite3
from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.plugins.builtin import sqlite as sq
from tests.plugins.plugin_helpers import make_shop, shopctl, snapshot_tree


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_shop_protect_restore_verify_copy_delete(tmp_path: Path, executor: str) -> None:
    shop = tmp_path / "shop"
    plan = make_shop.make_shop(str(shop))
    before = snapshot_tree(shop / "uploads")
    bank = Bank(tmp_path / "bank", fsync=False)
    result = operations.protect(plan, bank=bank, executor=executor)
    assert result.ok, result.report
    cid = result.checkpoint.id
    (shop / "uploads" / "README.txt").write_text("vandalised")
    db = sqlite3.connect(shop / "orders.db")
    with db:
        db.execute("DELETE FROM orders")
    db.close()
    target = str(tmp_path / "restored")
    params = {"protectflow::fs::Directory": {"target": target},
              "protectflow::sqlite::Database": {"target": target}}
    restored = operations.restore(cid, bank=bank, executor=executor, parameters=params)
    assert restored.ok, restored.report
    assert snapshot_tree(Path(target) / "uploads") == before
    assert sq.integrity_check(f"{target}/orders.db") == "ok"  # its own name, not the id
    assert os.stat(f"{target}/orders.db").st_mode & 0o777 == os.stat(
        shop / "orders.db").st_mode & 0o777
    db = sqlite3.connect(f"{target}/orders.db")
    assert [r[0] for r in db.execute("SELECT customer FROM orders")] == ["alice", "bob", "carol"]
    db.close()
    assert not (shop / "FROZEN").exists() and shopctl.check(str(shop)) == []
    assert operations.verify(cid, bank=bank, executor=executor).ok
    other = Bank(tmp_path / "bank2", fsync=False)
    copied = operations.copy(cid, to=other, bank=bank, executor=executor)
    assert copied.ok, copied.report
    assert copied.report.ok and copied.report.hooks  # the copy's hooks ran, and succeeded
    assert copied.target is not None and copied.target.reload().status == "available"
    assert operations.verify(copied.target.id, bank=other, executor=executor).ok
    assert operations.delete(cid, bank=bank, executor=executor).ok
    assert bank.list_objects("chunks/") == [] and bank.list_objects("refs/") == []
    again = str(tmp_path / "from-copy")
    params = {k: {"target": again} for k in params}
    assert operations.restore(copied.target.id, bank=other, parameters=params).ok
    assert not filecmp.dircmp(f"{target}/uploads", f"{again}/uploads").diff_files


@pytest.mark.parametrize("fsync", [True, False])
def test_protect_fsync_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              fsync: bool) -> None:
    import os

    shop = tmp_path / "shop"
    plan = make_shop.make_shop(str(shop))
    bank_dir = tmp_path / "bank"
    # The bank's key file is always made durable: make it before counting.
    Bank(bank_dir).ensure_keyring()
    calls = {"fsync": 0, "syncfs": 0}
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls["fsync"] += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    from protectflow.bank.objects import _backend

    real_syncfs = _backend._syncfs()
    if real_syncfs is not None:
        def counting_syncfs(fd: int) -> int:
            calls["syncfs"] += 1
            return int(real_syncfs(fd))

        monkeypatch.setattr(_backend, "_syncfs", lambda: counting_syncfs)
    bank_dir = tmp_path / "bank"
    result = operations.protect(plan, bank=str(bank_dir), executor="serial", fsync=fsync)
    assert result.ok, result.report
    made_durable = calls["fsync"] + calls["syncfs"]
    assert (made_durable > 0) is fsync, calls
    # either way, a whole checkpoint that verifies
    assert operations.verify(result.checkpoint.id, bank=str(bank_dir),
                             executor="serial").ok
