"""What restores promise, pinned through the operations: an "already
restored" destination is judged by its contents and its holes, the staging
folder's name is not predictable, a packed file is checked against its hash,
a pack holds only its files' bytes, and a manifest entry naming a parent
folder is refused for what it is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.compiler import Plan, parse_plan
from protectflow.errors import PreflightError
from protectflow.operations import OperationResult

FS = "protectflow::fs::Directory"
MANIFEST = "manifest"


# -- helpers ---------------------------------------------------------------------------
def fs_plan(tmp_path: Path, *folders: str) -> Plan:
    """A plan protecting each folder of ``tmp_path`` named, as resource of that id."""
    return parse_plan(json.dumps({"name": "pinned", "resources": [
        {"type": FS, "id": name, "extra_info": {"path": str(tmp_path / name)}}
        for name in folders]}), source=str(tmp_path / "plan.json"))


def protect(tmp_path: Path, *folders: str, **parameters: Any) -> tuple[Bank, str]:
    bank = Bank(tmp_path / "bank", fsync=False)
    result = operations.protect(fs_plan(tmp_path, *folders), bank=bank, executor="serial",
                                parameters={FS: parameters} if parameters else None)
    assert result.ok, result.report
    return bank, result.checkpoint.id


def restore(bank: Bank, checkpoint_id: str, target: Path, **parameters: Any) -> OperationResult:
    return operations.restore(checkpoint_id, bank=bank, executor="serial",
                              parameters={FS: {"target": str(target), **parameters}})


def section(bank: Bank, checkpoint_id: str, rid: str) -> Any:
    return operations.open_store(bank).get(checkpoint_id).get_resource_bank_section(
        f"{FS}#{rid}")


def manifest(bank: Bank, checkpoint_id: str, rid: str = "src") -> dict[str, Any]:
    found: dict[str, Any] = section(bank, checkpoint_id, rid).get_object(MANIFEST)
    return found


def chunk_key(digest: str) -> str:
    return f"chunks/{digest[:2]}/{digest}"


@contextlib.contextmanager
def times_kept(path: Path) -> Iterator[None]:
    """Put the times of ``path`` back after the block changed it."""
    st = os.stat(path)
    yield
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- "already restored" is judged by contents ---------------------------------------------
@pytest.mark.parametrize("pack_size", [0, 4 << 20], ids=["chunked", "packed"])
def test_a_destination_differing_only_in_content_is_not_taken_for_restored(
        tmp_path: Path, pack_size: int) -> None:
    (tmp_path / "src").mkdir()
    original = os.urandom(3000)
    (tmp_path / "src" / "data.bin").write_bytes(original)
    bank, cid = protect(tmp_path, "src", pack_size=pack_size)
    target = tmp_path / "out"
    assert restore(bank, cid, target).ok
    assert restore(bank, cid, target).ok  # a rerun over its own work is fine
    restored = target / "src" / "data.bin"
    edited = bytes(b ^ 0xFF for b in original[:10]) + original[10:]
    with times_kept(restored), open(restored, "r+b") as f:  # in place: the folder's
        f.write(edited[:10])                                 # times stay too
    folder = os.stat(target / "src")
    assert restored.read_bytes() == edited and restored.stat().st_size == len(original)
    with pytest.raises(PreflightError, match="not empty"):
        restore(bank, cid, target)
    assert restored.read_bytes() == edited  # refused before anything was written
    assert os.stat(target / "src").st_mtime_ns == folder.st_mtime_ns
    assert restore(bank, cid, target, force=True).ok
    assert restored.read_bytes() == original


def _holes_supported(folder: Path) -> bool:
    probe = folder / "probe"
    with open(probe, "wb") as f:
        f.truncate(8 << 20)
        f.write(b"x")
    try:
        return os.stat(probe).st_blocks * 512 < 1 << 20
    finally:
        probe.unlink()


def test_a_dense_copy_of_a_sparse_file_is_written_sparse_again(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    if not _holes_supported(src):
        pytest.skip(f"the file system of {tmp_path} keeps no holes; run the tests with "
                    "--basetemp on ext4, xfs, btrfs or tmpfs")
    size = 8 << 20
    with open(src / "disk.img", "wb") as f:  # data at both ends, a hole between
        f.write(os.urandom(4096))
        f.seek(size - 4096)
        f.write(os.urandom(4096))
    bank, cid = protect(tmp_path, "src")
    target = tmp_path / "out"
    assert restore(bank, cid, target).ok
    restored = target / "src" / "disk.img"
    assert restored.stat().st_blocks * 512 < 1 << 20
    content = restored.read_bytes()
    with times_kept(restored), open(restored, "r+b") as f:  # the same bytes, every
        f.write(content)                                     # block written: dense
        f.flush()
        os.fsync(f.fileno())
    assert restored.stat().st_blocks * 512 >= size
    with pytest.raises(PreflightError, match="not empty"):
        restore(bank, cid, target)  # the same bytes, not the same file
    assert restore(bank, cid, target, force=True).ok
    assert restored.read_bytes() == content
    assert restored.stat().st_blocks * 512 < 1 << 20


# -- staging --------------------------------------------------------------------------------
def test_the_staging_folder_has_a_new_unguessable_name_each_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two restores of one checkpoint into one target stage in two private
    folders whose names share nothing an attacker could plant in advance:
    not the checkpoint's id, not the process's id."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    bank, cid = protect(tmp_path, "src")
    target = tmp_path / "out"
    target.mkdir()
    seen: list[tuple[str, int]] = []

    def spying(read: Any) -> Any:  # a bank read while the restore builds its tree
        def spy(self: Bank, key: str, *args: Any) -> Any:
            if key.startswith("chunks/"):
                seen.extend((p.name, stat.S_IMODE(p.lstat().st_mode))
                            for p in target.iterdir() if p.name != "src")
            return read(self, key, *args)
        return spy

    for method in ("get_object", "get_bytes_into"):
        monkeypatch.setattr(Bank, method, spying(getattr(Bank, method)))
    for _ in range(2):
        assert restore(bank, cid, target).ok
        (target / "src" / "a.txt").unlink()
        (target / "src").rmdir()
    names = {name for name, _ in seen}
    assert len(names) == 2, seen
    assert {mode for _, mode in seen} == {0o700}
    for name in names:
        assert cid[:8] not in name and str(os.getpid()) not in name
    first, second = sorted(names)
    shared = next((i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
                  min(len(first), len(second)))
    varying = [name[shared:] for name in (first, second)]
    assert min(map(len, varying)) >= 4, varying  # a random part, not a counter ...
    assert any(c.isalpha() for part in varying for c in part), varying  # ... nor a clock
    assert os.listdir(target) == []  # nothing staged is left behind


# -- packs ------------------------------------------------------------------------------------
def test_a_packed_file_whose_bytes_disagree_with_its_hash_is_refused(tmp_path: Path) -> None:
    """Bytes sealed under a pack's name (by a holder of the key, or a bug)
    authenticate, so only the packed file's own hash can tell: that file is
    not written and is named; its intact neighbour is restored."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("first small file\n")
    (tmp_path / "src" / "b.txt").write_text("second small file\n")
    bank, cid = protect(tmp_path, "src")
    entry = next(e for e in manifest(bank, cid)["entries"] if e["path"] == "b.txt")
    pack = bytearray(bank.get_object(chunk_key(entry["pack"])))
    pack[entry["offset"]] ^= 0x20  # "second" -> "Second"
    bank.update_object(chunk_key(entry["pack"]), bytes(pack))
    target = tmp_path / "out"
    result = restore(bank, cid, target)
    assert not result.ok
    reason = result.resources[f"{FS}#src"].reason
    assert "b.txt" in reason and "do not match its hash" in reason
    assert os.listdir(target) == ["src"]  # no staging folder left
    assert os.listdir(target / "src") == ["a.txt"]
    assert (target / "src" / "a.txt").read_text() == "first small file\n"


