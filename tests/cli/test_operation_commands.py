"""The operation commands (protect, restore, verify, copy, delete, resume)
as a user types them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank
from protectflow.bank.objects import _backend

ROOT = Path(__file__).resolve().parents[2]


def test_cli_protect_no_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subprocess.run([sys.executable, str(ROOT / "examples" / "shop" / "make_shop.py"),
                    str(tmp_path / "shop")], check=True, capture_output=True)
    plan = str(tmp_path / "shop" / "plan.yaml")
    bank = str(tmp_path / "bank")
    Bank(bank).ensure_keyring()  # its key file is always made durable
    fsyncs: list[int] = []
    monkeypatch.setattr(os, "fsync", fsyncs.append)
    monkeypatch.setattr(_backend, "_syncfs", lambda: None)  # then only os.fsync is left
    assert cli.main(["protect", plan, "--bank", bank, "--no-fsync",
                     "--executor", "serial"]) == 0
    assert fsyncs == []
    assert len(operations.open_store(bank).list()) == 1
