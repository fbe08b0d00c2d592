"""One prepared run per operation: for a protect and a restore, through the
command line as a user runs them, the DAG is serialised once and fingerprinted
once, the checkpoint's record read once (leases aside: taking and giving back
the lease appends to its history), the plan file and the providers file read
once each.

The counts come from wrapping the functions that do the work: the DAG's one
JSON writer (``jsonio._lines``, behind ``dumps``, ``dump`` and
``fingerprint``), its fingerprint function, the record's one reader
(``Checkpoint._load``), and ``open`` of the plan and providers files.
"""

from __future__ import annotations

import builtins
import collections
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.catalog.checkpoint import Checkpoint
from protectflow.dag import jsonio

Counts = collections.Counter[str]


def _counting(counts: Counts, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[label] += 1
        return func(*args, **kwargs)
    return counted


def _in_lease_history() -> bool:
    """Whether the caller reads the record to append a lease event to its history."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "_append_history":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Counts]:
    found: Counts = collections.Counter()
    monkeypatch.setattr(jsonio, "_lines", _counting(found, "serialised", jsonio._lines))
    monkeypatch.setattr(jsonio, "fingerprint",
                        _counting(found, "fingerprinted", jsonio.fingerprint))
    load = Checkpoint._load

    def counted_load(self: Checkpoint) -> Any:
        found["record read for a lease" if _in_lease_history() else "record read"] += 1
        return load(self)

    monkeypatch.setattr(Checkpoint, "_load", counted_load)
    real_open = builtins.open
    watched = {str(tmp_path / "plan.json"): "plan read", str(tmp_path / "providers.yaml"):
               "providers read"}

    def counted_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        label = watched.get(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else None
        if label is not None:
            found[label] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counted_open)
    yield found


@pytest.fixture
def plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plan of one folder and its bank, served by a named provider of the
    providers file."""
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("hello\n")
    (source / "sub" / "b.bin").write_bytes(os.urandom(3000))
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  local:\n"
                         "    plugins: {'protectflow::fs::Directory': fs}\n")
    monkeypatch.setenv("PROTECTFLOW_PROVIDERS", str(providers))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"name": "counted", "provider": "local",
                                "bank": str(tmp_path / "bank"), "resources": [
        {"type": "protectflow::fs::Directory", "id": "src",
         "extra_info": {"path": str(source)}}]}))
    return plan


def test_a_protect_and_a_restore_do_each_piece_of_work_once(
        counts: Counts, plan_file: Path, tmp_path: Path) -> None:
    assert cli.main(["protect", str(plan_file), "--executor", "serial", "-q"]) == 0
    assert counts == {"serialised": 1, "fingerprinted": 1, "record read": 1,
                      "record read for a lease": 1, "plan read": 1, "providers read": 1}

    (checkpoint,) = CheckpointStore(Bank(str(tmp_path / "bank"))).list()
    counts.clear()
    target = tmp_path / "restored"
    assert cli.main(["restore", checkpoint.id[:8], "--plan", str(plan_file), "--target",
                     str(target), "--executor", "serial", "-q"]) == 0
    assert (target / "src" / "sub" / "b.bin").read_bytes() == (
        tmp_path / "src" / "sub" / "b.bin").read_bytes()
    assert counts == {"serialised": 1, "fingerprinted": 1, "record read": 1,
                      "record read for a lease": 2, "plan read": 1, "providers read": 1}


def test_the_library_reads_a_given_checkpoints_record_no_more(
        counts: Counts, plan_file: Path, tmp_path: Path) -> None:
    protected = operations.protect(plan_file, executor="serial")
    assert protected.ok
    counts.clear()
    checkpoint = CheckpointStore(protected.checkpoint.bank).get(protected.checkpoint.id)
    result = operations.restore(checkpoint, executor="threads",
                                parameters={"protectflow::fs::Directory": {
                                    "target": str(tmp_path / "out")}})
    assert result.ok
    assert counts["record read"] == 1  # the get above; the restore reads it no more
    assert counts["serialised"] == counts["fingerprinted"] == 1
