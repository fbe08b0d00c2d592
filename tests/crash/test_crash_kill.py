"""A real protect killed with SIGKILL where hypothesis says, then resumed: the
checkpoint ends available with the data of an uninterrupted run, no hook
whose success was recorded runs again, no object is half-written.

Every kill point drawn lies within the run, so every run must die; what ran
is known from the hooks' own notes (``recording_plugins``), not from the
journal the resume reads."""

from __future__ import annotations

import collections
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protectflow import operations
from protectflow.bank import Bank
from tests.crash.crash_helpers import (
    RECORDS,
    ROOT,
    SPEC,
    check_no_rerun_by_records,
    check_whole_bank,
    data_objects,
    operate,
    sim_plan,
    the_checkpoint,
)

pytestmark = pytest.mark.slow  # a protect in a process of its own killed per example

#: Kill points tried, by plan and outcome; printed at the end (pytest -s).
TRIED: collections.Counter[str] = collections.Counter()
SIM_HOOKS = 40  # 10 resources x 4 hooks
# 40 kill points on the sim tenant and 25 on the shop: 65 per run.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def kill_points(hooks: int, max_bytes: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(1, hooks - 1).map(lambda n: f"kill-after-hooks={n}"),
        st.integers(1, hooks - 1).map(lambda n: f"kill-before-journal={n}"),
        st.integers(1, max_bytes).map(lambda n: f"kill-mid-write={n}"),
    )


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pf-crash-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
    print(f"\nkill points tried: {dict(sorted(TRIED.items()))}")


@pytest.fixture(scope="module")
def sim(workdir: Path) -> tuple[Path, dict[str, Any], int]:
    plan = sim_plan(workdir)
    result = operations.protect(plan, bank=workdir / "sim-reference", executor="serial")
    assert result.ok
    size = sum(p.stat().st_size for p in (workdir / "sim-reference").rglob("*") if p.is_file())
    return plan, data_objects(result.checkpoint), size


def kill_and_resume(plan: Path, bank: Path, faults: str, resume_executor: str,
                    label: str) -> tuple[Any, Path]:
    """Protect with ``faults``, which must kill it; resume if it got as far as
    writing its checkpoint's record. The checkpoint (or None) and the file of
    the hooks' notes."""
    records = Path(tempfile.mkstemp(dir=bank.parent, prefix="records-")[1])
    proc = operate("protect", plan, bank, records=records, faults=faults)
    assert proc.returncode == -9, f"{faults} did not kill the protect: {proc.stderr}"
    checkpoint = the_checkpoint(bank)
    if checkpoint is None:
        TRIED[f"{label}: killed before the record (nothing to resume)"] += 1
        return None, records
    os.environ[RECORDS] = str(records)
    try:
        result = operations.resume(checkpoint.id, bank=bank, executor=resume_executor,
                                   registry=SPEC)
    finally:
        del os.environ[RECORDS]
    assert result.ok, result.report.failed()
    TRIED[f"{label}: killed and recovered"] += 1
    return checkpoint.reload(), records


@SETTINGS
@given(data=st.data(), resume_executor=st.sampled_from(["serial", "threads"]))
def test_sim_tenant_killed_then_resumed(sim: tuple[Path, dict[str, Any], int],
                                        workdir: Path, data: Any, resume_executor: str) -> None:
    plan, reference, size = sim
    # Half the bytes an uninterrupted run leaves in its bank: a run writes
    # more than that, whatever its executor and however its journal batches.
    faults = data.draw(kill_points(SIM_HOOKS, size // 2), label="faults")
    bank = Path(tempfile.mkdtemp(dir=workdir))
    checkpoint, records = kill_and_resume(plan, bank, faults, resume_executor, "sim")
    runs = check_no_rerun_by_records(records, plan)
    if checkpoint is None:
        return
    assert checkpoint.status == "available"
    assert {s.status for s in checkpoint.resources.values()} == {"available"}
    assert data_objects(checkpoint) == reference
    check_whole_bank(Bank(str(bank)))
    assert len(set().union(*runs.values())) == SIM_HOOKS
    if faults.startswith("kill-after-hooks="):
        # it died once that many ends were recorded: the resume ran the rest
        resumed = runs[os.getpid()]
        assert len(resumed) <= SIM_HOOKS - int(faults.partition("=")[2]), len(resumed)
    shutil.rmtree(bank)


# -- the shop example --------------------------------------------------------------

SHOP = ROOT / "examples" / "shop" / "make_shop.py"


@pytest.fixture(scope="module")
def shop(workdir: Path) -> tuple[Path, dict[str, Any], int]:
    import subprocess
    import sys

    app = workdir / "shop"
    subprocess.run([sys.executable, str(SHOP), str(app)], check=True, capture_output=True)
    plan = app / "plan.yaml"
    result = operations.protect(plan, bank=workdir / "shop-reference", executor="serial")
    assert result.ok, result.report.failed()
    size = sum(p.stat().st_size for p in (workdir / "shop-reference").rglob("*") if p.is_file())
    return plan, restored(result.checkpoint.id, workdir / "shop-reference",
                          workdir / "shop-restored-ref"), size


def restored(checkpoint_id: str, bank: Path, target: Path) -> dict[str, Any]:
    """Restore the shop into ``target``; its files and its orders."""
    params = {"protectflow::fs::Directory": {"target": str(target)},
              "protectflow::sqlite::Database": {"target": str(target)}}
    result = operations.restore(checkpoint_id, bank=bank, parameters=params, executor="serial")
    assert result.ok, result.report.failed()
    files: dict[str, Any] = {}
    orders = None
    for path in sorted(target.rglob("*")):
        rel = str(path.relative_to(target))
        if path.is_symlink():
            files[rel] = ("link", os.readlink(path))
        elif path.is_file() and (path.suffix == ".db" or path.name == "orders"):
            db = sqlite3.connect(path)
            orders = db.execute("SELECT id, customer, total_cents FROM orders").fetchall()
            db.close()
        elif path.is_file():
            files[rel] = path.read_bytes()
    return {"files": files, "orders": orders}


@settings(SETTINGS, max_examples=25)
@given(data=st.data(), resume_executor=st.sampled_from(["serial", "threads"]))
def test_shop_killed_then_resumed(shop: tuple[Path, dict[str, Any], int], workdir: Path,
                                  data: Any, resume_executor: str) -> None:
    plan, reference, size = shop
    faults = data.draw(kill_points(12, size // 2), label="faults")
    bank = Path(tempfile.mkdtemp(dir=workdir))
    checkpoint, records = kill_and_resume(plan, bank, faults, resume_executor, "shop")
    # the application's freeze window may break: then it runs again from its
    # prepare_begin, on purpose
    runs = check_no_rerun_by_records(records, plan, atomic=["protectflow::app::Application"])
    if checkpoint is None:
        return
    assert checkpoint.status == "available"
    assert len(set().union(*runs.values())) == 12
    check_whole_bank(Bank(str(bank)))
    assert restored(checkpoint.id, bank, bank / "restored") == reference
    shutil.rmtree(bank)
