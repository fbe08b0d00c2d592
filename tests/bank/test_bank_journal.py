"""Run journals in the bank: entries stored, and checked when read back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from protectflow.bank import Bank
from protectflow.bank.catalog.journal import BankJournal, read_journal
from protectflow.errors import BankError


def _checkpoint(tmp_path: Path) -> Any:
    # What a journal uses of a checkpoint: where it lives.
    return SimpleNamespace(bank=Bank(tmp_path / "bank"), prefix="checkpoints/c1/")


def test_an_output_that_is_not_json_is_kept_inexact(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    journal = BankJournal.start(checkpoint, {"operation": "protect"})
    journal.record([{"node": "a", "event": "succeeded", "attempt": 1, "time": 0.0,
                     "worker": "w", "output": {"x": object()}, "new_resources": None}])
    [run] = read_journal(checkpoint)
    assert run.succeeded() == {}
    assert run.entries[0]["inexact"] and "object" in run.entries[0]["output"]


@pytest.mark.parametrize("batch", [{"node": "a"}, [["a", "started"]], [{"event": "started"}]])
def test_a_malformed_batch_is_refused(tmp_path: Path, batch: Any) -> None:
    checkpoint = _checkpoint(tmp_path)
    BankJournal.start(checkpoint, {"operation": "protect"})
    [key] = checkpoint.bank.list_objects("checkpoints/c1/journal/")
    checkpoint.bank.update_object(key.replace("/meta", "/e/000000000000"), batch)
    with pytest.raises(BankError, match="journal batch"):
        read_journal(checkpoint)
