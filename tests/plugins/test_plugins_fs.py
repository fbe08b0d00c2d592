"""The fs plugin: round trips, dedup, verify, delete, idempotent reruns."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.compiler import parse_plan
from protectflow.dag.model import Resource
from protectflow.errors import ChunkError, LocalPluginError
from protectflow.plugins.builtin import fs
from protectflow.plugins.builtin._chunks import ChunkStore, owner_id, sha256
from tests.plugins.plugin_helpers import count_objects, make_tree, new_checkpoint, snapshot_tree


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def directory(path: Path, rid: str = "files") -> Resource:
    return Resource(fs.DIRECTORY, rid, extra_info={"path": str(path)})


def test_restore_is_byte_and_metadata_identical(bank: Bank, tree: Path, tmp_path: Path) -> None:
    before = snapshot_tree(tree)
    cp = new_checkpoint(bank)
    out = fs.protect_tree(cp, directory(tree), {})
    # all four files are small (under a quarter of pack_size): they share one pack
    assert out["files"] == 4 and out["new_chunks"] == 1 and out["packs"] == 1
    # change the source every way: edit, delete, add, chmod, re-link
    (tree / "text.txt").write_text("changed\n")
    (tree / "sub" / "secret.key").unlink()
    (tree / "new.txt").write_text("new")
    os.chmod(tree / "binary.bin", 0o600)
    os.unlink(tree / "link-to-big")
    os.symlink("text.txt", tree / "link-to-big")
    dest = fs.restore_tree(cp, directory(tree), {"target": str(tmp_path / "out")})
    assert dest == str(tmp_path / "out" / "files")
    assert snapshot_tree(Path(dest)) == before
    assert os.readlink(Path(dest) / "dangling") == "/nonexistent/target"
    assert os.listdir(Path(dest) / "empty") == []


def test_restore_refuses_non_empty_target_unless_forced(
        bank: Bank, tree: Path, tmp_path: Path) -> None:
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(tree), {})
    target = tmp_path / "out"
    (target / "files").mkdir(parents=True)
    (target / "files" / "stray").write_text("x")
    with pytest.raises(LocalPluginError, match=r"not empty.*force"):
        fs.restore_tree(cp, directory(tree), {"target": str(target)})
    fs.restore_tree(cp, directory(tree), {"target": str(target), "force": True})
    # force replaces what the checkpoint holds and leaves the user's own file
    assert (target / "files" / "stray").read_text() == "x"
    restored, data = snapshot_tree(target / "files")
    assert [e for e in restored if e[0] != "stray"] == snapshot_tree(tree)[0]
    assert {k: v for k, v in data.items() if k != "stray"} == snapshot_tree(tree)[1]
    # a rerun (after a crash past the rename) finds the tree restored already
    fs.restore_tree(cp, directory(tree), {"target": str(target)})
    assert not [p for p in os.listdir(target) if p.startswith(".")]  # no staging left


def test_unchanged_tree_writes_no_chunk_and_one_byte_change_writes_one(
        bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(16 * 65536))
    for i in range(20):
        (src / f"small-{i:02}.txt").write_bytes(os.urandom(100))
    params = {"chunk_size": 65536}
    first = fs.protect_tree(new_checkpoint(bank), directory(src), params)
    chunks = count_objects(bank, "chunks/")
    assert first["new_chunks"] == chunks == 16 + 1  # the 20 small files: one pack
    assert first["packs"] == 1
    second = fs.protect_tree(new_checkpoint(bank), directory(src), params)
    assert second["new_chunks"] == 0 and count_objects(bank, "chunks/") == chunks
    assert second["reused_files"] == 21  # not even read again
    with open(src / "big.bin", "r+b") as f:
        f.seek(5 * 65536 + 17)
        f.write(b"\xaa")
    third = fs.protect_tree(new_checkpoint(bank), directory(src), params)
    assert third["new_chunks"] == 1 and count_objects(bank, "chunks/") == chunks + 1
    # a changed small file goes into a new pack of its own; the others keep the old one
    with open(src / "small-07.txt", "r+b") as f:
        f.write(b"\x00")
    cp = new_checkpoint(bank)
    fourth = fs.protect_tree(cp, directory(src), params)
    assert fourth["new_chunks"] == 1 and fourth["new_bytes"] == 100
    assert fourth["packs"] == 2 and fourth["reused_files"] == 20
    assert count_objects(bank, "chunks/") == chunks + 2
    dest = fs.restore_tree(cp, directory(src), {"target": str(tmp_path / "out")})
    assert snapshot_tree(Path(dest)) == snapshot_tree(src)
    # a copy of the tree elsewhere (no earlier manifest to reuse) dedups by
    # content: every large chunk; its small files make one pack, new as a whole
    shutil.copytree(src, tmp_path / "copy", symlinks=True)
    fifth = fs.protect_tree(new_checkpoint(bank), directory(tmp_path / "copy", "c"), params)
    assert fifth["new_chunks"] == 1 and fifth["reused_files"] == 0 and fifth["packs"] == 1
    # and a second copy packs the same way, so it writes nothing
    shutil.copytree(src, tmp_path / "copy2", symlinks=True)
    sixth = fs.protect_tree(new_checkpoint(bank), directory(tmp_path / "copy2", "d"), params)
    assert sixth["new_chunks"] == 0


def test_pack_size_zero_stores_each_file_in_its_own_chunks(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"small-{i:02}.txt").write_bytes(os.urandom(100))
    out = fs.protect_tree(new_checkpoint(bank), directory(src), {"pack_size": 0})
    assert out["new_chunks"] == 20 and out["packs"] == 0


def test_packs_split_at_pack_size(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02}").write_bytes(os.urandom(1000))
    cp = new_checkpoint(bank)
    out = fs.protect_tree(cp, directory(src), {"pack_size": 10_000})
    assert out["packs"] == out["new_chunks"] == 4  # ten files of 1000 bytes each
    dest = fs.restore_tree(cp, directory(src), {"target": str(tmp_path / "out")})
    assert snapshot_tree(Path(dest)) == snapshot_tree(src)


def test_a_lost_pack_is_stored_again_from_the_files(bank: Bank, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(500))
    fs.protect_tree(new_checkpoint(bank), directory(src), {})
    (pack,) = bank.list_objects("chunks/")
    bank.delete_object(pack)  # the bank lost it (the first checkpoint is broken now)
    cp = new_checkpoint(bank)
    out = fs.protect_tree(cp, directory(src), {})
    assert out["new_chunks"] == 1 and out["reused_files"] == 0
    assert bank.list_objects("chunks/") == [pack]  # the same files, the same pack
    assert fs.verify_resource(cp, directory(src), {})["chunks"] == 1
    digest = pack.rsplit("/", 1)[1]
    refs = bank.list_objects(f"refs/{digest[:2]}/{digest}/")
    assert len(refs) == 2  # the first checkpoint's and this one's: no stray ref


def test_include_and_exclude(bank: Bank, tree: Path, tmp_path: Path) -> None:
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(tree), {"include": ["*.txt", "*.dat"], "exclude": ["deeper"]})
    dest = Path(fs.restore_tree(cp, directory(tree), {"target": str(tmp_path / "o")}))
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()
                   and not p.is_symlink())
    assert files == ["text.txt"]
    assert (dest / "empty").is_dir() and not (dest / "sub" / "deeper").exists()


def test_verify_reads_every_chunk(bank: Bank, tree: Path) -> None:
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(tree), {})
    assert fs.verify_resource(cp, directory(tree), {})["chunks"] == 1  # one pack
    manifest = fs.read_manifest(cp.get_resource_bank_section(directory(tree)), directory(tree))
    digest = fs.manifest_chunks(manifest)[0]
    key = f"chunks/{digest[:2]}/{digest}"
    bank.update_object(key, b"rotten")
    with pytest.raises(ChunkError, match="corrupt"):
        fs.verify_resource(cp, directory(tree), {})
    bank.delete_object(key)
    with pytest.raises(ChunkError, match="missing"):
        fs.verify_resource(cp, directory(tree), {})


def test_verify_checks_each_packed_file(bank: Bank, tree: Path) -> None:
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(tree), {})
    section = cp.get_resource_bank_section(directory(tree))
    manifest = fs.read_manifest(section, directory(tree))
    packed = [e.path for e in manifest.file_entries() if e.pack is not None]
    assert packed == ["binary.bin", "sub/deeper/big.dat", "sub/secret.key", "text.txt"]
    forged = manifest.to_json()
    next(e for e in forged["entries"] if e["path"] == "sub/secret.key")["sha256"] = sha256(
        b"something else")
    section.update_object(fs.MANIFEST, forged)
    with pytest.raises(ChunkError, match=r"sub/secret\.key.*do not match"):
        fs.verify_resource(cp, directory(tree), {})


@pytest.mark.parametrize("version", [1, 2])
def test_older_manifest_versions_still_restore(
        bank: Bank, tree: Path, tmp_path: Path, version: int) -> None:
    """Versions 1 (every file in its own chunks) and 2 (no owners, attributes,
    atimes, links, special files or holes) are still read; newer is refused."""
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(tree), {"pack_size": 0})
    section = cp.get_resource_bank_section(directory(tree))
    assert fs.read_manifest(section, directory(tree)).version == 3
    manifest = section.get_object(fs.MANIFEST)
    new_fields = ("uid", "gid", "user", "group", "atime_ns", "xattrs", "dev")
    old = {**manifest, "version": version, "entries": [
        {k: v for k, v in e.items() if k not in new_fields} for e in manifest["entries"]]}
    section.update_object(fs.MANIFEST, old)
    dest = fs.restore_tree(cp, directory(tree), {"target": str(tmp_path / "o")})
    assert snapshot_tree(Path(dest)) == snapshot_tree(tree)
    # a protect after it reuses the older entries
    assert fs.protect_tree(new_checkpoint(bank), directory(tree), {})["new_chunks"] == 0
    section.update_object(fs.MANIFEST, {**manifest, "version": 4})
    with pytest.raises(LocalPluginError, match=r"format version 4.*upgrade"):
        fs.verify_resource(cp, directory(tree), {})


def test_delete_keeps_what_another_checkpoint_needs(
        bank: Bank, tree: Path, tmp_path: Path) -> None:
    a, b = new_checkpoint(bank), new_checkpoint(bank)
    fs.protect_tree(a, directory(tree), {})
    (tree / "only-in-b.txt").write_text("b")
    fs.protect_tree(b, directory(tree), {})
    shared = count_objects(bank, "chunks/") - 1
    out = fs.delete_resource(a, directory(tree))
    assert out["deleted_chunks"] == 0  # b holds every chunk of a
    assert fs.verify_resource(b, directory(tree), {})["chunks"] == shared + 1
    dest = fs.restore_tree(b, directory(tree), {"target": str(tmp_path / "o")})
    assert snapshot_tree(Path(dest)) == snapshot_tree(tree)
    fs.delete_resource(b, directory(tree))
    assert count_objects(bank, "chunks/") == 0 and count_objects(bank, "refs/") == 0
    assert count_objects(bank, "locks/") == 0


def test_hooks_rerun_after_a_crash(bank: Bank, tree: Path) -> None:
    cp = new_checkpoint(bank)
    fs.protect_tree(cp, directory(tree), {})
    fs.protect_tree(cp, directory(tree), {})  # a rerun of the same checkpoint
    fs.delete_resource(cp, directory(tree))
    fs.delete_resource(cp, directory(tree))  # and of its delete
    assert count_objects(bank, "chunks/") == 0
    # a protect that died before committing its manifest: delete finds its refs
    store = ChunkStore(bank, owner_id(cp.id, directory(tree).key))
    store.add(sha256(b"orphan"), b"orphan")
    assert count_objects(bank, "refs/") == 1
    fs.delete_resource(cp, directory(tree))
    assert count_objects(bank, "refs/") == 0 and count_objects(bank, "chunks/") == 0


def test_restore_without_manifest_says_so(bank: Bank, tree: Path, tmp_path: Path) -> None:
    with pytest.raises(LocalPluginError, match="no manifest"):
        fs.restore_tree(new_checkpoint(bank), directory(tree), {"target": str(tmp_path)})


def test_missing_folder_is_a_clear_error(bank: Bank, tmp_path: Path) -> None:
    with pytest.raises(LocalPluginError, match="not a folder"):
        fs.protect_tree(new_checkpoint(bank), directory(tmp_path / "nope"), {})


def test_relative_path_resolves_against_base_dir(bank: Bank, tree: Path) -> None:
    r = Resource(fs.DIRECTORY, "f", extra_info={"path": "src", "base_dir": str(tree.parent)})
    assert fs.protect_tree(new_checkpoint(bank), r, {})["files"] == 4


def test_chunks_and_refs_are_synced_before_the_manifest(
        tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: refs and chunks skip their own fsync, so one bank sync
    must come after the last of them and before the manifest names them."""
    bank = Bank(tmp_path / "durable-bank")  # fsync on
    cp = new_checkpoint(bank)
    section = cp.get_resource_bank_section(directory(tree))
    events: list[tuple[str, int, bool]] = []
    real_sync, real_create = Bank.sync, Bank.create_object

    def create(self: Bank, key: str, value: object, *, durable: bool = True) -> bool:
        if key.startswith(("chunks/", "refs/")):
            events.append(("create", 0, durable))
        return real_create(self, key, value, durable=durable)  # type: ignore[arg-type]

    def sync(self: Bank) -> None:
        events.append(("sync", count_objects(bank, "refs/"), section.has_object(fs.MANIFEST)))
        real_sync(self)

    monkeypatch.setattr(Bank, "create_object", create)
    monkeypatch.setattr(Bank, "sync", sync)
    fs.protect_tree(cp, directory(tree), {})
    syncs = [i for i, e in enumerate(events) if e[0] == "sync"]
    assert syncs and syncs[-1] == len(events) - 1  # no chunk or ref after the last sync
    _, refs, had_manifest = events[-1]
    assert refs > 0 and not had_manifest
    assert section.has_object(fs.MANIFEST)
    assert not any(durable for kind, _, durable in events if kind == "create")


