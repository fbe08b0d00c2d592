"""The fs plugin restores as exactly as ``tar --xattrs --acls -S -p``: owners,
extended attributes and POSIX ACLs, hard links, holes, FIFOs and devices,
times, set-id bits, paths longer than PATH_MAX."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.compiler import parse_plan
from protectflow.dag.model import Resource
from protectflow.plugins.builtin import fs
from protectflow.plugins.builtin.fs._entries import FileEntry, HardLinkEntry
from protectflow.plugins.builtin.fs._meta import open_dir
from tests import needs
from tests.plugins.plugin_helpers import new_checkpoint, snapshot_tree

ROOT = os.geteuid() == 0
needs_root = needs.root("keeping owners, making devices and a second user")
GIB = 1 << 30


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


def directory(path: Path, rid: str = "files") -> Resource:
    return Resource(fs.DIRECTORY, rid, extra_info={"path": str(path)})


def xattrs_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.pf-probe", b"1")
        os.removexattr(path, "user.pf-probe")
        return True
    except OSError:
        return False


def make_rich_tree(root: Path, owner: tuple[int, int] | None) -> Path:
    """A tree with every kind of thing tar -p --xattrs --acls -S keeps."""
    (root / "sub" / "acl-dir").mkdir(parents=True)
    (root / "plain.txt").write_text("plain\n")
    (root / "sub" / "attrs.bin").write_bytes(os.urandom(5000))
    (root / "setuid-tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "setuid-tool", 0o4755)
    os.link(root / "plain.txt", root / "sub" / "hardlink.txt")
    with open(root / "sparse.img", "wb") as f:  # 1 GiB, a little data at both ends
        f.write(os.urandom(10000))
        f.seek(GIB - 5000)
        f.write(os.urandom(5000))
    os.mkfifo(root / "pipe", 0o640)
    os.symlink("plain.txt", root / "link")
    if ROOT:
        os.mknod(root / "null-dev", 0o620 | stat.S_IFCHR, os.makedev(1, 3))
    if xattrs_supported(root / "plain.txt"):
        os.setxattr(root / "sub" / "attrs.bin", "user.colour", b"blue\0green")
        os.setxattr(root / "sub", "user.note", b"a folder")
        if shutil.which("setfacl"):
            subprocess.run(["setfacl", "-m", "u:daemon:r", str(root / "plain.txt")], check=True)
            subprocess.run(["setfacl", "-d", "-m", "g:daemon:rx", str(root / "sub" / "acl-dir")],
                           check=True)
    if owner is not None:
        os.chown(root / "sub" / "attrs.bin", *owner)
        os.chown(root / "sub", *owner)
        os.chown(root / "link", *owner, follow_symlinks=False)
        os.chown(root / "setuid-tool", owner[0], owner[1])
        os.chmod(root / "setuid-tool", 0o4755)  # chown cleared it
    for i, path in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        t = 1_600_000_000_000_000_000 + i * 1_000_003
        os.utime(path, ns=(t - 7_000_000_000, t), follow_symlinks=False)
    return root


def tar_copy(src: Path, dest: Path) -> None:
    archive = dest.with_suffix(".tar")
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--acls", "-S", "-p", "-cf",
                    str(archive), "-C", str(src), "."], check=True)
    dest.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--acls", "-S", "-p", "-xf",
                    str(archive), "-C", str(dest)], check=True)


def acls(root: Path) -> str:
    out = subprocess.run(["getfacl", "-R", "-p", "--absolute-names", "."], cwd=root,
                         check=True, capture_output=True, text=True)
    return out.stdout


def protect_and_restore(bank: Bank, src: Path, target: Path,
                        **params: object) -> tuple[Path, dict[str, object]]:
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(src), {})
    dest, outcome = fs.restore_with_outcome(cp, directory(src),
                                            {"target": str(target), **params})
    return Path(dest), {"skipped": outcome.skipped, "warnings": outcome.warnings}


@needs.tool("tar", "tar")
def test_restore_matches_tar_xattrs_acls_sparse_same_owner(
        bank: Bank, tmp_path: Path) -> None:
    src = make_rich_tree(tmp_path / "src", None)
    tar_copy(src, tmp_path / "by-tar")
    dest, outcome = protect_and_restore(bank, src, tmp_path / "out")
    assert outcome == {"skipped": [], "warnings": []}
    ours, by_tar = snapshot_tree(dest), snapshot_tree(tmp_path / "by-tar")
    assert ours == by_tar == snapshot_tree(src)
    if shutil.which("getfacl"):
        assert acls(dest) == acls(tmp_path / "by-tar") == acls(src)
    # holes stay holes: no more blocks than tar -S gives (and far fewer than 1 GiB)
    blocks = os.stat(dest / "sparse.img").st_blocks
    assert blocks <= os.stat(tmp_path / "by-tar" / "sparse.img").st_blocks
    assert blocks * 512 < 1 << 20
    assert (dest / "sparse.img").stat().st_size == GIB
    assert os.path.samefile(dest / "plain.txt", dest / "sub" / "hardlink.txt")
    assert stat.S_ISFIFO(os.lstat(dest / "pipe").st_mode)


def test_sparse_file_is_stored_as_its_data_only(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "disk.img", "wb") as f:
        f.seek(GIB // 2)
        f.write(b"middle")
        f.truncate(GIB)
    cp = new_checkpoint(bank)
    out = fs.protect_tree(cp, directory(src), {})
    assert out["new_bytes"] < 1 << 20  # the holes were neither read nor stored
    entry = fs.read_manifest(cp.get_resource_bank_section(directory(src)),
                             directory(src)).get("disk.img")
    assert isinstance(entry, FileEntry) and entry.sparse is not None
    assert entry.size == GIB and sum(n for _, n in entry.sparse) < 1 << 20
    dest = Path(fs.restore_tree(cp, directory(src), {"target": str(tmp_path / "out")}))
    with open(dest / "disk.img", "rb") as f:
        f.seek(GIB // 2)
        assert f.read(6) == b"middle"
    assert os.stat(dest / "disk.img").st_blocks * 512 < 1 << 20


def test_access_and_modification_times_in_nanoseconds(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    os.utime(src / "f", ns=(1_234_567_890_123_456_789, 1_300_000_000_987_654_321))
    dest, _ = protect_and_restore(bank, src, tmp_path / "out")
    st = os.stat(dest / "f")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_234_567_890_123_456_789,
                                                1_300_000_000_987_654_321)


def test_protect_leaves_the_access_times_it_records(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(os.urandom(1000))
    (src / "big").write_bytes(os.urandom(3 << 20))
    for path in (src / "sub" / "f", src / "big", src / "sub"):
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_500_000_000_000_000_000))
    before = {p: os.stat(p).st_atime_ns for p in (src / "sub" / "f", src / "big", src / "sub")}
    fs.protect_tree(new_checkpoint(bank), directory(src), {})
    assert {p: os.stat(p).st_atime_ns for p in before} == before


@pytest.mark.slow  # a second user
@needs_root
def test_owners_and_setuid_come_back_as_root(
        bank: Bank, tmp_path: Path, second_user: tuple[str, int, int]) -> None:
    name, uid, gid = second_user
    src = make_rich_tree(tmp_path / "src", (uid, gid))
    dest, outcome = protect_and_restore(bank, src, tmp_path / "out")
    assert outcome == {"skipped": [], "warnings": []}
    assert os.stat(dest / "sub").st_uid == pwd.getpwnam(name).pw_uid
    assert snapshot_tree(dest) == snapshot_tree(src)
    for rel in ("sub", "sub/attrs.bin", "setuid-tool"):
        assert (os.stat(dest / rel).st_uid, os.stat(dest / rel).st_gid) == (uid, gid)
    assert os.lstat(dest / "link").st_uid == uid
    assert os.stat(dest / "setuid-tool").st_mode & 0o7777 == 0o4755
    assert stat.S_ISCHR(os.lstat(dest / "null-dev").st_mode)
    assert os.lstat(dest / "null-dev").st_rdev == os.makedev(1, 3)
    if shutil.which("tar"):
        tar_copy(src, tmp_path / "by-tar")
        assert snapshot_tree(dest) == snapshot_tree(tmp_path / "by-tar")


@pytest.mark.slow  # a second user
@needs_root
def test_without_owners_set_id_bits_are_dropped(
        bank: Bank, tmp_path: Path, second_user: tuple[str, int, int]) -> None:
    name, uid, gid = second_user
    src = make_rich_tree(tmp_path / "src", (uid, gid))
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(src), {})
    dest = Path(fs.restore_tree(cp, directory(src),
                                {"target": str(tmp_path / "out"), "owners": False}))
    assert os.stat(dest / "setuid-tool").st_uid == os.geteuid()
    assert os.stat(dest / "setuid-tool").st_mode & 0o7777 == 0o755
    # the manifest keeps the numeric ids, and the names, either way
    entry = fs.read_manifest(cp.get_resource_bank_section(directory(src)),
                             directory(src)).get("sub/attrs.bin")
    assert entry is not None
    assert (entry.meta.uid, entry.meta.gid, entry.meta.user) == (uid, gid, name)


@needs_root
def test_devices_not_made_without_root_are_shown_in_the_operation_result(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    os.mknod(src / "null-dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    plan = parse_plan(json.dumps({"name": "devs", "resources": [
        {"type": fs.DIRECTORY, "id": "files", "extra_info": {"path": str(src)}}]}),
        source="<test>.json")
    cid = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # a restore by an unprivileged user
    result = operations.restore(cid, bank=bank, executor="serial",
                                parameters={fs.DIRECTORY: {"target": str(tmp_path / "out")}})
    assert result.ok, result.report
    reason = result.resources[f"{fs.DIRECTORY}#files"].reason or ""
    assert "skipped 1 devices" in reason and "null-dev" in reason
    assert not (tmp_path / "out" / "files" / "null-dev").exists()
    assert (tmp_path / "out" / "files" / "f").read_text() == "x"


def test_paths_longer_than_path_max(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    name = "d" * 200
    depth = 25  # 25 * 201 bytes: beyond PATH_MAX (4096)
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    leaf = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
    os.write(leaf, b"deep down")
    os.close(leaf)
    os.symlink("leaf.txt", "leaf-link", dir_fd=fd)
    os.close(fd)
    dest, outcome = protect_and_restore(bank, src, tmp_path / "out")
    assert outcome == {"skipped": [], "warnings": []}
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    deep = open_dir(root, "/".join([name] * depth))
    try:
        assert os.stat("leaf.txt", dir_fd=deep).st_mode & 0o777 == 0o640
        assert os.readlink("leaf-link", dir_fd=deep) == "leaf.txt"
        leaf = os.open("leaf.txt", os.O_RDONLY, dir_fd=deep)
        assert os.read(leaf, 100) == b"deep down"
        os.close(leaf)
    finally:
        os.close(deep)
        os.close(root)


def test_a_copy_keeps_holes_hard_links_and_xattrs(tmp_path: Path) -> None:
    """Copy renames every chunk and pack under the target bank's key; the
    version 3 entries around them (extents, links, attributes) come through."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "small.txt").write_text("packed with others\n")
    (src / "sub" / "other.txt").write_text("and another\n")
    (src / "big.bin").write_bytes(os.urandom(300_000))
    os.link(src / "big.bin", src / "sub" / "big-again.bin")
    with open(src / "disk.img", "wb") as f:  # data in three chunks, the rest holes
        f.write(os.urandom(100_000))
        f.seek(6 << 20)
        f.write(os.urandom(50_000))
        f.truncate(8 << 20)
    with_xattrs = xattrs_supported(src / "small.txt")
    if with_xattrs:
        os.setxattr(src / "big.bin", "user.colour", b"blue\0green")
        os.setxattr(src / "sub", "user.note", b"a folder")
    plan = parse_plan(json.dumps({"name": "v3", "resources": [
        {"type": fs.DIRECTORY, "id": "files", "extra_info": {"path": str(src)}}],
        "parameters": {fs.DIRECTORY: {"chunk_size": 65536}}}), source="<test>.json")
    bank, other = Bank(tmp_path / "bank", fsync=False), Bank(tmp_path / "bank2", fsync=False)
    cid = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    copied = operations.copy(cid, to=other, bank=bank, executor="serial")
    assert copied.ok and copied.target is not None, copied.report
    assert not set(bank.list_objects("chunks/")) & set(other.list_objects("chunks/"))
    manifest = fs.read_manifest(copied.target.get_resource_bank_section(directory(src)),
                                directory(src))
    link, small, disk = (manifest.get(p) for p in ("sub/big-again.bin", "small.txt", "disk.img"))
    assert isinstance(link, HardLinkEntry) and link.link == "big.bin"
    assert isinstance(small, FileEntry) and small.pack is not None
    assert isinstance(disk, FileEntry) and len(disk.sparse or ()) == 2
    checked = operations.verify(copied.target.id, bank=other, executor="serial")
    assert checked.ok, (checked.problems, checked.resources)
    assert operations.delete(cid, bank=bank, executor="serial").ok
    assert bank.list_objects("chunks/") == []
    params = {fs.DIRECTORY: {"target": str(tmp_path / "out")}}
    restored = operations.restore(copied.target.id, bank=other, executor="serial",
                                  parameters=params)
    assert restored.ok, restored.report
    dest = tmp_path / "out" / "files"
    assert snapshot_tree(dest) == snapshot_tree(src)
    assert os.path.samefile(dest / "big.bin", dest / "sub" / "big-again.bin")
    assert os.stat(dest / "disk.img").st_blocks * 512 < 1 << 20
    if with_xattrs:
        assert os.getxattr(dest / "big.bin", "user.colour") == b"blue\0green"
        assert os.getxattr(dest / "sub", "user.note") == b"a folder"
    # a rerun finds every file's contents already there, named as the copy names them
    (dest / "sub" / "other.txt").chmod(0o644)
    mtime = os.stat(dest / "disk.img").st_mtime_ns
    again = operations.restore(copied.target.id, bank=other, executor="serial",
                               parameters=params)
    assert again.ok, again.report
    assert os.stat(dest / "disk.img").st_mtime_ns == mtime
