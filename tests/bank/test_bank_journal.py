"""Run journals in the bank: entries stored, and checked when read back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from protectflow.bank import Bank
from protectflow.bank.catalog.journal import BankJournal, JournalEntry, RunMeta, read_journal
from protectflow.dag import ErrorInfo, StatusUpdate
from protectflow.errors import BankError, CorruptObjectError


def _checkpoint(tmp_path: Path) -> Any:
    # What a journal uses of a checkpoint: where it lives.
    return SimpleNamespace(bank=Bank(tmp_path / "bank"), prefix="checkpoints/c1/")


def _meta(**fields: Any) -> RunMeta:
    return RunMeta(**{"operation": "protect", "dag_fingerprint": "d", "plan_fingerprint": "p",
                      "plugin_versions": {"sim": "protectflow 1"}, "executor": "serial",
                      "owner": "me", **fields})


def test_an_output_that_is_not_json_is_kept_inexact(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    journal = BankJournal.start(checkpoint, _meta())
    journal.record([JournalEntry("a", "succeeded", 1, 0.0, "w", output={"x": object()})])
    [run] = read_journal(checkpoint)
    assert run.succeeded() == {}
    assert run.entries[0].inexact and "object" in run.entries[0].output


def test_entries_and_meta_read_back_as_written(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    meta = _meta(parameters={"T": {"x": 1}}, resumes="r0", redo=("a/main",))
    journal = BankJournal.start(checkpoint, meta)
    update = StatusUpdate("T", "a", "restored", None, 2.0)
    entries = [JournalEntry("a/main", "started", 1, 1.0),
               JournalEntry("a/main", "succeeded", 1, 2.0, "w", output=[1, "two"],
                            new_resources={"T#a": "new"}, status_updates=(update,)),
               JournalEntry("b/main", "failed", 2, 3.0, "w",
                            error=ErrorInfo("E", "m"),
                            retrying=True)]
    journal.record(entries)
    journal.finish("failed")
    [run] = read_journal(checkpoint)
    assert run.meta == meta and run.entries == tuple(entries) and run.end is not None
    assert run.end.state == "failed" and run.succeeded() == {"a/main": entries[1]}
    assert run.started() == {"a/main"}


@pytest.mark.parametrize("batch", [{"node": "a"}, [["a", "started"]], [{"event": "started"}],
                                   [{"node": "a", "event": "started", "attempt": "1",
                                     "time": 0.0}]])
def test_a_malformed_batch_is_refused(tmp_path: Path, batch: Any) -> None:
    checkpoint = _checkpoint(tmp_path)
    BankJournal.start(checkpoint, _meta())
    [key] = checkpoint.bank.list_objects("checkpoints/c1/journal/")
    checkpoint.bank.update_object(key.replace("/meta", "/e/000000000000"), batch)
    with pytest.raises(CorruptObjectError, match="journal batch"):
        read_journal(checkpoint)


def test_a_meta_of_another_version_or_shape_is_refused(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    journal = BankJournal.start(checkpoint, _meta())
    key = journal.prefix + "meta"
    stored = checkpoint.bank.get_object(key)
    checkpoint.bank.update_object(key, {**stored, "plugin_versions": ["sim"]})
    with pytest.raises(CorruptObjectError, match=r"journal meta .*'plugin_versions' is not"):
        read_journal(checkpoint)
    checkpoint.bank.update_object(key, {**stored, "version": 2})
    with pytest.raises(BankError, match="journal meta format 2; this protectflow reads format 1"):
        read_journal(checkpoint)
