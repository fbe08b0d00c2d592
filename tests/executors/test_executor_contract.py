"""The plugin contract as every executor keeps it: one Operation per resource
per run, shared by that resource's hooks; hooks called by keyword with the
operation's extras; any object with the guide's methods is a plugin."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import HookDAG
from protectflow.executors import RunOptions, RunReport
from protectflow.plugins import get_registry
from protectflow.plugins.contract import StatusUpdate
from tests.executors import plain_plugins
from tests.executors.dags import make_dag
from tests.executors.executor_plugins import SPEC
from tests.waits import wait_until

MakeExecutor = Callable[[], Any]
HOOK_ORDER = ["prepare_begin", "prepare_finish", "main", "complete"]


def _tenant(marker: str) -> list[dict[str, Any]]:
    """Servers sharing volumes and an image: resource ids carry ``marker``,
    so that what a run leaves in a shared dask worker is told apart."""
    return [
        {"type": "OS::Nova::Server", "id": f"s1-{marker}",
         "depends_on": [f"OS::Cinder::Volume#v1-{marker}", f"OS::Glance::Image#i-{marker}"]},
        {"type": "OS::Nova::Server", "id": f"s2-{marker}",
         "depends_on": [f"OS::Cinder::Volume#v1-{marker}", f"OS::Cinder::Volume#v2-{marker}",
                        f"OS::Glance::Image#i-{marker}"]},
        {"type": "OS::Cinder::Volume", "id": f"v1-{marker}"},
        {"type": "OS::Cinder::Volume", "id": f"v2-{marker}"},
        {"type": "OS::Glance::Image", "id": f"i-{marker}"},
        {"type": "OS::Cinder::Volume", "id": f"v3-{marker}"},
    ]


def _by_resource(report: RunReport) -> dict[str, dict[str, dict[str, Any]]]:
    """Resource key -> hook -> the Operation facts its output reported."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for record in report.hooks.values():
        out[record.resource][record.hook] = record.output["op"]
    return out


