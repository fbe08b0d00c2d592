"""The checks before anything is written leave their arguments as given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protectflow.compiler import compile_plan, load_plan
from protectflow.executors import get_executor
from protectflow.operations.preflight import make_executor

TENANT = str(Path(__file__).resolve().parents[2] / "examples" / "tenant.yaml")


def test_make_executor_splits_options_into_new_dicts() -> None:
    dag = compile_plan(load_plan(TENANT), "protect")
    options: dict[str, Any] = {"workers": 3, "keep_going": True,
                               "limits": {"OS::Cinder::Volume": 1}}
    given = {k: (dict(v) if isinstance(v, dict) else v) for k, v in options.items()}
    executor, run_options = make_executor("threads", options, dag, pools={"p": ["x"]})
    assert options == given  # the caller's dict is not changed
    assert executor.name == "threads"
    assert run_options == {"keep_going": True, "limits": {"OS::Cinder::Volume": 1},
                           "pools": {"p": ["x"]}}


def test_make_executor_keeps_executor_options_for_an_executor_object() -> None:
    # An executor object is used as it is; run_dag refuses the options it would ignore.
    dag = compile_plan(load_plan(TENANT), "protect")
    serial = get_executor("serial")
    executor, run_options = make_executor(serial, {"workers": 2}, dag)
    assert executor is serial and run_options == {"workers": 2}
