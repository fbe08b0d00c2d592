"""Helpers of the crash tests: plans, killed runs, and the checks after resume."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.bank.catalog.journal import read_journal
from protectflow.compiler import compile_plan, load_plan
from tests import waits
from tests.crash.recording_plugins import RECORDS, SPEC  # noqa: F401 (SPEC: for the tests)
from tests.scripts import ROOT, load_script

PROTECTFLOW = [sys.executable, "-m", "protectflow.cli"]

#: Protect or resume with the recording plugins, in a process of its own.
#: With ``hold``, the scheduling loop takes in a prepare_begin's success only
#: once its resource's prepare_finish started in this process (a chain that
#: runs where the loop runs has gone on to its next hook).
_OPERATE = """
import json, sys
import tests.crash.recording_plugins as recording_plugins
from protectflow import operations
from protectflow.executors import get_executor
what, target, bank, executor, made, hold = sys.argv[1:7]

def hold_until_the_chain_goes_on(event):
    if event.kind == "succeeded" and event.node.endswith("/prepare_begin"):
        recording_plugins.started(event.node.replace("/prepare_begin", "/prepare_finish")).wait()

runner = get_executor(executor, **json.loads(made))
call = operations.protect if what == "protect" else operations.resume
result = call(target, bank=bank, executor=runner, registry=recording_plugins.SPEC,
              listeners=[hold_until_the_chain_goes_on] if hold == "hold" else [])
sys.exit(0 if result.ok else 1)
"""
PAYLOAD = 50_000  # bytes per volume: a kill lands mid-write often enough


def sim_plan(folder: Path, n: int = 10, seed: int = 3, **params: Any) -> Path:
    """A generated sim tenant (tools/gen_plan.py) storing real objects."""
    plan = load_script("tools/gen_plan.py").generate(n, seed)
    types = sorted({r["type"] for r in plan["resources"]})
    plan["parameters"] = {t: {"payload_bytes": PAYLOAD if "Volume" in t else 1000, **params}
                          for t in types}
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def protect_cli(plan: Path, bank: Path, *, faults: str = "", executor: str = "threads",
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``protectflow protect`` in a subprocess, with ``PROTECTFLOW_FAULTS``."""
    env = {**os.environ, "PROTECTFLOW_FAULTS": faults}
    return subprocess.run([*PROTECTFLOW, "protect", str(plan), "--bank", str(bank),
                           "--executor", executor],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=waits.LIMIT)


def the_checkpoint(bank: Path) -> Checkpoint | None:
    """The one checkpoint of ``bank`` whose record was written, if any."""
    store = CheckpointStore(Bank(str(bank)))
    ids = {k.split("/")[1] for k in store.bank.list_objects("checkpoints/")
           if k.endswith("/record")}
    assert len(ids) <= 1, ids
    return store.get(ids.pop()) if ids else None


def data_objects(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint's plugin data: key (under data/) -> value."""
    base = checkpoint.prefix + "data/"
    bank = checkpoint.bank
    return {k[len(base):]: bank.get_object(k) for k in bank.list_objects(base)}


def check_whole_bank(bank: Bank) -> None:
    """Every object the bank lists reads back whole (no half-written object)."""
    for key in bank.list_objects(""):
        assert not key.rsplit("/", 1)[-1].startswith(".pftmp-"), key
        bank.get_object(key)  # raises on a truncated header


def check_no_rerun_of_successes(checkpoint: Checkpoint) -> tuple[int, int]:
    """No hook a run recorded as succeeded started again in a later run.

    Returns (hooks taken from the journal, hooks run again after the crash).
    """
    runs = [r for r in read_journal(checkpoint) if r.meta.operation == "protect"]
    done: set[str] = set()
    rerun = 0
    for run in runs:
        started = run.started()
        # a broken freeze window is run again on purpose, and says so
        redo = set(run.meta.redo)
        assert redo <= done, sorted(redo - done)
        done -= redo
        assert not started & done, sorted(started & done)
        rerun += len(started) if done or run is not runs[0] else 0
        done |= set(run.succeeded())
    return len(done), rerun


def operate(what: str, target: str | Path, bank: Path, *, records: Path, faults: str = "",
            executor: str = "threads", hold: bool = False,
            **made: Any) -> subprocess.CompletedProcess[str]:
    """``operations.protect(target)`` or ``operations.resume(target)`` in a
    subprocess, with the recording plugins noting each hook in ``records``
    and ``PROTECTFLOW_FAULTS`` set to ``faults``; ``made``: the executor's
    arguments (``get_executor(executor, **made)``); ``hold``: see ``_OPERATE``."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PROTECTFLOW_FAULTS": faults, RECORDS: str(records),
           "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", _OPERATE, what, str(target), str(bank),
                           executor, json.dumps(made), "hold" if hold else "-"],
                          capture_output=True, text=True, env=env, timeout=waits.LIMIT)


def recorded_runs(records: Path) -> dict[int, list[dict[str, Any]]]:
    """The hooks' notes (see ``recording_plugins``) by process id, in the
    order the processes first wrote."""
    runs: dict[int, list[dict[str, Any]]] = {}
    for line in records.read_text().splitlines():
        note = json.loads(line)
        runs.setdefault(note["pid"], []).append(note)
    return runs


def check_no_rerun_by_records(records: Path, plan: Path | str, *,
                              atomic: Iterable[str] = ()) -> dict[int, set[str]]:
    """No hook whose success was certainly recorded ran again, judged from
    what the hooks themselves noted, not from the journal.

    A hook whose dependent started was recorded as succeeded before that
    (durable before release), so no later run may start it again -- unless
    its resource's freeze window may have broken: a resource of an
    ``atomic`` type whose prepare_finish no dependent is known to have
    followed has its prepare_begin and everything after it run again on
    purpose. With no retries, no run starts a hook twice.

    Returns the hooks each run started, by process id.
    """
    dag = compile_plan(load_plan(plan), "protect")
    preds, succs = dag.predecessors(), dag.successors()
    windows = sorted({n.resource.key for n in dag.nodes if n.resource.type in set(atomic)})
    recorded: set[str] = set()
    ever: set[str] = set()
    out = {}
    for pid, run in recorded_runs(records).items():
        started = [n["node"] for n in run if n["event"] == "start"]
        twice = [node for node, count in collections.Counter(started).items() if count > 1]
        assert not twice, f"started twice in one run: {twice}"
        again = recorded & set(started)
        assert not again, f"recorded as succeeded, yet run again: {sorted(again)}"
        out[pid] = set(started)
        ever |= set(started)
        for node in started:
            recorded.update(preds[node])
        for key in windows:
            if not ever & set(succs[f"{key}/prepare_finish"]):
                recorded -= _after(succs, f"{key}/prepare_begin")
    return out


def _after(succs: dict[str, list[str]], node: str) -> set[str]:
    seen = {node}
    stack = [node]
    while stack:
        for s in succs[stack.pop()]:
            if s not in seen:
                seen.add(s)
                stack.append(s)
    return seen
