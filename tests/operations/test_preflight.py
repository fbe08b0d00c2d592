"""An operation's run, prepared once: run options split into the executor's
and the run's, typed, without changing what the caller gave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from protectflow.compiler import load_plan
from protectflow.errors import ExecutorError
from protectflow.executors import get_executor
from protectflow.operations.prepared import RunSettings, prepare_plan

TENANT = str(Path(__file__).resolve().parents[2] / "examples" / "tenant.yaml")


def test_prepare_splits_options_into_the_executor_and_typed_run_options() -> None:
    options: dict[str, Any] = {"workers": 3, "keep_going": True,
                               "limits": {"OS::Cinder::Volume": 1}}
    given = {k: (dict(v) if isinstance(v, dict) else v) for k, v in options.items()}
    plan = load_plan(TENANT)
    prepared = prepare_plan(plan, "protect", parameters=None, executor="threads",
                            settings=RunSettings.of(options))
    assert options == given  # the caller's dict is not changed
    assert prepared.executor.name == "threads"
    assert getattr(prepared.executor, "workers", None) == 3
    assert prepared.options.keep_going is True
    assert prepared.options.limits == {"OS::Cinder::Volume": 1}
    assert prepared.options.pools == {k: tuple(v) for k, v in plan.pools.items()}


def test_executor_options_with_an_executor_object_are_refused() -> None:
    # An executor object is used as it is; the options it would ignore are refused.
    serial = get_executor("serial")
    with pytest.raises(ExecutorError, match=r"workers.*go with an executor name"):
        prepare_plan(load_plan(TENANT), "protect", parameters=None, executor=serial,
                     settings=RunSettings.of({"workers": 2}))


def test_unknown_run_options_are_refused_by_name() -> None:
    with pytest.raises(ExecutorError, match="unknown run options: keep_goign"):
        RunSettings.of({"keep_goign": True})
