"""Helpers of the crash tests: plans, killed runs, and the checks after resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.bank.journal import read_journal
from tests.scripts import load_script

PROTECTFLOW = [sys.executable, "-m", "protectflow.cli"]
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
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


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
    runs = [r for r in read_journal(checkpoint) if r.meta["operation"] == "protect"]
    done: set[str] = set()
    rerun = 0
    for run in runs:
        started = run.started()
        # a broken freeze window is run again on purpose, and says so
        redo = set(run.meta.get("redo", ()))
        assert redo <= done, sorted(redo - done)
        done -= redo
        assert not started & done, sorted(started & done)
        rerun += len(started) if done or run is not runs[0] else 0
        done |= set(run.succeeded())
    return len(done), rerun
