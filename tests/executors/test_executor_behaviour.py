"""One behaviour suite, run against every executor (serial, threads, dask in
process, dask over two worker processes, dask on a separate scheduler)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from protectflow.bank.catalog.journal import JournalEntry
from protectflow.dag import HookDAG
from protectflow.executors import Event, RunOptions, RunReport
from tests.executors.dags import ancestors, flat, make_dag, resource_graphs
from tests.executors.executor_plugins import OWN_DEFAULTS_SPEC, SPEC

MakeExecutor = Callable[[], Any]


def run(make_executor: MakeExecutor, dag: HookDAG, **options: Any) -> RunReport:
    report: RunReport = make_executor().run(dag, RunOptions(registry=SPEC, **options))
    return report


def expected_view(dag: HookDAG, node: str) -> dict[str, str]:
    """What a restore hook must see: the new ids its ancestors' main hooks wrote."""
    seen = ancestors(dag.predecessors(), node)
    by_id = {n.id: n for n in dag.nodes}
    return {by_id[p].resource.key: f"restored-{by_id[p].resource.id}"
            for p in seen if by_id[p].hook == "main"}


def _random_dag_settings(executor: str) -> Any:
    examples = 12 if executor in ("serial", "threads") else 4
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("operation", ["restore"])
def test_random_dags_respect_every_edge_and_see_only_ancestors(
    make_executor: MakeExecutor, request: pytest.FixtureRequest, operation: str
) -> None:
    executor = request.node.callspec.params["make_executor"]

    @_random_dag_settings(executor)
    @given(resources=resource_graphs())
    def check(resources: list[dict[str, Any]]) -> None:
        dag = make_dag(resources, operation)
        report = run(make_executor, dag)
        assert report.state == "succeeded"
        out = {node: r.output for node, r in report.hooks.items()}
        for r in report.hooks.values():
            assert r.state == "succeeded" and r.attempts == 1 and len(r.history) == 1
        for e in dag.edges:
            assert out[e.target]["start"] >= out[e.source]["end"], e
        for node in dag.node_ids():
            assert out[node]["seen"] == expected_view(dag, node), node

    check()


def test_tenant_outputs_identical_to_serial(make_executor: MakeExecutor) -> None:
    from protectflow.compiler import compile_plan, load_plan
    from protectflow.plugins import get_registry

    dag = compile_plan(load_plan("examples/tenant.yaml"), "restore",
                       registry=get_registry(SPEC), parameters={})
    timing = ("start", "end", "pid", "thread", "op")

    def outputs(report: RunReport) -> dict[str, Any]:
        return {n: {k: v for k, v in r.output.items() if k not in timing}
                for n, r in report.hooks.items()}

    from protectflow.executors import get_executor

    baseline = get_executor("serial").run(dag, RunOptions(registry=SPEC))
    assert outputs(run(make_executor, dag)) == outputs(baseline)


def _failing_dag(slow: float = 0.3) -> HookDAG:
    # "a0" sorts first: its prepare_begin fails at once while the others'
    # prepare_begin hooks are (on parallel executors) still sleeping.
    resources = [{"type": "OS::Cinder::Volume", "id": "a0"}, *flat(4, prefix="b")]
    params = {"OS::Cinder::Volume": {"prepare_begin_seconds": slow},
              "OS::Cinder::Volume#a0": {"fail": ["prepare_begin"], "prepare_begin_seconds": 0}}
    return make_dag(resources, parameters=params)


def test_fail_fast(make_executor: MakeExecutor) -> None:
    report = run(make_executor, _failing_dag())
    hooks = report.hooks
    assert report.state == "failed"
    failed = hooks["OS::Cinder::Volume#a0/prepare_begin"]
    assert failed.state == "failed" and failed.error is not None
    assert failed.error.type.endswith("SimFailure") and "SimFailure" in failed.error.traceback
    for hook in ("prepare_finish", "main", "complete"):
        assert hooks[f"OS::Cinder::Volume#a0/{hook}"].state == "upstream_failed"
    for i in range(4):
        # Started before the failure was seen (parallel) or never (serial).
        assert hooks[f"OS::Cinder::Volume#b{i}/prepare_begin"].state in (
            "succeeded", "cancelled")
        for hook in ("prepare_finish", "main", "complete"):
            assert hooks[f"OS::Cinder::Volume#b{i}/{hook}"].state == "cancelled"
    assert report.counts()["cancelled"] >= 12


