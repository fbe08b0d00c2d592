"""The executors' entry points, options and the loop's invariants."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protectflow.errors import ExecutorError, MissingDependencyError
from protectflow.executors import RunOptions, available_executors, get_executor, run_dag
from protectflow.executors._views import Views
from tests import waits
from tests.executors.dags import ancestors, flat, make_dag, resource_graphs
from tests.executors.executor_plugins import SPEC
from tests.waits import wait_until


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


def test_dask_runs_chains_on_its_runners(dask_procs: Any) -> None:
    # chain > 1: each chain runs where its head runs, views and all.
    from protectflow.compiler import compile_plan, load_plan
    from protectflow.plugins import get_registry

    dag = compile_plan(load_plan("examples/tenant.yaml"), "restore",
                       registry=get_registry(SPEC), parameters={})
    chained = get_executor("dask", client=dask_procs, chain=4).run(
        dag, RunOptions(registry=SPEC))
    serial = get_executor("serial").run(dag, RunOptions(registry=SPEC))
    assert chained.state == "succeeded"
    for node, record in serial.hooks.items():
        assert chained.hooks[node].output["seen"] == record.output["seen"], node
    same_thread = [(e.source, e.target) for e in dag.edges
                   if chained.hooks[e.source].history[0].worker
                   == chained.hooks[e.target].history[0].worker
                   and chained.hooks[e.target].start - chained.hooks[e.source].end < 0.001]
    assert same_thread  # some hooks did run as one chain


def test_dask_runners_are_kept_per_client_and_their_threads_end_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from distributed import Client, LocalCluster

    from protectflow.executors import _dask_runners as dask_executor

    monkeypatch.setattr(dask_executor, "_IDLE", 0.3)
    monkeypatch.setattr(dask_executor, "_POLL", 0.2)  # polls come back empty, and go on

    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        [address] = client.nthreads()

        def hook_threads() -> int:  # this worker's runner's, in this process
            return sum(t.name.startswith(f"protectflow-hook {address} #")
                       for t in threading.enumerate())

        executor = get_executor("dask", client=client)
        first = executor.run(make_dag(flat(6)), RunOptions(registry=SPEC))
        runners = dask_executor._POOLS[client.id]
        assert 0 < hook_threads() <= 3
        second = executor.run(make_dag(flat(6)), RunOptions(registry=SPEC))
        assert dask_executor._POOLS[client.id] is runners and len(runners.handles) == 1
        assert first.state == second.state == "succeeded"
        wait_until(lambda: hook_threads() == 0, "the idle runner's hook threads to end")
        # and they come back for the next run
        assert executor.run(make_dag(flat(2)), RunOptions(registry=SPEC)).state == "succeeded"
    # a closed client's runners go at the next run on another client
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as other:
        assert get_executor("dask", client=other).run(
            make_dag(flat(1)), RunOptions(registry=SPEC)).state == "succeeded"
        assert other.id in dask_executor._POOLS and client.id not in dask_executor._POOLS


class _LateRunner:
    """A runner's future that is not ready for its first ``late`` looks."""

    def __init__(self, late: int) -> None:
        self.late = late

    def result(self, timeout: float) -> str:
        if self.late:
            self.late -= 1
            raise TimeoutError(f"not ready within {timeout} s")
        return "the runner"


def test_a_runner_is_awaited_until_it_starts_or_its_worker_leaves() -> None:
    from types import SimpleNamespace

    from protectflow.executors._dask_runners import _Runners

    # A busy worker: however many looks it takes, the runner is waited for...
    there = _Runners(SimpleNamespace(nthreads=lambda: {"tcp://w:1": 2}))
    assert there._started("tcp://w:1", _LateRunner(5)) == "the runner"
    # ...while its worker is in the cluster.
    gone = _Runners(SimpleNamespace(nthreads=lambda: {"tcp://other:1": 2}))
    with pytest.raises(ExecutorError, match="tcp://w:1 left the cluster before"):
        gone._started("tcp://w:1", _LateRunner(1))


