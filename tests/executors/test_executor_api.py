"""The executors' entry points, options and the loop's invariants."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from dags import flat, make_dag
from executor_plugins import SPEC

from protectflow.errors import ExecutorError, MissingDependencyError
from protectflow.executors import RunOptions, available_executors, get_executor, run_dag
from protectflow.executors._views import Views


def test_available_executors() -> None:
    assert available_executors() == ["dask", "serial", "threads"]


def test_unknown_executor() -> None:
    with pytest.raises(ExecutorError) as info:
        get_executor("daks")
    assert str(info.value) == "unknown executor 'daks'; available: dask, serial, threads"


def test_dask_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'protectflow\[dask\]'"):
        get_executor("dask")


def test_import_protectflow_imports_no_dask() -> None:
    code = ("import sys, protectflow, protectflow.executors, protectflow.cli; "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_limit_value() -> None:
    with pytest.raises(ExecutorError, match="positive whole number"):
        RunOptions(limits={"OS::Cinder::Volume": 0})


def test_run_dag_library_call() -> None:
    params = {"OS::Cinder::Volume#v1": {"fail": ["main"]}}
    report = run_dag(make_dag(flat(2), parameters=params), "threads", workers=2,
                     registry=SPEC, keep_going=True)
    assert report.state == "failed" and not report.ok
    assert [r.node for r in report.failed()] == ["OS::Cinder::Volume#v1/main"]


def test_serial_order_is_fixed() -> None:
    dag = make_dag(flat(3) + flat(2, "OS::Nova::Server", "s"))
    orders = []
    for _ in range(2):
        report = get_executor("serial").run(dag, RunOptions(registry=SPEC))
        orders.append(sorted(report.hooks, key=lambda n: report.hooks[n].output["start"]))
    assert orders[0] == orders[1]


def test_views_share_dicts_when_nothing_is_written() -> None:
    # a -> b -> c, and d waits for b and c.
    views = Views([[], [0], [1], [1, 2]])
    for i in range(4):
        views.done(i, None)
    assert views.view(1) is views.view(0) is views.view(3)
    views = Views([[], [0], [0], [1, 2]])
    views.done(0, {"a": 1})
    views.done(1, {"b": 2})
    views.done(2, {"c": 3})
    assert views.view(1) == views.view(2) == {"a": 1}
    assert views.view(1) is views.view(2)
    assert views.view(3) == {"a": 1, "b": 2, "c": 3}


def test_dask_through_a_scheduler_address(dask_remote: str) -> None:
    report = run_dag(make_dag(flat(2), "restore"), "dask", scheduler=dask_remote, registry=SPEC)
    assert report.state == "succeeded"
    pids = {r.output["pid"] for r in report.hooks.values()}
    import os
    assert os.getpid() not in pids


def test_unreachable_scheduler() -> None:
    with pytest.raises(ExecutorError, match="cannot reach the dask scheduler"):
        run_dag(make_dag(flat(1)), "dask", scheduler="tcp://127.0.0.1:9", connect_timeout=0.5)


def test_listener_errors_do_not_break_a_run() -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("boom")

    with pytest.warns(UserWarning, match="boom"):
        report = run_dag(make_dag(flat(1)), "serial", registry=SPEC, listeners=[broken])
    assert report.state == "succeeded"