def test_fail_fast_starts_nothing_handed_over_after_the_failure(
    make_executor: MakeExecutor,
) -> None:
    # Twelve slow roots behind one that fails at once: every executor here
    # has at most 4 threads, and those that hand hooks over ahead (dask)
    # must not start any of them once the failure is known.
    resources = [{"type": "OS::Cinder::Volume", "id": "a0"}, *flat(12, prefix="b")]
    params = {"OS::Cinder::Volume": {"prepare_begin_seconds": 0.5},
              "OS::Cinder::Volume#a0": {"fail": ["prepare_begin"], "prepare_begin_seconds": 0}}
    report = run(make_executor, make_dag(resources, parameters=params))
    hooks = report.hooks
    assert hooks["OS::Cinder::Volume#a0/prepare_begin"].state == "failed"
    started = [n for n, r in hooks.items() if r.state == "succeeded"]
    assert len(started) <= 3, started  # those already running beside a0
    assert all(n.endswith("/prepare_begin") for n in started)
    assert report.counts()["cancelled"] == 4 * 13 - 4 - len(started)


def test_keep_going(make_executor: MakeExecutor) -> None:
    report = run(make_executor, _failing_dag(slow=0.0), keep_going=True)
    assert report.state == "failed"
    counts = report.counts()
    assert counts == {"succeeded": 16, "failed": 1, "timed_out": 0, "upstream_failed": 3,
                      "cancelled": 0}


def test_retries_with_backoff(make_executor: MakeExecutor) -> None:
    params = {"OS::Cinder::Volume": {"fail": ["main"], "fail_attempts": 2}}
    dag = make_dag(flat(2), parameters=params)
    events: list[Event] = []
    report = run(make_executor, dag, retries=2, retry_delay=0.01, listeners=[events.append])
    assert report.state == "succeeded"
    main = report.hooks["OS::Cinder::Volume#v0/main"]
    assert main.attempts == 3 and [a.state for a in main.history] == [
        "failed", "failed", "succeeded"]
    assert main.output["attempt"] == 3
    assert main.history[2].start - main.history[1].end >= 0.02  # delay doubled
    assert sum(e.kind == "retried" for e in events) == 4
    assert any("attempt 3" in m for _, _, m in main.log)

    report = run(make_executor, dag, retries=1, retry_delay=0.01)
    assert report.state == "failed"
    mains = [report.hooks[f"OS::Cinder::Volume#v{i}/main"] for i in range(2)]
    # Fail fast: the first to use up its retries stops the run, and a retry
    # not yet made is not made (that hook is reported failed all the same).
    assert all(m.state == "failed" for m in mains)
    assert max(m.attempts for m in mains) == 2


#: How long the hooks of the timeout tests sleep: far past their timeout, so
#: that a run that ended before they could have did not wait for them, on a
#: machine however busy (the timed-out hook's thread is left to sleep it out).
OUTLASTS = 60.0


def test_timeout(make_executor: MakeExecutor) -> None:
    dag = make_dag(flat(1), parameters={"OS::Cinder::Volume": {"main_seconds": OUTLASTS}})
    report = run(make_executor, dag, timeout=0.2)
    main = report.hooks["OS::Cinder::Volume#v0/main"]
    assert report.state == "failed"
    assert main.state == "timed_out" and main.error is not None
    assert main.end is not None and main.start is not None
    assert main.end - main.start < OUTLASTS  # cut at its timeout, not at its end
    assert report.hooks["OS::Cinder::Volume#v0/complete"].state == "upstream_failed"


def test_an_operations_own_timeout(make_executor: MakeExecutor) -> None:
    # No run option names a timeout: the Operation's own (0.3 s) holds.
    # (retries=0 only keeps its own two retries out of the way.)
    dag = make_dag(flat(1), parameters={"OS::Cinder::Volume": {"main_seconds": OUTLASTS}})
    report = make_executor().run(dag, RunOptions(registry=OWN_DEFAULTS_SPEC, retries=0))
    main = report.hooks["OS::Cinder::Volume#v0/main"]
    assert report.state == "failed"
    assert main.state == "timed_out" and main.attempts == 1
    assert main.error is not None and "0.3 s timeout" in main.error.message
    assert report.hooks["OS::Cinder::Volume#v0/complete"].state == "upstream_failed"


def test_an_operations_own_retries(make_executor: MakeExecutor) -> None:
    # No run option names retries: the Operation's own two retries hold.
    params = {"OS::Cinder::Volume": {"fail": ["main"], "fail_attempts": 2}}
    dag = make_dag(flat(1), parameters=params)
    report = make_executor().run(dag, RunOptions(registry=OWN_DEFAULTS_SPEC))
    main = report.hooks["OS::Cinder::Volume#v0/main"]
    assert report.state == "succeeded"
    assert [a.state for a in main.history] == ["failed", "failed", "succeeded"]
    assert main.output["attempt"] == 3