def test_a_scheduler_that_accepts_a_connection_is_given_time_to_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Not connect_timeout: a busy scheduler that is there may take longer to
    # answer; distributed's own connect timeout bounds the handshake.
    import distributed

    made: list[dict[str, Any]] = []

    def client(address: str, **kwargs: Any) -> Any:
        made.append(kwargs)
        return contextlib.nullcontext()

    monkeypatch.setattr(distributed, "Client", client)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        address = f"tcp://127.0.0.1:{listening.getsockname()[1]}"
        with get_executor("dask", scheduler=address, connect_timeout=0.5)._connect():
            pass
    assert made == [{"set_as_default": False}]  # no timeout of 0.5 s


def test_unreachable_scheduler() -> None:
    with pytest.raises(ExecutorError, match="cannot reach the dask scheduler"):
        run_dag(make_dag(flat(1)), "dask", scheduler="tcp://127.0.0.1:9", connect_timeout=0.5)


def test_listener_errors_do_not_break_a_run() -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("boom")

    with pytest.warns(UserWarning, match="boom"):
        report = run_dag(make_dag(flat(1)), "serial", registry=SPEC, listeners=[broken])
    assert report.state == "succeeded"


def _chain_run(dag: Any, *, capacity: int = 4, defer: bool = False,
               **options: Any) -> tuple[Any, list[list[str]]]:
    """Run ``dag`` through the loop with a submit that takes chains, as the
    dask executor's does, running each chain at once in this thread (with
    ``defer``, all but a batch's first in threads that wait for the halt);
    the second value lists the hooks of each chain that was handed over."""
    from protectflow.executors._loop import run_loop
    from protectflow.executors.instances import Instances
    from protectflow.executors.invoke import invoke_chain

    chains: list[list[str]] = []
    instances = Instances(SPEC)
    halted = threading.Event()
    threads: list[threading.Thread] = []

    def later(call: Any, done: Any) -> None:
        halted.wait(waits.LIMIT)  # bounded: a broken test must not leave the thread behind
        invoke_chain(call, done, halted.is_set, instances=instances)

    def submit(calls: list[Any], done: Any) -> None:
        for k, call in enumerate(calls):
            chains.append([c.node.id for c in (call, *call.then)])
            if defer and k:
                threads.append(threading.Thread(target=later, args=(call, done), daemon=True))
                threads[-1].start()
            else:
                invoke_chain(call, done, halted.is_set, instances=instances)

    report = run_loop(dag, RunOptions(registry=SPEC, **options), submit=submit,
                      capacity=capacity, executor="chains", chain=4, halt=halted.set)
    for thread in threads:
        thread.join()
    return report, chains


def test_chains_fuse_single_predecessor_hooks_and_keep_views() -> None:
    dag = make_dag([{"type": "OS::Nova::Server", "id": "s",
                     "depends_on": ["OS::Cinder::Volume#v"]},
                    {"type": "OS::Cinder::Volume", "id": "v"}], "restore")
    report, chains = _chain_run(dag)
    assert report.state == "succeeded"
    assert max(map(len, chains)) > 1
    handed = [h for chain in chains for h in chain]
    assert sorted(handed) == sorted(dag.node_ids())  # each hook handed over once
    preds = dag.predecessors()
    for chain in chains:  # each link's one predecessor is the hook before it
        assert all(preds[b] == [a] for a, b in itertools.pairwise(chain))
    for node, record in report.hooks.items():
        assert record.attempts == 1
        seen = record.output["seen"]
        wrote = {report.hooks[p].resource for p in ancestors(preds, node)
                 if p.endswith("/main")}
        assert set(seen) == wrote, node


