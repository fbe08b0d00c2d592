"""The app plugin: freeze before and thaw after every child's snapshot, always."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from protectflow.bank import Bank
from protectflow.dag.model import Resource
from protectflow.errors import CommandError, LocalPluginError
from protectflow.plugins.builtin import app, fs
from protectflow.plugins.builtin import sqlite as sq
from tests import waits
from tests.plugins.plugin_helpers import make_shop, new_checkpoint, plan_from, run_dag, shopctl
from tests.scripts import ROOT
from tests.waits import wait_until

APP = "protectflow::app::Application#shop"
UPLOADS = "protectflow::fs::Directory#uploads"
ORDERS = "protectflow::sqlite::Database#orders"


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    make_shop.make_shop(str(folder))
    return folder


def shop_plan(folder: Path, **app_extra: Any) -> dict[str, Any]:
    data = make_shop.plan(str(folder))
    state = {"state_dir": str(folder.parent / "freeze-state")}
    data["resources"][0]["extra_info"].update(state, **app_extra)
    return data


def logging_commands(folder: Path) -> dict[str, str]:
    """freeze/thaw that run the shop's own and log when they ran."""
    ctl = f"{shlex.quote(sys.executable)} shopctl.py"
    stamp = f"{shlex.quote(sys.executable)} -c 'import time; print(time.time())'"
    return {"freeze": f"{ctl} freeze . && echo freeze $({stamp}) >> events.log",
            "thaw": f"echo thaw $({stamp}) >> events.log && {ctl} thaw ."}


def events(folder: Path) -> dict[str, float]:
    lines = (folder / "events.log").read_text().split("\n")
    return {w[0]: float(w[1]) for w in (line.split() for line in lines) if w}


@pytest.mark.slow  # a writer that writes for four seconds
def test_freeze_before_and_thaw_after_every_child_snapshot(
        bank: Bank, shop: Path, tmp_path: Path) -> None:
    writer = subprocess.Popen([sys.executable, "shopctl.py", "writer", ".", "--seconds", "4"],
                              cwd=shop, stdout=subprocess.PIPE, text=True)
    time.sleep(0.7)
    cp = new_checkpoint(bank)
    out = run_dag(plan_from(shop_plan(shop, **logging_commands(shop))), "protect", cp)
    assert writer.wait(waits.LIMIT) == 0
    t = events(shop)
    for child in (UPLOADS, ORDERS):
        snap = out[f"{child}/prepare_finish"]
        assert t["freeze"] < snap["started_at"] <= snap.get("finished_at", snap.get(
            "taken_at")) < t["thaw"]
    assert not (shop / "FROZEN").exists()
    # restored together, the orders and the receipts agree: the freeze held
    run_dag(plan_from(shop_plan(shop)), "restore", cp,
            {"protectflow::fs::Directory": {"target": str(tmp_path / "r")},
             "protectflow::sqlite::Database": {"target": str(tmp_path / "r")}})
    restored = tmp_path / "restored-shop"
    restored.mkdir()
    os.rename(tmp_path / "r" / "uploads", restored / "uploads")
    os.rename(tmp_path / "r" / "orders.db", restored / "orders.db")  # its own name
    assert shopctl.check(str(restored)) == []
    assert sq.integrity_check(str(restored / "orders.db")) == "ok"


def test_thaw_runs_when_a_child_snapshot_fails(bank: Bank, shop: Path) -> None:
    data = shop_plan(shop, **logging_commands(shop))
    data["resources"][2]["extra_info"]["path"] = "missing.db"
    cp = new_checkpoint(bank)
    with pytest.raises(LocalPluginError, match="no database file") as info:
        run_dag(plan_from(data), "protect", cp)
    assert f"{APP}/prepare_begin" in info.value.outputs  # type: ignore[attr-defined]
    assert (shop / "FROZEN").exists()  # fail-fast: the thaw hook never ran...
    resource = plan_from(data).resources[0].resource
    out = app.AppProtectionPlugin().on_failure(cp, resource, None, {})
    assert out == {"thawed": True} and not (shop / "FROZEN").exists()  # ...on_failure did
    assert "thaw" in events(shop)
    assert app.AppProtectionPlugin().on_failure(cp, resource, None, {}) == {"thawed": False}


def test_guard_thaws_at_the_deadline(bank: Bank, shop: Path) -> None:
    data = shop_plan(shop, **logging_commands(shop))
    resource = plan_from(data).resources[0].resource
    cp = new_checkpoint(bank)
    app.freeze_app(cp, resource, {"freeze_timeout": 0.5})
    assert "freeze" in events(shop)  # frozen when freeze_app returns...
    wait_until(lambda: not (shop / "FROZEN").exists(), "the guard to thaw")
    t = events(shop)
    assert t["thaw"] - t["freeze"] >= 0.5  # ...and thawed at the deadline, not before
    with pytest.raises(LocalPluginError, match="thawed before its children's snapshots"):
        app.AppProtectOperation().on_prepare_finish(cp, resource, None, {})