class DurabilityProbe:
    """A journal, and a listener that notes every hook started before the
    success of a hook it depends on was recorded in that journal.

    The first batch holding a success is held back a moment (until a hook
    starts, at most 0.3 s): a run that released a hook's dependents before
    its success is durable starts one of them meanwhile.
    """

    def __init__(self, dag: HookDAG) -> None:
        self.preds = dag.predecessors()
        self.durable: set[str] = set()
        self.early: list[tuple[str, str]] = []
        self.batches = 0
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._held = False

    def record(self, entries: list[JournalEntry]) -> None:
        if not self._held and any(e.event == "succeeded" for e in entries):
            self._held = True
            self._started.clear()
            self._started.wait(0.3)
        with self._lock:
            self.batches += 1
            self.durable.update(e.node for e in entries if e.event == "succeeded")

    def listener(self, event: Event) -> None:
        if event.kind != "started" or event.node is None:
            return
        self._started.set()
        with self._lock:
            self.early += [(p, event.node) for p in self.preds[event.node]
                           if p not in self.durable]


def test_a_success_is_durable_before_its_dependents_start(make_executor: MakeExecutor) -> None:
    dag = make_dag(flat(2), "restore")
    probe = DurabilityProbe(dag)
    report = run(make_executor, dag, journal=probe, listeners=[probe.listener])
    assert report.state == "succeeded"
    assert probe.durable == set(dag.node_ids())
    assert probe.early == []  # (hook, a dependent that started before it was recorded)


def test_cancel(make_executor: MakeExecutor) -> None:
    dag = make_dag(flat(6), parameters={"OS::Cinder::Volume": {"main_seconds": 0.1}})
    cancel = threading.Event()

    def listener(event: Event) -> None:
        if event.kind == "succeeded" and event.node and event.node.endswith("/main"):
            cancel.set()

    report = run(make_executor, dag, cancel=cancel, listeners=[listener])
    assert report.state == "cancelled"
    counts = report.counts()
    assert counts["failed"] == counts["upstream_failed"] == 0
    assert counts["cancelled"] > 0 and counts["succeeded"] > 0
    # Running hooks finished within the grace period: no hook both ran and
    # is reported cancelled.
    assert all(r.history == [] for r in report.hooks.values() if r.state == "cancelled")


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


def test_each_trace_track_runs_one_hook_at_a_time(make_executor: MakeExecutor) -> None:
    # Hooks that overlap in time ran on different threads, so they must be on
    # different tracks: a track is one thread of one process.
    dag = make_dag(flat(6), parameters={"OS::Cinder::Volume": {"main_seconds": 0.1}})
    report = run(make_executor, dag)
    trace = report.to_chrome_trace()["traceEvents"]
    tracks: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in trace:
        if e["ph"] == "X":  # less 1 us: ts and dur are rounded to 0.1 us each
            tracks.setdefault((e["pid"], e["tid"]), []).append(
                (e["ts"], e["ts"] + e["dur"] - 1))
    assert all(_max_overlap(spans) == 1 for spans in tracks.values())
    processes = [e["args"]["name"] for e in trace if e["name"] == "process_name"]
    assert processes and all(re.fullmatch(r"[^/]+:\d+", p) for p in processes)


def test_limits_and_pools(make_executor: MakeExecutor) -> None:
    resources = flat(5) + flat(3, "OS::Glance::Image", "i")
    params = {t: {"main_seconds": 0.05} for t in ("OS::Cinder::Volume", "OS::Glance::Image")}
    dag = make_dag(resources, parameters=params, limits={"OS::Cinder::Volume": 2})
    pools = {"disks": ["OS::Glance::Image", "OS::Cinder::Volume#v0"]}
    report = run(make_executor, dag, limits={"disks": 1}, pools=pools)
    assert report.state == "succeeded"

    def spans(pred: Callable[[str], bool]) -> list[tuple[float, float]]:
        return [(r.output["start"], r.output["end"])
                for r in report.hooks.values() if pred(r.resource)]

    assert _max_overlap(spans(lambda k: k.startswith("OS::Cinder::Volume"))) <= 2
    disks = spans(lambda k: k.startswith("OS::Glance") or k == "OS::Cinder::Volume#v0")
    assert _max_overlap(disks) <= 1


def test_report_and_trace(make_executor: MakeExecutor) -> None:
    import json

    dag = make_dag(flat(2), "restore")
    report = run(make_executor, dag)
    data = json.loads(report.dumps())
    assert data["state"] == "succeeded" and len(data["hooks"]) == 8
    assert data["hooks"][0]["log"][0]["level"] == "info"
    trace = report.to_chrome_trace()
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == 8 and all(e["dur"] >= 0 and e["ts"] >= 0 for e in xs)
    assert {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
