"""Resume: refusals, another executor, lease takeover, clean failure, and a
dask worker killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.catalog.journal import read_journal
from protectflow.bank.catalog.lease import owner_is_dead
from protectflow.errors import BankError, CheckpointBusyError, NotResumableError
from tests import needs, waits
from tests.crash.crash_helpers import (
    RECORDS,
    SPEC,
    check_no_rerun_by_records,
    check_no_rerun_of_successes,
    check_whole_bank,
    data_objects,
    operate,
    protect_cli,
    sim_plan,
    the_checkpoint,
)
from tests.waits import wait_until

pytestmark = pytest.mark.slow  # most kill a protect in a process of its own, then resume


def killed(tmp_path: Path, n: int = 15, **params: Any) -> tuple[Path, Path, Any]:
    plan = sim_plan(tmp_path, **params)
    bank = tmp_path / "bank"
    proc = protect_cli(plan, bank, faults=f"kill-after-hooks={n}")
    assert proc.returncode == -9
    checkpoint = the_checkpoint(bank)
    assert checkpoint is not None and checkpoint.status == "protecting"
    return plan, bank, checkpoint


@pytest.mark.parametrize("executor", ["serial", "threads", "dask"])
def test_resume_on_another_executor(tmp_path: Path, executor: str,
                                    request: pytest.FixtureRequest) -> None:
    plan, bank, checkpoint = killed(tmp_path)
    runner: Any = executor
    if executor == "dask":  # on the session's worker processes
        from protectflow.executors import get_executor

        runner = get_executor("dask", client=request.getfixturevalue("dask_procs"))
    result = operations.resume(checkpoint.id, bank=bank, executor=runner)
    assert result.ok and result.checkpoint.reload().status == "available"
    resumed = [r for r in result.report.hooks.values() if r.resumed]
    assert len(resumed) >= 15  # the batch that recorded the 15th end
    assert all(r.attempts == 0 and r.output for r in resumed)
    # and every other hook ran exactly once (no retries asked for)
    assert all(r.attempts == 1 for r in result.report.hooks.values() if not r.resumed)
    done, _ = check_no_rerun_of_successes(result.checkpoint)
    assert done == len(result.report.hooks)
    reference = operations.protect(plan, bank=tmp_path / "ref", executor="serial")
    assert data_objects(result.checkpoint) == data_objects(reference.checkpoint)
    runs = read_journal(result.checkpoint)
    assert [r.meta.executor for r in runs] == ["threads", executor]
    assert runs[1].meta.resumes == runs[0].run_id
    assert runs[1].end is not None and runs[1].end.state == "succeeded"
    with pytest.raises(NotResumableError):
        operations.resume(checkpoint.id, bank=bank)


def test_resume_refuses_a_changed_plan(tmp_path: Path) -> None:
    plan, bank, checkpoint = killed(tmp_path)
    data = json.loads(plan.read_text())
    data["parameters"]["OS::Cinder::Volume"]["payload_bytes"] = 7
    plan.write_text(json.dumps(data))  # the plan file the journal names changed
    with pytest.raises(NotResumableError, match="the plan differs"):
        operations.resume(checkpoint.id, bank=bank)
    assert cli.main(["resume", checkpoint.id, "--bank", str(bank)]) == 2
    assert CheckpointStore(Bank(str(bank))).get(checkpoint.id).status == "protecting"


def test_resume_refuses_a_changed_dag(tmp_path: Path) -> None:
    _, bank, checkpoint = killed(tmp_path)
    record = checkpoint.reload().record
    parameters = {**record.plan.parameters, "OS::Cinder::Volume": {
        **record.plan.parameters["OS::Cinder::Volume"], "main_seconds": 0}}
    changed = attrs.evolve(record, plan=attrs.evolve(record.plan, parameters=parameters))
    checkpoint.bank.update_object(checkpoint.prefix + "record", changed.to_json())
    with pytest.raises(NotResumableError, match="compiled protect DAG differs"):
        operations.resume(checkpoint.id, bank=bank, plan=None)


def test_resume_refuses_changed_plugin_versions(tmp_path: Path) -> None:
    _, bank, checkpoint = killed(tmp_path)
    run = read_journal(checkpoint)[0]
    versions = {**run.meta.plugin_versions, "sim": "protectflow 0.0.1"}
    checkpoint.bank.update_object(f"{checkpoint.prefix}journal/{run.run_id}/meta",
                                  attrs.evolve(run.meta, plugin_versions=versions).to_json())
    with pytest.raises(NotResumableError, match=r"plugin 'sim' was protectflow 0\.0\.1, is now"):
        operations.resume(checkpoint.id, bank=bank)


def test_a_live_owner_keeps_its_lease(tmp_path: Path) -> None:
    assert not owner_is_dead(operations.default_owner())  # this process
    assert not owner_is_dead("me@another-host:1")
    assert not owner_is_dead("not an owner")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    import socket

    assert owner_is_dead(f"me@{socket.gethostname()}:{child.pid}")
    # A running protect of another live process is not taken over.
    plan = sim_plan(tmp_path, main_seconds=0.3)
    bank = tmp_path / "bank"
    proc = subprocess.Popen([sys.executable, "-m", "protectflow.cli", "protect", str(plan),
                             "--bank", str(bank), "--executor", "serial"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def journal_begun() -> bool:
            checkpoint = the_checkpoint(bank)
            return checkpoint is not None and bool(read_journal(checkpoint))

        wait_until(journal_begun, "the other process's protect to start its journal")
        with pytest.raises(CheckpointBusyError):
            operations.resume(the_checkpoint(bank).id, bank=bank)
    finally:
        proc.wait(waits.LIMIT)
    assert the_checkpoint(bank).status == "available"


def test_clean_failure_then_resume_from_error(tmp_path: Path) -> None:
    plan = sim_plan(tmp_path)
    data = json.loads(plan.read_text())
    data["parameters"]["OS::Nova::Server"]["fail"] = ["main"]
    plan.write_text(json.dumps(data))
    bank = tmp_path / "bank"
    result = operations.protect(plan, bank=bank, executor="threads")
    checkpoint = result.checkpoint.reload()
    assert checkpoint.status == "error"
    assert f"protectflow resume {checkpoint.id}" in (checkpoint.record.next_steps or "")
    statuses = {v.status for v in checkpoint.resources.values()}
    assert {"error", "not_run"} <= statuses
    assert any("main failed" in (v.reason or "") for v in checkpoint.resources.values())
    assert cli.main(["checkpoints", "--bank", str(bank), "show", checkpoint.id]) == 0
    # gc leaves it resumable; fix the cause, then resume from error.
    assert CheckpointStore(Bank(str(bank))).gc() == []
    del data["parameters"]["OS::Nova::Server"]["fail"]
    plan.write_text(json.dumps(data))
    with pytest.raises(NotResumableError, match="the plan differs"):
        operations.resume(checkpoint.id, bank=bank)  # the fix changed the plan: refused


def test_gc_then_resume(tmp_path: Path) -> None:
    _, bank, checkpoint = killed(tmp_path)
    store = CheckpointStore(Bank(str(bank)))
    assert store.gc(now=time.time() + 3600) == [checkpoint.id]
    assert checkpoint.reload().status == "error"
    result = operations.resume(checkpoint.id, bank=bank)
    assert result.ok and checkpoint.reload().status == "available"
    check_no_rerun_of_successes(checkpoint)


def test_restore_resumes_with_new_resources_from_the_journal(tmp_path: Path) -> None:
    plan = sim_plan(tmp_path)
    bank = tmp_path / "bank"
    checkpoint = operations.protect(plan, bank=bank).checkpoint
    reference = operations.restore(checkpoint.id, bank=bank, executor="serial")
    code = (f"from protectflow import operations; operations.restore({checkpoint.id!r}, "
            f"bank={str(bank)!r}, executor='serial')")
    env = {**os.environ, "PROTECTFLOW_FAULTS": "kill-after-hooks=25"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert proc.returncode == -9
    result = operations.resume(checkpoint.id, bank=bank, executor="threads")
    assert result.ok and result.operation == "restore"
    assert sum(r.resumed for r in result.report.hooks.values()) >= 25
    assert result.new_resources == reference.new_resources


def test_dask_worker_killed_mid_run(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason=f"distributed {needs.TEST_EXTRA}")
    from distributed import Client, LocalCluster

    plan = sim_plan(tmp_path, main_seconds=0.05)
    bank = tmp_path / "bank"
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        pids = list(client.run(os.getpid).values())
        started = 0

        def kill_one(event: Any) -> None:  # mid-run: once five hooks started
            nonlocal started
            started += event.kind == "started"
            if started == 5 and event.kind == "started":
                os.kill(pids[0], 9)

        try:
            result = operations.protect(plan, bank=bank, executor="dask", client=client,
                                        listeners=[kill_one])
        except BankError:  # the failure is recorded, the checkpoint says so
            result = None
    checkpoint = the_checkpoint(bank)
    assert checkpoint.status in ("available", "error"), checkpoint.status
    if result is None or not result.ok:
        assert checkpoint.record.next_steps
        result = operations.resume(checkpoint.id, bank=bank, executor="threads")
    assert result.ok and checkpoint.reload().status == "available"
    check_whole_bank(Bank(str(bank)))
    check_no_rerun_of_successes(checkpoint)
    reference = operations.protect(plan, bank=tmp_path / "ref", executor="threads")
    assert data_objects(checkpoint) == data_objects(reference.checkpoint)


def test_a_resume_of_a_killed_resume_reruns_nothing_an_earlier_run_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # protect killed, its resume killed, resumed again: the last run takes
    # the successes of both killed runs.
    plan = sim_plan(tmp_path)
    bank, records = tmp_path / "bank", tmp_path / "records"
    first = operate("protect", plan, bank, records=records, faults="kill-after-hooks=10")
    assert first.returncode == -9, first.stderr
    checkpoint = the_checkpoint(bank)
    assert checkpoint is not None
    second = operate("resume", checkpoint.id, bank, records=records,
                     faults="kill-after-hooks=10")
    assert second.returncode == -9, second.stderr
    monkeypatch.setenv(RECORDS, str(records))
    result = operations.resume(checkpoint.id, bank=bank, executor="threads", registry=SPEC)
    assert result.ok and checkpoint.reload().status == "available"
    runs = check_no_rerun_by_records(records, plan)
    assert len(runs) == 3 and set().union(*runs.values()) == set(result.report.hooks)
    # each killed run died once 10 ends of its own were recorded
    last = runs[os.getpid()]
    assert len(last) <= len(result.report.hooks) - 20, len(last)
    reference = operations.protect(plan, bank=tmp_path / "ref", executor="serial")
    assert data_objects(checkpoint) == data_objects(reference.checkpoint)


def test_a_resume_takes_the_successes_dask_workers_recorded_inside_chains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed", reason=f"distributed {needs.TEST_EXTRA}")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "name": "chains",
        "resources": [{"type": "OS::Cinder::Volume", "id": f"v{i}"} for i in range(4)],
        "parameters": {"OS::Cinder::Volume": {"payload_bytes": 1000}}}))
    bank, records = tmp_path / "bank", tmp_path / "records"
    # Each volume's four hooks run as one chain on a dask worker, which
    # records each success before it starts the next hook; the scheduling
    # process dies before its own journal records any end, and (hold) not
    # before a chain went on past its first hook.
    killed = operate("protect", plan, bank, records=records, faults="kill-before-journal=1",
                     executor="dask", workers=1, threads_per_worker=2, processes=False,
                     chain=4, hold=True)
    assert killed.returncode == -9, killed.stderr
    checkpoint = the_checkpoint(bank)
    assert checkpoint is not None
    monkeypatch.setenv(RECORDS, str(records))
    result = operations.resume(checkpoint.id, bank=bank, executor="threads", registry=SPEC)
    assert result.ok and checkpoint.reload().status == "available"
    killed_run, _ = check_no_rerun_by_records(records, plan).values()
    # Hooks that wait for another started in the killed run: started by its
    # worker inside a chain, the one before them recorded there.
    followers = {n for n in killed_run if not n.endswith("/prepare_begin")}
    assert followers, killed_run
