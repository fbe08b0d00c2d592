"""A journaled run: the entries the loop writes, read back as they were written."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from protectflow.bank import Bank
from protectflow.bank.catalog.journal import BankJournal, RunMeta, read_journal
from protectflow.executors import run_dag
from tests.executors.dags import flat, make_dag
from tests.executors.executor_plugins import SPEC


def _checkpoint(tmp_path: Path) -> Any:
    # What a journal uses of a checkpoint: where it lives.
    return SimpleNamespace(bank=Bank(tmp_path / "bank"), prefix="checkpoints/c1/")


def test_a_run_journal_reads_back_every_start_and_end(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    journal = BankJournal.start(checkpoint, RunMeta(
        operation="restore", dag_fingerprint="d", plan_fingerprint="p", plugin_versions={},
        executor="serial", owner="me"))
    params = {"OS::Cinder::Volume#v1": {"fail": ["main"]}}
    report = run_dag(make_dag(flat(2), "restore", parameters=params), "serial",
                     registry=SPEC, journal=journal, keep_going=True)
    [run] = read_journal(checkpoint)
    assert run.meta.operation == "restore" and run.end is None
    assert run.started() == {n for n, r in report.hooks.items() if r.attempts}
    done = run.succeeded()
    assert set(done) == {n for n, r in report.hooks.items() if r.state == "succeeded"}
    for node, entry in done.items():
        assert entry.output == report.hooks[node].output
        assert entry.new_resources == report.hooks[node].new_resources
    [failed] = [e for e in run.entries if e.event == "failed"]
    assert failed.node == "OS::Cinder::Volume#v1/main" and failed.retrying is False
    assert failed.error is not None and "SimFailure" in failed.error.type