@pytest.mark.parametrize("operation", ["protect", "restore"])
def test_one_operation_per_resource_shared_by_its_hooks(
    make_executor: MakeExecutor, operation: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    dag = make_dag(_tenant(marker), operation)
    report = make_executor().run(dag, RunOptions(registry=SPEC))
    assert report.state == "succeeded"
    ops = _by_resource(report)
    assert len(ops) == 6
    instances = set()
    for key, hooks in ops.items():
        assert sorted(hooks) == sorted(HOOK_ORDER), key
        # One instance ran all four hooks: one process, one serial ...
        assert len({(op["pid"], op["serial"]) for op in hooks.values()}) == 1, key
        instances.add((hooks["main"]["pid"], hooks["main"]["serial"]))
        # ... made by one get_<op>_operation call, and no other call for the
        # resource came while its hooks ran.
        assert {op["calls"] for op in hooks.values()} == {hooks["main"]["made"]}, key
        # State on self survives between the hooks, in hook order, and holds
        # this resource's hooks only.
        for n, hook in enumerate(HOOK_ORDER):
            assert hooks[hook]["on_self"] == [f"{key}/{h}" for h in HOOK_ORDER[:n + 1]], key
    assert len(instances) == 6  # not shared between resources


def test_get_operation_called_once_per_resource_per_run(make_executor: MakeExecutor) -> None:
    marker = uuid.uuid4().hex[:8]
    dag = make_dag(_tenant(marker), "protect")
    executor = make_executor()
    first = _by_resource(executor.run(dag, RunOptions(registry=SPEC)))
    second = _by_resource(executor.run(dag, RunOptions(registry=SPEC)))
    for key in first:
        # Where a process saw both runs, its get calls for the resource went
        # up by exactly one: the second run asked once, with a new instance.
        a, b = first[key]["complete"], second[key]["main"]
        assert (a["pid"], a["serial"]) != (b["pid"], b["serial"]), key
        if a["pid"] == b["pid"]:
            assert b["made"] == a["calls"] + 1, key


def _client_of(request: pytest.FixtureRequest) -> Any:
    name = request.node.callspec.params["make_executor"]
    fixture = {"dask-inproc": "dask_inproc", "dask-procs": "dask_procs",
               "dask-remote": "remote_client"}.get(name)
    return None if fixture is None else request.getfixturevalue(fixture)


def test_operations_are_dropped_when_the_run_ends(
    make_executor: MakeExecutor, request: pytest.FixtureRequest
) -> None:
    from tests.executors.executor_plugins import live_operations

    marker = uuid.uuid4().hex[:8]
    report = make_executor().run(make_dag(_tenant(marker), "protect"),
                                 RunOptions(registry=SPEC))
    assert report.state == "succeeded"
    client = _client_of(request)
    if client is None:
        assert live_operations(marker) == 0
        return
    # Every process that ran a hook: a runner drops the run's Operations once
    # told the run ended (a message that may land just after run() returns).
    processes = {r.output["pid"] for r in report.hooks.values()}
    assert processes

    def none_left() -> bool:
        counts = client.run(live_operations, marker)
        return bool(counts) and sum(counts.values()) == 0

    wait_until(none_left, "every runner to drop the run's Operations")


def test_resource_hooks_run_in_one_process_on_worker_processes(
    request: pytest.FixtureRequest,
) -> None:
    from protectflow.executors import get_executor

    client = request.getfixturevalue("dask_procs")
    marker = uuid.uuid4().hex[:8]
    resources = [{"type": "OS::Cinder::Volume", "id": f"v{i}-{marker}"} for i in range(24)]
    params = {"OS::Cinder::Volume": {"prepare_begin_seconds": 0.01, "main_seconds": 0.02}}
    dag = make_dag(resources, "protect", parameters=params)
    report = get_executor("dask", client=client).run(dag, RunOptions(registry=SPEC))
    assert report.state == "succeeded"
    pids: dict[str, set[int]] = defaultdict(set)
    for record in report.hooks.values():
        pids[record.resource].add(record.output["pid"])
    assert all(len(p) == 1 for p in pids.values()), pids
    # Both worker processes were used, about evenly: a new resource goes to
    # the runner with the least work committed (its resources' hooks not yet
    # back), so the affinity neither pins everything to one nor skews the load.
    per_process = Counter(next(iter(p)) for p in pids.values())
    assert len(per_process) == 2
    assert all(8 <= n <= 16 for n in per_process.values()), per_process


# -- hooks by keyword, the extras, a plain plugin ---------------------------------------------


def _plain_dag(operation: str) -> HookDAG:
    plan = {"name": "plain", "resources": [
        {"type": plain_plugins.TYPE, "id": "a", "depends_on": [f"{plain_plugins.TYPE}#b"]},
        {"type": plain_plugins.TYPE, "id": "b"}],
        "parameters": {plain_plugins.TYPE: {"size": 3}, f"{plain_plugins.TYPE}#b": {"size": 5}}}
    return compile_plan(parse_plan(json.dumps(plan)), operation,
                        registry=get_registry(plain_plugins.SPEC))


@pytest.mark.parametrize("operation", ["protect", "restore", "verify", "copy"])
def test_plain_plugin_hooks_get_their_arguments_by_name_and_the_extras(
    make_executor: MakeExecutor, operation: str
) -> None:
    dag = _plain_dag(operation)
    report = make_executor().run(dag, RunOptions(
        registry=plain_plugins.SPEC, checkpoint={"id": "cp-1"}, context={"user": "u"}))
    assert report.state == "succeeded", [r.error for r in report.failed()]
    recorder = plain_plugins.RECORDERS.get(operation)
    for node in dag.nodes:
        record = report.hooks[node.id]
        seen = record.output
        assert seen["hook"] == node.hook
        assert seen["resource"] == node.resource.key
        assert seen["checkpoint"] == {"id": "cp-1"}
        assert seen["context"] == {"user": "u"}
        assert seen["parameters"] == dag.parameters[node.resource.key]
        assert seen["attempt"] == 1
        assert seen["recorder"] == recorder
        if node.hook in ("prepare_begin", "main"):  # these take **kwargs: every extra
            expected = {"attempt", "operation_log"}
            if recorder:
                expected.add(recorder)
            if operation in ("restore", "verify"):
                expected.add("new_resources")
            assert set(seen["extras"]) == expected
        # The recorder's updates came back with the hook's result.
        if recorder:
            assert record.status_updates == [StatusUpdate(
                node.resource.type, node.resource.id, f"{node.hook}-done",
                f"{node.hook} ran", record.status_updates[0].time)]
            assert record.to_json()["status_updates"][0]["status"] == f"{node.hook}-done"
        else:
            assert record.status_updates == []
    for key in ("Test::Plain#a", "Test::Plain#b"):
        complete = report.hooks[f"{key}/complete"].output
        assert complete["on_self"] == HOOK_ORDER
