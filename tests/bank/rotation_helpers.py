"""Helpers for the key rotation tests (a plain module: subprocesses import it).

A source of a folder -- small files that go into packs, files of several
chunks, a symlink, an empty folder -- and a SQLite database, protected into
a bank with small chunks (so there are many), twice, with changes between:
two checkpoints sharing most chunks. ``restores_exactly`` restores every
checkpoint and compares it with what was protected.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
from pathlib import Path
from typing import Any

from protectflow import operations
from protectflow.bank import Bank
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects.crypto import Keyring
from protectflow.errors import BankError

FS = "protectflow::fs::Directory"
DB = "protectflow::sqlite::Database"
SMALL = {"chunk_size": 16384, "pack_size": 16384}


def make_source(root: Path, seed: int = 1) -> Path:
    """The folder ``root/files`` and the database ``root/orders.db``; a plan
    protecting both into ``root/bank``, returned."""
    rng = random.Random(seed)
    files = root / "files"
    (files / "sub" / "deeper").mkdir(parents=True)
    (files / "empty").mkdir()
    for i in range(60):
        (files / "sub" / f"small-{i:03d}.txt").write_text(f"file {i}\n" * rng.randint(1, 200))
    (files / "sub" / "deeper" / "big.bin").write_bytes(rng.randbytes(200_000))
    (files / "twice.bin").write_bytes(rng.randbytes(40_000) * 2)  # chunks that dedup
    os.symlink("sub/deeper/big.bin", files / "link")
    db = sqlite3.connect(root / "orders.db")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total INTEGER)")
    with db:
        db.executemany("INSERT INTO orders (customer, total) VALUES (?, ?)",
                       [(f"customer {i}", i * 100) for i in range(500)])
    db.close()
    plan = {"name": "rot", "bank": str(root / "bank"), "resources": [
        {"type": FS, "id": "files", "extra_info": {"path": str(files)}},
        {"type": DB, "id": "orders", "extra_info": {"path": str(root / "orders.db")}}],
        "parameters": {FS: SMALL}}
    path = root / "plan.yaml"
    path.write_text(json.dumps(plan))
    return path


def change_source(root: Path) -> None:
    """Edit a few files and the database: the next protect shares the rest."""
    files = root / "files"
    (files / "sub" / "small-007.txt").write_text("changed\n")
    (files / "new.txt").write_text("new file\n")
    big = files / "sub" / "deeper" / "big.bin"
    data = bytearray(big.read_bytes())
    data[100_000:100_010] = b"0123456789"
    big.write_bytes(bytes(data))
    db = sqlite3.connect(root / "orders.db")
    with db:
        db.execute("UPDATE orders SET total = total + 1 WHERE id < 10")
    db.close()


def fingerprint(root: Path) -> dict[str, str]:
    """What a restore must give back: every file's bytes and mode, every
    link's target, every folder; the database's rows."""
    out: dict[str, str] = {}
    files = root / "files"
    for path in sorted(files.rglob("*")):
        rel = str(path.relative_to(files))
        if path.is_symlink():
            out[rel] = "link " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = f"{oct(path.stat().st_mode)} " + hashlib.sha256(
                path.read_bytes()).hexdigest()
    db = sqlite3.connect(f"file:{root / 'orders.db'}?mode=ro", uri=True)
    out["orders.db"] = repr(db.execute("SELECT * FROM orders ORDER BY id").fetchall())
    db.close()
    return out


def protect_twice(root: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    """The plan, and per checkpoint id what it holds (see :func:`fingerprint`)."""
    plan = make_source(root)
    held: dict[str, dict[str, str]] = {}
    for i in range(2):
        if i:
            change_source(root)
        result = operations.protect(plan, executor="serial")
        assert result.ok, result
        held[result.checkpoint.id] = fingerprint(root)
    keystore.forget_unlocked()
    return plan, held


def restores_exactly(bank: str | Path, held: dict[str, dict[str, str]], out: Path) -> None:
    """Restore and verify every checkpoint of ``held``; each must give back
    exactly what it held."""
    keystore.forget_unlocked()
    for checkpoint_id, expected in held.items():
        target = out / checkpoint_id
        result = operations.restore(checkpoint_id, bank=str(bank), executor="serial",
                                    parameters={FS: {"target": str(target)},
                                                DB: {"target": str(target)}})
        assert result.ok, result
        got = fingerprint(target)
        assert got == expected, sorted(k for k in expected if got.get(k) != expected[k])
        verified = operations.verify(checkpoint_id, bank=str(bank), executor="serial")
        assert verified.ok and not verified.problems, verified


def stored(bank: Bank) -> dict[str, bytes]:
    """Every object's stored bytes, the bank's own clear ones aside."""
    out: dict[str, bytes] = {}
    for key in bank.iter_objects(""):
        out[key] = bank.backend.read(key)
    return out


def opens_anything(master: bytes, bank: Bank) -> list[str]:
    """The objects of ``bank`` the key ``master`` opens (markers included)."""
    keyring = Keyring.from_master(master)
    opened = []
    for key, data in stored(bank).items():
        area = key.split("/", 1)[0]
        if data == keyring.marker(area):
            opened.append(key)
            continue
        try:
            keyring.open(key, data)
        except BankError:
            continue
        opened.append(key)
    return opened


def chunk_names(bank: Bank) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in bank.iter_objects("chunks/")}


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