def test_a_file_rewritten_with_its_size_and_mtime_put_back_is_read_again(
        tmp_path: Path) -> None:
    # Size and mtime can be put back (tar, rsync -t, a careless tool); ctime
    # and the inode cannot: a re-protect must store the new bytes, whether
    # the file went into a pack (small) or into chunks of its own (large).
    src = tmp_path / "src"
    src.mkdir()
    files = {"small.txt": os.urandom(100), "large.bin": os.urandom(3 << 20)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    plan = parse_plan(json.dumps({
        "name": "files", "resources": [{"type": fs.DIRECTORY, "id": "files",
                                        "extra_info": {"path": str(src)}}]}),
        source="plan.json")
    bank = Bank(tmp_path / "bank", fsync=False)
    assert operations.protect(plan, bank=bank, executor="serial").ok
    for name, data in files.items():
        path = src / name
        before = path.stat()
        files[name] = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        with open(path, "r+b") as f:  # in place: the same inode, the same size
            f.write(files[name][:64])
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_mtime_ns == before.st_mtime_ns
    second = operations.protect(plan, bank=bank, executor="serial")
    assert second.ok
    target = tmp_path / "restored"
    params = {fs.DIRECTORY: {"target": str(target)}}
    assert operations.restore(second.checkpoint.id, bank=bank, executor="serial",
                              parameters=params).ok
    for name, data in files.items():
        assert (target / "files" / name).read_bytes() == data, name
