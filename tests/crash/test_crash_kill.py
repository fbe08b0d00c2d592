"""A real ``protectflow protect`` killed with SIGKILL where hypothesis says,
then ``protectflow resume``: the checkpoint ends available with the data of an
uninterrupted run, no succeeded hook runs twice, no object is half-written."""

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

from protectflow import cli, operations
from protectflow.bank import Bank
from tests.crash.crash_helpers import (
    check_no_rerun_of_successes,
    check_whole_bank,
    data_objects,
    protect_cli,
    sim_plan,
    the_checkpoint,
)
from tests.scripts import ROOT

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
                    label: str, cwd: Path | None = None) -> Any:
    """Protect with ``faults``; resume if it died. The checkpoint, or None if
    the process died before writing its record."""
    proc = protect_cli(plan, bank, faults=faults, cwd=cwd)
    checkpoint = the_checkpoint(bank)
    if proc.returncode == 0:
        TRIED[f"{label}: past the end"] += 1
        return checkpoint
    assert proc.returncode == -9, proc.stderr
    if checkpoint is None:
        TRIED[f"{label}: killed before the record (nothing to resume)"] += 1
        return None
    code = cli.main(["resume", checkpoint.id, "--bank", str(bank),
                     "--executor", resume_executor])
    assert code == 0
    TRIED[f"{label}: killed and recovered"] += 1
    return checkpoint.reload()


@SETTINGS
@given(data=st.data(), resume_executor=st.sampled_from(["serial", "threads"]))
def test_sim_tenant_killed_then_resumed(sim: tuple[Path, dict[str, Any], int],
                                        workdir: Path, data: Any, resume_executor: str) -> None:
    plan, reference, size = sim
    faults = data.draw(kill_points(SIM_HOOKS, size), label="faults")
    bank = Path(tempfile.mkdtemp(dir=workdir))
    checkpoint = kill_and_resume(plan, bank, faults, resume_executor, "sim")
    if checkpoint is None:
        return
    assert checkpoint.status == "available"
    assert set(s["status"] for s in checkpoint.resources.values()) == {"available"}
    assert data_objects(checkpoint) == reference
    check_whole_bank(Bank(str(bank)))
    check_no_rerun_of_successes(checkpoint)
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
    faults = data.draw(kill_points(12, size), label="faults")
    bank = Path(tempfile.mkdtemp(dir=workdir))
    checkpoint = kill_and_resume(plan, bank, faults, resume_executor, "shop")
    if checkpoint is None:
        return
    assert checkpoint.status == "available"
    check_whole_bank(Bank(str(bank)))
    check_no_rerun_of_successes(checkpoint)
    assert restored(checkpoint.id, bank, bank / "restored") == reference
    shutil.rmtree(bank)
