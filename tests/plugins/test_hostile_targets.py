"""Root restoring into a folder another user controls: refused unless the
operator allows it, and even then nothing that user swaps in -- the target
made a symlink to a root-only folder, the staging file or folder replaced by
a link to a root file -- is ever followed or left in place as a success.

The racing tests run a real second user's process flipping names in a loop
while root restores again and again (a race, so many runs, not one).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank
from protectflow.compiler import parse_plan
from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin import fs
from protectflow.plugins.builtin import sqlite as sq
from tests import needs
from tests.plugins.plugin_helpers import new_checkpoint

RUNS = 25
pytestmark = [pytest.mark.slow, needs.tool("runuser", "util-linux")]  # a second user


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


@pytest.fixture
def shared(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder a second user can reach (pytest's own are 0700)."""
    top = Path(tempfile.mkdtemp(prefix="pf-hostile-"))
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def _as(user: str, script: str, *args: str) -> subprocess.Popen[bytes]:
    """``script`` run by ``user``, in a process group of its own (runuser
    and the shell it starts), so that :func:`_stop` ends both."""
    return subprocess.Popen(["runuser", "-u", user, "--", "/bin/sh", "-c", script, "sh", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the racer: its whole group, the shell runuser started included."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _root_only(shared: Path, rid: str) -> Path:
    """Root's live configuration: ``<shared>/root/<rid>/config``, root-only."""
    live = shared / "root" / rid
    live.mkdir(parents=True)
    os.chmod(shared / "root", 0o700)
    (live / "config").write_text("root's live configuration\n")
    return live / "config"


def _protected_tree(bank: Bank, tmp_path: Path, rid: str) -> tuple[Any, Resource]:
    src = tmp_path / rid
    src.mkdir()
    (src / "config").write_text("an old configuration from the bank\n")
    resource = Resource(fs.DIRECTORY, rid, extra_info={"path": str(src)})
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, resource, {})
    return cp, resource


def _alices_folder(shared: Path, uid: int, gid: int) -> Path:
    folder = shared / "alice"
    folder.mkdir()
    os.chown(folder, uid, gid)
    return folder


# -- refused unless allowed --------------------------------------------------------------------
def test_a_target_another_user_owns_is_refused_naming_the_owner_and_the_option(
        bank: Bank, tmp_path: Path, shared: Path, second_user: tuple[str, int, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    name, uid, gid = second_user
    cp, resource = _protected_tree(bank, tmp_path, "app")
    target = _alices_folder(shared, uid, gid) / "restore"
    with pytest.raises(LocalPluginError, match=rf"owned by {name} .*--allow-other-owner"):
        fs.restore_tree(cp, resource, {"target": str(target)})
    assert os.listdir(shared / "alice") == []  # nothing made in it
    restored = fs.restore_tree(cp, resource, {"target": str(target), "allow_other_owner": True})
    assert Path(restored, "config").read_text() == "an old configuration from the bank\n"
    # the command line: refused, then allowed with --allow-other-owner
    plan = parse_plan(json.dumps({"name": "p", "resources": [
        {"type": fs.DIRECTORY, "id": "app", "extra_info": resource.extra_info}]}),
        source=str(tmp_path / "plan.json"))
    done = operations.protect(plan, bank=bank, executor="serial")
    assert done.ok, done.report
    argv = ["restore", done.checkpoint.id, "--bank", bank.url, "--executor", "serial",
            "--target", str(shared / "alice" / "cli")]
    assert cli.main(argv) == 2  # refused before anything is written, as bad input
    said = "".join(capsys.readouterr())
    assert f"owned by {name}" in said and "--allow-other-owner" in said
    assert not (shared / "alice" / "cli").exists()
    assert cli.main([*argv, "--allow-other-owner"]) == 0


def test_a_symlink_another_user_planted_on_the_way_is_refused(
        bank: Bank, tmp_path: Path, shared: Path, second_user: tuple[str, int, int]) -> None:
    _name, uid, gid = second_user
    config = _root_only(shared, "app")
    cp, resource = _protected_tree(bank, tmp_path, "app")
    alice = _alices_folder(shared, uid, gid)
    os.symlink(shared / "root", alice / "restore")
    os.lchown(alice / "restore", uid, gid)
    with pytest.raises(LocalPluginError, match="symlink in a folder another user can change"):
        fs.restore_tree(cp, resource, {"target": str(alice / "restore"), "force": True,
                                       "allow_other_owner": True})
    assert config.read_text() == "root's live configuration\n"


# -- racing a real second user -----------------------------------------------------------------
def test_a_target_swapped_for_a_link_to_a_root_folder_never_redirects_a_restore(
        bank: Bank, tmp_path: Path, shared: Path, second_user: tuple[str, int, int]) -> None:
    """The second user flips the target between a folder and a symlink to
    root's folder while root restores with --force (and allows the other
    owner): root's configuration never changes, whatever each run says."""
    name, uid, gid = second_user
    config = _root_only(shared, "app")
    cp, resource = _protected_tree(bank, tmp_path, "app")
    alice = _alices_folder(shared, uid, gid)
    target = alice / "restore"
    flip = _as(name, 'while :; do rm -rf "$1"; mkdir "$1"; rm -rf "$1"; ln -s "$2" "$1"; done',
               str(target), str(shared / "root"))
    outcomes: list[str] = []
    try:
        for _ in range(RUNS):
            try:
                fs.restore_tree(cp, resource, {"target": str(target), "force": True,
                                               "allow_other_owner": True})
                outcomes.append("ok")
            except (LocalPluginError, OSError) as err:
                outcomes.append(type(err).__name__)
            assert config.read_text() == "root's live configuration\n", outcomes
            assert os.listdir(shared / "root" / "app") == ["config"], outcomes
    finally:
        _stop(flip)
    assert config.read_text() == "root's live configuration\n"


def _protected_db(bank: Bank, tmp_path: Path) -> tuple[Any, Resource]:
    path = tmp_path / "orders.db"
    con = sqlite3.connect(path)
    con.execute("create table orders (id integer primary key, item text)")
    con.executemany("insert into orders (item) values (?)", [("book",), ("pen",)])
    con.commit()
    con.close()
    resource = Resource(sq.DATABASE, "orders", extra_info={"path": str(path)})
    cp = new_checkpoint(bank)
    params = {"snapshot_dir": str(tmp_path)}
    sq.take_snapshot(cp, resource, params)
    sq.store_snapshot(cp, resource, params)
    return cp, resource


def test_sqlite_staging_swapped_by_another_user_never_leaves_their_link_as_a_success(
        bank: Bank, tmp_path: Path, shared: Path, second_user: tuple[str, int, int]) -> None:
    """The second user replaces every staging name the restore makes in
    their folder (the folder, or a file) with a link to a root-only database
    while root restores again and again: a restore that succeeds has put
    the database it wrote and checked, never the link, and root's database
    is never touched."""
    name, uid, gid = second_user
    root_db = shared / "root" / "live.db"
    root_db.parent.mkdir()
    os.chmod(root_db.parent, 0o700)
    con = sqlite3.connect(root_db)
    con.execute("create table secrets (x)")
    con.commit()
    con.close()
    before = root_db.read_bytes()
    cp, resource = _protected_db(bank, tmp_path)
    target = _alices_folder(shared, uid, gid)
    swap = _as(name, 'cd "$1" || exit 1; while :; do for f in .orders*; do '
               '[ -e "$f" ] || [ -L "$f" ] || continue; '
               'mv -f "$f" "moved-$f" 2>/dev/null; ln -sfn "$2" "$f" 2>/dev/null; '
               'ln -sfn "$2" "$f/database" 2>/dev/null; done; done',
               str(target), str(root_db))
    ok = 0
    try:
        for _ in range(RUNS):
            try:
                dest = Path(sq.restore_database(cp, resource, {
                    "target": str(target), "force": True, "allow_other_owner": True}))
            except (LocalPluginError, OSError):
                continue
            ok += 1
            assert not dest.is_symlink(), "a success left the attacker's link in place"
            con = sqlite3.connect(f"file:{dest}?immutable=1", uri=True)
            try:
                assert con.execute("select item from orders order by id").fetchall() == [
                    ("book",), ("pen",)]
            finally:
                con.close()
    finally:
        _stop(swap)
    assert root_db.read_bytes() == before
    assert ok > 0  # the race did not stop every restore