@settings(max_examples=25, deadline=None)
@given(resources=resource_graphs(), operation=st.sampled_from(["protect", "restore"]))
def test_chains_keep_each_resource_on_one_runner(resources: list[dict[str, Any]],
                                                 operation: str) -> None:
    # A chain runs where its head's resource lives (the dask executor's
    # runners): it may take in a resource none of whose hooks went anywhere
    # yet, never one that lives with another chain's runner.
    dag = make_dag(resources, operation)
    report, chains = _chain_run(dag)
    assert report.state == "succeeded"
    resource = {n.id: n.resource.key for n in dag.nodes}
    home: dict[str, int] = {}
    for number, chain in enumerate(chains):
        where = home.get(resource[chain[0]], number)
        for node in chain:
            assert home.setdefault(resource[node], where) == where, (chain, home)


def test_chains_stop_at_failure_and_after_halt() -> None:
    # a0's chain runs first and fails at once; b0's was handed over with it
    # and starts after the failure was seen: it starts no hook, not even its
    # first (a task that waited in a worker's queue starts nothing).
    resources = [{"type": "OS::Cinder::Volume", "id": "a0"}, *flat(1, prefix="b")]
    params = {"OS::Cinder::Volume#a0": {"fail": ["prepare_begin"]}}
    report, chains = _chain_run(make_dag(resources, parameters=params), capacity=2,
                                defer=True)
    assert report.state == "failed" and [len(c) for c in chains] == [4, 4]
    states = {n: r.state for n, r in report.hooks.items()}
    assert states == {
        **{f"OS::Cinder::Volume#a0/{h}": "upstream_failed"
           for h in ("prepare_finish", "main", "complete")},
        "OS::Cinder::Volume#a0/prepare_begin": "failed",
        **{f"OS::Cinder::Volume#b0/{h}": "cancelled"
           for h in ("prepare_begin", "prepare_finish", "main", "complete")},
    }
    assert all(not r.history for r in report.hooks.values() if r.state == "cancelled")


def test_chains_retry_a_failed_link_as_a_new_chain() -> None:
    params = {"OS::Cinder::Volume": {"fail": ["main"], "fail_attempts": 1}}
    report, chains = _chain_run(make_dag(flat(1), parameters=params), retries=1,
                                retry_delay=0.001)
    assert report.state == "succeeded"
    main = report.hooks["OS::Cinder::Volume#v0/main"]
    assert [a.state for a in main.history] == ["failed", "succeeded"]
    assert chains == [["OS::Cinder::Volume#v0/" + h for h in
                       ("prepare_begin", "prepare_finish", "main", "complete")],
                      ["OS::Cinder::Volume#v0/main", "OS::Cinder::Volume#v0/complete"]]


def test_no_chain_takes_a_limited_hook() -> None:
    dag = make_dag(flat(2), limits={"OS::Cinder::Volume": 1})
    report, chains = _chain_run(dag)
    assert report.state == "succeeded" and all(len(c) == 1 for c in chains)


class _LinkJournal:
    """A run journal in memory whose writes from where a chain runs fail."""

    def __init__(self) -> None:
        self.entries: list[Any] = []

    def record(self, entries: list[Any]) -> None:
        self.entries.extend(entries)

    def record_link(self, name: str, entries: list[Any]) -> None:
        raise OSError("the bank is unreachable from here")


def test_a_chain_link_journal_write_that_fails_is_reported_and_the_loop_goes_on() -> None:
    journal = _LinkJournal()
    report, chains = _chain_run(make_dag(flat(1)), journal=journal)
    assert report.state == "succeeded"
    # Each chain stops after its head; the loop records that success itself
    # and starts the rest as a new chain.
    assert [len(c) for c in chains] == [4, 3, 2, 1]
    for hook in ("prepare_begin", "prepare_finish", "main"):
        warned = [m for _, level, m in report.hooks[f"OS::Cinder::Volume#v0/{hook}"].log
                  if level == "warning"]
        assert len(warned) == 1 and "the bank is unreachable from here" in warned[0], hook
    assert all(r.attempts == 1 for r in report.hooks.values())
    succeeded = [e.node for e in journal.entries if e.event == "succeeded"]
    assert sorted(succeeded) == sorted(report.hooks)
