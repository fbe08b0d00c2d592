"""``operations.run``: a plan or a HookDAG as it is, keeping no checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from protectflow import operations
from protectflow.compiler import compile_plan, load_plan
from protectflow.dag import jsonio
from protectflow.errors import ExecutorError, PreflightError

TENANT = str(Path(__file__).resolve().parents[2] / "examples" / "tenant.yaml")


def test_a_plan_file_runs_every_hook_of_its_protect() -> None:
    report = operations.run(TENANT, executor="serial")
    assert report.ok and report.operation == "protect"
    assert len(report.hooks) == len(compile_plan(load_plan(TENANT), "protect").nodes)


def test_a_plan_compiles_for_the_operation_asked_for() -> None:
    report = operations.run(load_plan(TENANT), operation="verify", executor="threads",
                            workers=2)
    assert report.ok and report.operation == "verify"


def test_a_hookdag_file_runs_as_it_is_and_refuses_another_operation(tmp_path: Path) -> None:
    dag = compile_plan(load_plan(TENANT), "restore")
    path = tmp_path / "dag.json"
    path.write_text(jsonio.dumps(dag), encoding="utf-8")
    runnable = operations.prepare_run(str(path))
    assert runnable.dag == dag and runnable.pools == {}
    assert operations.run(runnable, executor="serial").operation == "restore"
    with pytest.raises(ExecutorError, match="is a restore DAG"):
        operations.run(str(path), operation="protect")
    with pytest.raises(ExecutorError, match="is a restore DAG"):
        operations.run(dag, operation="protect")


def test_limits_that_name_nothing_are_refused() -> None:
    with pytest.raises(ExecutorError, match="is no resource type or pool"):
        operations.run(TENANT, executor="threads", limits={"OS::Cinder::Volum": 2})


def test_a_protect_run_of_missing_sources_is_refused_before_any_hook(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: gone\nresources:\n"
                    "  - {type: 'protectflow::fs::Directory', id: a, extra_info: {path: nowhere}}\n"
                    "  - {type: 'protectflow::sqlite::Database', id: b, "
                    "extra_info: {path: none.db}}\n")
    started: list[object] = []
    with pytest.raises(PreflightError) as info:
        operations.run(str(plan), executor="serial", listeners=[started.append])
    assert started == []  # nothing ran: not even the run's start
    assert "nowhere" in str(info.value) and "none.db" in str(info.value)  # every problem