@pytest.mark.slow  # a freeze that takes 1.5 s, a thaw 1 s later
def test_freeze_timeout_counts_from_when_the_application_is_frozen(
        bank: Bank, tmp_path: Path) -> None:
    # A freeze command slower than freeze_timeout: the guard must not thaw
    # while it runs (it did when the clock started before the guard did).
    resource = Resource(app.APPLICATION, "slow", extra_info={
        "base_dir": str(tmp_path), "state_dir": str(tmp_path / "state"),
        "freeze": "sleep 1.5 && echo frozen >> events", "thaw": "echo thawed >> events"})
    app.freeze_app(new_checkpoint(bank), resource, {"freeze_timeout": 1.0})
    assert (tmp_path / "events").read_text().startswith("frozen\n")  # no thaw came first
    wait_until(lambda: len((tmp_path / "events").read_text().splitlines()) == 2,
               "the guard to thaw")
    assert (tmp_path / "events").read_text() == "frozen\nthawed\n"


def test_guard_thaws_when_the_freezing_process_dies(shop: Path, tmp_path: Path) -> None:
    data = shop_plan(shop, **logging_commands(shop))
    code = f"""
import json, os
from tests.plugins.plugin_helpers import new_checkpoint, plan_from
from protectflow.bank import Bank
from protectflow.plugins.builtin import app
resource = plan_from(json.loads({json.dumps(json.dumps(data))})).resources[0].resource
app.freeze_app(new_checkpoint(Bank({str(tmp_path / "bank")!r})), resource, {{}})
os._exit(9)  # a crash: no thaw hook, no on_failure
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the child imports the tests package
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 9
    wait_until(lambda: not (shop / "FROZEN").exists(), "the guard to thaw")


def test_lock_file_mode_holds_the_applications_lock(bank: Bank, shop: Path) -> None:
    data = shop_plan(shop, lock_file="shop.lock")
    del data["resources"][0]["extra_info"]["freeze"], data["resources"][0]["extra_info"]["thaw"]
    resource = plan_from(data).resources[0].resource
    cp = new_checkpoint(bank)
    op = app.AppProtectOperation()
    op.on_prepare_begin(cp, resource, None, {})
    fd = os.open(shop / "shop.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        op.on_prepare_finish(cp, resource, None, {})
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    finally:
        os.close(fd)
    op.on_prepare_finish(cp, resource, None, {})  # a rerun is fine


def test_command_failures_are_clear(bank: Bank, shop: Path) -> None:
    resource = Resource(app.APPLICATION, "a", extra_info={
        "base_dir": str(shop), "state_dir": str(shop / "state"),
        "freeze": "echo frozen > FLAG; echo 'cannot talk to the app' >&2; exit 3",
        "thaw": ["rm", "FLAG"]})
    with pytest.raises(CommandError) as info:
        app.freeze_app(new_checkpoint(bank), resource, {})
    message = str(info.value)
    assert "exit code 3" in message and "cannot talk to the app" in message
    assert "echo frozen" in message
    assert not (shop / "FLAG").exists()  # a failed freeze is thawed at once
    bad_thaw = Resource(app.APPLICATION, "b", extra_info={
        "base_dir": str(shop), "state_dir": str(shop / "state"),
        "freeze": ["true"], "thaw": ["sh", "-c", "test -e THAW_OK"]})
    cp = new_checkpoint(bank)
    op = app.AppProtectOperation()
    op.on_prepare_begin(cp, bad_thaw, None, {})
    with pytest.raises(CommandError, match=r"thaw command .*exit code 1"):
        op.on_prepare_finish(cp, bad_thaw, None, {})
    (shop / "THAW_OK").touch()
    op.on_prepare_finish(cp, bad_thaw, None, {})  # the retry thaws


def test_bad_extra_info_is_refused(bank: Bank) -> None:
    for extra in ({}, {"freeze": "x", "thaw": "y", "lock_file": "z"}, {"freeze": 3, "thaw": []}):
        with pytest.raises(LocalPluginError, match="extra_info"):
            app.freeze_app(new_checkpoint(bank), Resource(app.APPLICATION, "x",
                                                          extra_info=extra), {})


def test_fs_snapshot_in_main_when_asked(bank: Bank, shop: Path) -> None:
    cp = new_checkpoint(bank)
    op = fs.FsProtectOperation()
    r = Resource(fs.DIRECTORY, "u", extra_info={"path": str(shop / "uploads")})
    assert op.on_prepare_finish(cp, r, None, {"snapshot_hook": "main"}) is None
    assert op.on_main(cp, r, None, {"snapshot_hook": "main"})["files"] == 3
