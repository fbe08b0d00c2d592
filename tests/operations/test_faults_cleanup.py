"""Faults clean up after themselves (issue 12, item 5), on real folders.

gc frees what it resolves and stale temporary files; a read-only bank is
restored and verified; a full disk fails with exit 1 and leaves nothing
stuck; the index is rebuilt; a corrupt lease is a clear error gc resolves;
a dead local owner's delete or copy is finished at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.catalog.lease import owner_is_dead
from protectflow.dag import ResourceGraph
from protectflow.dag.model import Resource
from protectflow.errors import BankError, CorruptObjectError, NotResumableError
from protectflow.plugins.builtin import fs
from protectflow.states import AVAILABLE, COPYING, DELETED, DELETING, ERROR, PROTECTING
from tests import needs
from tests.operations.test_repository_checks import bank_files, restored, tree_plan

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})


def dead_owner() -> str:
    """``user@host:pid`` of a process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    owner = operations.default_owner().rsplit(":", 1)[0] + f":{proc.pid}"
    assert owner_is_dead(owner)
    return owner


def src_resource(tmp_path: Path) -> Resource:
    """The resource :func:`tree_plan` protects."""
    return Resource(fs.DIRECTORY, "src", "src", {"path": str(tmp_path / "src")})


def test_gc_delete_of_a_killed_protect_leaves_no_chunk_behind(tmp_path: Path) -> None:
    plan = tree_plan(tmp_path)
    bank = Bank(tmp_path / "bank")
    store = CheckpointStore(bank)
    # a protect that stored its data and died before its status changed
    killed = store.create(plan, NO_GRAPH, "fingerprint", "someone@elsewhere:1",
                          lease_ttl=60)
    fs.protect_tree(killed, src_resource(tmp_path), {})
    assert bank_files(bank, "chunks") and bank_files(bank, "refs")
    assert store.gc() == []  # its lease has not expired yet
    report = operations.gc(store, delete=True, now=time.time() + 120)  # now it has
    assert report.changed == (killed.id,) and report.freed_chunks > 0
    assert bank_files(bank, "chunks") == [] and bank_files(bank, "refs") == []
    assert not (Path(bank.url) / "checkpoints" / killed.id / "record").exists()