@pytest.mark.parametrize("change", ["shrinks", "vanishes"])
def test_a_pack_holds_only_its_files_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A file that shrinks or goes between the scan and its read leaves no
    padding in its pack: the pack is its files' bytes end to end, and the
    same files elsewhere dedup onto it."""
    files = {"a.txt": b"a" * 1000, "b.txt": b"b" * 2000, "c.txt": b"c" * 1000}
    after = dict(files, **{"b.txt": b"b" * 500}) if change == "shrinks" else {
        k: v for k, v in files.items() if k != "b.txt"}
    for folder, contents in (("one", files), ("two", after)):
        (tmp_path / folder).mkdir()
        for name, data in contents.items():
            (tmp_path / folder / name).write_bytes(data)
    victim = str(tmp_path / "one" / "b.txt")
    real_open = os.open

    def changing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # the read of the scanned file (never through a symlink): change it first
        if path == victim and flags & os.O_NOFOLLOW and os.path.exists(victim):
            if change == "shrinks":
                os.truncate(victim, 500)
            else:
                os.unlink(victim)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", changing_open)
    bank, cid = protect(tmp_path, "one", "two")
    monkeypatch.setattr(os, "open", real_open)
    packs = bank.list_objects("chunks/")
    assert len(packs) == 1  # "two" deduplicated onto the pack of "one"
    assert bank.get_object(packs[0]) == b"".join(after[name] for name in sorted(after))
    assert restore(bank, cid, tmp_path / "out").ok
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "one").iterdir()} == after


# -- manifests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["..", "sub/.."])
@pytest.mark.parametrize("kind", ["dir", "file"])
def test_a_manifest_entry_naming_a_parent_folder_is_refused_by_name(
        tmp_path: Path, path: str, kind: str) -> None:
    """Refused for what it is, before anything is written -- not by the
    accident of ``..`` already existing (EEXIST) when it is made."""
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "x.txt").write_text("x")
    bank, cid = protect(tmp_path, "src")
    found = manifest(bank, cid)
    like = next(e for e in found["entries"] if e["type"] == kind and e["path"] != ".")
    found["entries"].append({**like, "path": path})
    section(bank, cid, "src").update_object(MANIFEST, found)
    before = sorted(os.listdir(tmp_path))
    result = restore(bank, cid, tmp_path / "out")
    assert not result.ok
    reason = result.resources[f"{FS}#src"].reason
    assert f"{path!r}: a '..' component" in reason, reason
    assert "refused, nothing was written" in reason
    assert os.strerror(errno.EEXIST) not in reason
    assert sorted(os.listdir(tmp_path)) == before  # not even the target was made
