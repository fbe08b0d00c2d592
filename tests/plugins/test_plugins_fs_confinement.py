"""Restores stay inside their target: bad stored paths are refused before
anything is written, nothing follows a planted symlink, staging is private
and removed on failure, force compares contents and keeps the user's files."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from protectflow.bank import Bank
from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin import fs
from protectflow.plugins.builtin import sqlite as sq
from protectflow.plugins.builtin.fs import _restore as _fsrestore
from tests import needs
from tests.plugins.plugin_helpers import make_tree, new_checkpoint, snapshot_tree


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


def directory(path: Path, rid: str = "files") -> Resource:
    return Resource(fs.DIRECTORY, rid, extra_info={"path": str(path)})


def protected(bank: Bank, tmp_path: Path) -> tuple[Any, Resource]:
    src = make_tree(tmp_path / "src")
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(src), {"pack_size": 0})
    return cp, directory(src)


def rewrite_manifest(cp: Any, resource: Resource, change: Any) -> None:
    section = cp.get_resource_bank_section(resource)
    manifest = section.get_object(fs.MANIFEST)  # the JSON, to forge
    change(manifest["entries"])
    section.update_object(fs.MANIFEST, manifest)


def _file(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in entries if e["path"] == "sub/deeper/big.dat")


BAD_PATHS = ["../escape", "/etc/cron.d/evil", "sub/../../escape", "sub//x", "sub/./x",
             "nul\0byte", "", "link-to-big/inside", "text.txt"]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_stored_paths_that_could_escape_are_refused_before_writing(
        bank: Bank, tmp_path: Path, bad: str) -> None:
    cp, resource = protected(bank, tmp_path)

    def plant(entries: list[dict[str, Any]]) -> None:
        entries.append({**_file(entries), "path": bad})  # "text.txt": a duplicate

    rewrite_manifest(cp, resource, plant)
    target = tmp_path / "out"
    with pytest.raises(LocalPluginError, match="refused, nothing was written"):
        fs.restore_tree(cp, resource, {"target": str(target)})
    assert not target.exists() or os.listdir(target) == []
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("change", [
    lambda e: e.append({**_file(e), "path": "x", "link": "nowhere"}),
    lambda e: e.append({**_file(e), "path": "x", "link": "sub"}),
    lambda e: _file(e).update(chunks=["../../../../etc/passwd"]),
    lambda e: _file(e).update(sparse=[[10, 5], [0, 5]]),
    lambda e: _file(e).update(type="socket"),
    lambda e: e.remove(next(x for x in e if x["path"] == "sub")),
])
def test_other_forged_entries_are_refused(bank: Bank, tmp_path: Path, change: Any) -> None:
    cp, resource = protected(bank, tmp_path)
    rewrite_manifest(cp, resource, change)
    with pytest.raises(LocalPluginError, match="refused"):
        fs.restore_tree(cp, resource, {"target": str(tmp_path / "out")})
    assert not (tmp_path / "out" / "files").exists()


def test_staging_is_private_unpredictable_and_removed_when_the_restore_fails(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cp, resource = protected(bank, tmp_path)
    seen: list[tuple[int, str]] = []
    real_build = _fsrestore.build

    def spy(root_fd: int, *args: Any, **kwargs: Any) -> Any:
        seen.append((stat.S_IMODE(os.fstat(root_fd).st_mode), os.listdir(tmp_path / "out")[0]))
        real_build(root_fd, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")  # the disk fills up

    monkeypatch.setattr(_fsrestore, "build", spy)
    with pytest.raises(OSError, match="No space"):
        fs.restore_tree(cp, resource, {"target": str(tmp_path / "out")})
    mode, name = seen[0]
    assert mode == 0o700 and name.startswith(".files.pf-restore-")
    assert cp.id[:12] not in name  # not a name another user could plant in advance
    assert os.listdir(tmp_path / "out") == []  # the failed restore's staging is gone


def test_force_compares_contents_not_stat(bank: Bank, tmp_path: Path) -> None:
    cp, resource = protected(bank, tmp_path)
    target = tmp_path / "out"
    dest = Path(fs.restore_tree(cp, resource, {"target": str(target)}))
    good = (dest / "text.txt").read_bytes()
    st = os.stat(dest / "text.txt")
    (dest / "text.txt").write_bytes(b"HELLO\n")  # same size, same times after utime
    os.utime(dest / "text.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    (dest / "mine.txt").write_text("the user's own")
    # without force: it does not hold the checkpoint's contents, so it is refused
    with pytest.raises(LocalPluginError, match="not empty"):
        fs.restore_tree(cp, resource, {"target": str(target)})
    fs.restore_tree(cp, resource, {"target": str(target), "force": True})
    assert (dest / "text.txt").read_bytes() == good
    assert (dest / "mine.txt").read_text() == "the user's own"


def test_force_replaces_a_planted_symlink_without_following_it(
        bank: Bank, tmp_path: Path) -> None:
    cp, resource = protected(bank, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "deeper").mkdir()
    (victim / "secret.key").write_text("victim's")
    target = tmp_path / "out"
    (target / "files").mkdir(parents=True)
    os.symlink(victim, target / "files" / "sub")  # where the checkpoint has a folder
    os.symlink(victim / "secret.key", target / "files" / "text.txt")
    fs.restore_tree(cp, resource, {"target": str(target), "force": True})
    assert sorted(os.listdir(victim)) == ["deeper", "secret.key"]
    assert os.listdir(victim / "deeper") == []
    assert (victim / "secret.key").read_text() == "victim's"
    assert not (target / "files" / "sub").is_symlink()
    assert snapshot_tree(target / "files") == snapshot_tree(tmp_path / "src")


def test_a_symlink_as_the_destination_is_replaced_not_followed(
        bank: Bank, tmp_path: Path) -> None:
    cp, resource = protected(bank, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    target = tmp_path / "out"
    target.mkdir()
    os.symlink(victim, target / "files")
    with pytest.raises(LocalPluginError, match="not empty"):
        fs.restore_tree(cp, resource, {"target": str(target)})
    fs.restore_tree(cp, resource, {"target": str(target), "force": True})
    assert os.listdir(victim) == [] and not (target / "files").is_symlink()


# -- sqlite ---------------------------------------------------------------------------
def database(path: Path, rid: str) -> Resource:
    return Resource(sq.DATABASE, rid, extra_info={"path": str(path)})


def protected_db(bank: Bank, tmp_path: Path) -> tuple[Any, Resource]:
    import sqlite3

    path = tmp_path / "orders.db"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (42)")
    db.close()
    os.chmod(path, 0o600)
    cp = new_checkpoint(bank)
    params = {"snapshot_dir": str(tmp_path)}
    sq.take_snapshot(cp, database(path, "orders"), params)
    sq.store_snapshot(cp, database(path, "orders"), params)
    return cp, database(path, "orders")


def test_sqlite_keeps_its_name_and_mode(bank: Bank, tmp_path: Path) -> None:
    cp, resource = protected_db(bank, tmp_path)
    dest = sq.restore_database(cp, resource, {"target": str(tmp_path / "out")})
    assert dest == str(tmp_path / "out" / "orders.db")
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert sq.integrity_check(dest) == "ok"


def test_sqlite_restore_follows_no_planted_symlink(bank: Bank, tmp_path: Path) -> None:
    cp, resource = protected_db(bank, tmp_path)
    target = tmp_path / "shared"
    target.mkdir()
    os.chmod(target, 0o1777)  # a folder other users may write in
    victim = tmp_path / "victim"
    victim.write_text("root's own")
    os.chmod(victim, 0o600)
    # the names an attacker could guess: the old staging name and the destination
    os.symlink(victim, target / f"orders.db.pf-restore-{cp.id[:12]}")
    os.symlink(victim, target / "orders.db")
    with pytest.raises(LocalPluginError, match="not empty"):
        sq.restore_database(cp, resource, {"target": str(target)})
    sq.restore_database(cp, resource, {"target": str(target), "force": True})
    assert victim.read_text() == "root's own"
    assert not (target / "orders.db").is_symlink()
    assert sq.integrity_check(str(target / "orders.db")) == "ok"


def test_sqlite_delete_unlinks_no_path_read_from_the_bank(bank: Bank, tmp_path: Path) -> None:
    cp, resource = protected_db(bank, tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    section = cp.get_resource_bank_section(resource)
    section.update_object(sq.SNAPSHOT, {"path": str(victim), "source": "x", "taken_at": 0})
    sq.delete_database(cp, resource)
    sq.SqliteProtectionPlugin().on_failure(cp, resource, None, {})
    assert victim.read_text() == "keep me"


@pytest.mark.slow  # a second user
@needs.tool("runuser", "util-linux")
def test_another_user_cannot_redirect_a_root_restore(
        bank: Bank, tmp_path: Path, second_user: tuple[str, int, int],
        request: pytest.FixtureRequest) -> None:
    """A real second user plants links at the names a restore used to write
    (predictable staging names) in a shared target; root's restores of both
    plugins write only their own files."""
    name = second_user[0]
    cp, resource = protected_db(bank, tmp_path)
    fcp, fresource = protected(bank, tmp_path)
    shared = Path(tempfile.mkdtemp(prefix="pf-shared-"))  # pytest's folders are 0700
    request.addfinalizer(lambda: shutil.rmtree(shared))
    os.chmod(shared, 0o755)
    target = shared / "target"
    target.mkdir()
    os.chmod(target, 0o1777)
    victim = shared / "victim"
    victim.write_text("root's own")
    os.chmod(victim, 0o600)
    for link in (f"orders.db.pf-restore-{cp.id[:12]}", f"orders.pf-restore-{cp.id[:12]}",
                 f".files.pf-restore-{fcp.id[:12]}"):
        subprocess.run(["runuser", "-u", name, "--", "ln", "-s", str(victim),
                        str(target / link)], check=True)
    assert os.lstat(target / f".files.pf-restore-{fcp.id[:12]}").st_uid == second_user[1]
    sq.restore_database(cp, resource, {"target": str(target)})
    fs.restore_tree(fcp, fresource, {"target": str(target)})
    assert victim.read_text() == "root's own" and os.stat(victim).st_uid == 0
    assert sq.integrity_check(str(target / "orders.db")) == "ok"
    assert snapshot_tree(target / "files") == snapshot_tree(tmp_path / "src")