def test_gc_without_delete_marks_error_and_keeps_the_data_for_resume(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    store = CheckpointStore(bank)
    killed = store.create(tree_plan(tmp_path), NO_GRAPH, "fingerprint", "x@elsewhere:1",
                          lease_ttl=0.5)
    fs.protect_tree(killed, src_resource(tmp_path), {})
    chunks = bank_files(bank, "chunks")
    assert operations.gc(store, now=time.time() + 1).changed == (killed.id,)
    assert store.get(killed.id).status == ERROR and bank_files(bank, "chunks") == chunks


def test_gc_delete_keeps_chunks_another_checkpoint_uses(tmp_path: Path) -> None:
    plan = tree_plan(tmp_path)
    bank = Bank(tmp_path / "bank")
    kept = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    store = CheckpointStore(bank)
    killed = store.create(plan, NO_GRAPH, "fingerprint", "x@elsewhere:1", lease_ttl=0.5)
    fs.protect_tree(killed, src_resource(tmp_path), {})
    chunks = bank_files(bank, "chunks")
    assert operations.gc(store, delete=True, now=time.time() + 1).changed == (killed.id,)
    assert bank_files(bank, "chunks") == chunks
    assert operations.check(kept, bank=bank, read_data=True).ok


def test_gc_removes_stale_temporary_files_only(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    operations.protect(tree_plan(tmp_path), bank=bank, executor="serial")
    folder = Path(bank.url) / "chunks"
    stale, fresh = folder / ".pftmp-stale", folder / ".pftmp-fresh"
    stale.write_bytes(b"left by a killed writer")
    fresh.write_bytes(b"a live writer's")
    long_ago = time.time() - 2 * 3600
    os.utime(stale, (long_ago, long_ago))
    report = operations.gc(operations.open_store(bank))
    assert report.temp_files == 1
    assert not stale.exists() and fresh.exists()


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made read-only: a read-only bind mount as root (root ignores
    modes), its modes otherwise."""
    if os.geteuid() == 0:
        if shutil.which("mount") is None:
            pytest.skip(needs.missing_tool("mount", "mount"))
        try:
            subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True,
                           capture_output=True)
        except subprocess.CalledProcessError as err:
            pytest.skip(f"cannot bind-mount here: {err.stderr.decode().strip()}")
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True,
                           capture_output=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
    for path in modes:
        path.chmod(0o500)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_verify_and_restore_work_on_a_read_only_bank(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(tree_plan(tmp_path), bank=bank, executor="serial").checkpoint.id
    expected = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    with read_only(tmp_path / "bank"):
        ro = Bank(tmp_path / "bank")
        assert not ro.writable()
        result = operations.verify(cid, bank=ro, executor="serial")
        assert result.ok and result.run is None
        assert "read-only" in result.notes[0]
        assert restored(tmp_path, ro, cid, "out") == expected
        assert cli.main(["verify", cid, "--bank", ro.url, "--executor", "serial"]) == 0
        assert "read-only" in capsys.readouterr().err
        assert cli.main(["checkpoints", "list", "--bank", ro.url]) == 0
    assert operations.open_store(bank).get(cid).lease is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, mounted for the test (root only)."""
    if os.geteuid() != 0:
        pytest.skip(needs.missing_root("mounting a small tmpfs to fill"))
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                       check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        pytest.skip(f"cannot mount a tmpfs here: {err}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path, leave_kib: int) -> None:
    """Fill ``disk`` until ``leave_kib`` KiB are free."""
    (disk / "fill").unlink(missing_ok=True)
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    (disk / "fill").write_bytes(b"\0" * max(0, free - leave_kib * 1024))


@pytest.mark.parametrize("leave_kib", [4, 16, 48, 80, 120, 160])
def test_running_out_of_space_fails_with_exit_1_and_leaves_nothing_stuck(
        tmp_path: Path, small_disk: Path, leave_kib: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(4000))
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: full\nresources:\n  - type: protectflow::fs::Directory\n"
                    f"    id: src\n    extra_info: {{path: {src}}}\n")
    bank = str(small_disk / "bank")
    assert cli.main(["protect", str(plan), "--bank", bank, "--executor", "serial"]) == 0
    (src / "a").write_bytes(os.urandom(120_000))  # more than is left
    fill(small_disk, leave_kib)
    code = cli.main(["protect", str(plan), "--bank", bank, "--executor", "serial"])
    err = capsys.readouterr().err
    assert code == 1, err
    (small_disk / "fill").unlink()
    statuses = {c.id: c.status for c in operations.open_store(bank).list(limit=None)}
    assert PROTECTING not in statuses.values()
    assert list(statuses.values()).count(AVAILABLE) == 1


def test_a_lost_index_is_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    plan = tree_plan(tmp_path)
    ids = [operations.protect(plan, bank=bank, executor="serial").checkpoint.id
           for _ in range(3)]
    shutil.rmtree(tmp_path / "bank" / "index")
    store = operations.open_store(bank)
    assert [c.id for c in store.list()] == ids[::-1]  # rebuilt on the way
    assert (tmp_path / "bank" / "index").is_dir()
    assert [c.id for c in store.list(plan="tree")] == ids[::-1]
    shutil.rmtree(tmp_path / "bank" / "index" / "by-plan")
    assert cli.main(["checkpoints", "reindex", "--bank", bank.url]) == 0
    assert "3 index entr" in capsys.readouterr().out
    assert [c.id for c in store.list(plan="tree")] == ids[::-1]


def test_a_corrupt_lease_is_a_clear_error_that_gc_resolves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(tree_plan(tmp_path), bank=bank, executor="serial").checkpoint.id
    leases = sorted((tmp_path / "bank" / "checkpoints" / cid / "lease").iterdir())
    leases[-1].write_bytes(b"not a lease at all")
    with pytest.raises(CorruptObjectError, match=r"lease .* is corrupt.*checkpoints gc"):
        operations.verify(cid, bank=bank, executor="serial")
    assert cli.main(["checkpoints", "show", cid, "--bank", bank.url]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert cli.main(["checkpoints", "gc", "--bank", bank.url]) == 0
    assert "1 corrupt lease(s)" in capsys.readouterr().out
    assert operations.verify(cid, bank=bank, executor="serial").ok


def test_a_dead_local_owners_delete_is_finished_at_once(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    plan = tree_plan(tmp_path)
    cid = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    checkpoint = operations.open_store(bank).get(cid)
    checkpoint.acquire("delete", dead_owner(), ttl=3600)  # killed a second in: far from expiry
    checkpoint.transition(DELETING)
    with pytest.raises(BankError, match="needs a checkpoint that is available"):
        operations.restore(cid, bank=bank, executor="serial",
                           parameters={fs.DIRECTORY: {"target": str(tmp_path / "out")}})
    result = operations.resume(cid, bank=bank, executor="serial")
    assert result.ok and result.checkpoint.reload().status == DELETED
    assert bank_files(bank, "chunks") == []


def test_a_dead_delete_is_finished_by_running_delete_again(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(tree_plan(tmp_path), bank=bank, executor="serial").checkpoint.id
    checkpoint = operations.open_store(bank).get(cid)
    checkpoint.acquire("delete", dead_owner(), ttl=3600)
    checkpoint.transition(DELETING)
    assert operations.delete(cid, bank=bank, executor="serial").ok
    assert operations.open_store(bank).get(cid).status == DELETED


def test_a_dead_copy_is_resolved_at_once_and_resume_says_what_works(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(tree_plan(tmp_path), bank=bank, executor="serial").checkpoint.id
    checkpoint = operations.open_store(bank).get(cid)
    checkpoint.acquire("copy", dead_owner(), ttl=3600)
    checkpoint.transition(COPYING)
    with pytest.raises(NotResumableError, match=r"checkpoints gc.*run the copy .* again"):
        operations.resume(cid, bank=bank, executor="serial")
    assert operations.gc(operations.open_store(bank)).changed == (cid,)
    assert operations.open_store(bank).get(cid).status == AVAILABLE
    copied = operations.copy(cid, to=tmp_path / "other", bank=bank, executor="serial")
    assert copied.ok
