"""Files that change between the scan and the read, or while they are read:
re-read a bounded number of times, bounded by the scanned size, never
followed through a symlink, and always said -- in the hook's output, its
log, the manifest, and the resource's status (``checkpoints show``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.compiler import parse_plan
from protectflow.dag.model import Resource
from protectflow.plugins.builtin import fs
from protectflow.plugins.builtin._chunks import ChunkStore, owner_id
from protectflow.plugins.builtin.fs import _store as _fsstore
from protectflow.plugins.builtin.fs._entries import FileEntry
from protectflow.plugins.builtin.fs._manifest import Manifest
from protectflow.plugins.builtin.fs._read import ATTEMPTS
from tests.plugins.plugin_helpers import Log, new_checkpoint

KEY = f"{fs.DIRECTORY}#files"


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


def directory(path: Path) -> Resource:
    return Resource(fs.DIRECTORY, "files", extra_info={"path": str(path)})


def manifest_of(cp: Any, src: Path) -> Manifest:
    return fs.read_manifest(cp.get_resource_bank_section(directory(src)), directory(src))


def stored_bytes(bank: Bank, cp: Any, src: Path) -> bytes:
    """Every byte of every chunk the manifest names."""
    store = ChunkStore(bank, owner_id(cp.id, directory(src).key))
    return b"".join(store.read(d) for d in fs.manifest_chunks(manifest_of(cp, src)))


def appending_during_reads(monkeypatch: pytest.MonkeyPatch, path: Path, times: int) -> None:
    """Append to ``path`` in the middle of its first ``times`` reads."""
    real = _fsstore.read_stream
    left = [times]

    def read_stream(fd: int, extents: Any, buffer: bytearray) -> Iterator[memoryview]:
        for n, piece in enumerate(real(fd, extents, buffer)):
            yield piece
            if n == 0 and left[0] > 0:
                left[0] -= 1
                with open(path, "ab") as f:
                    f.write(b"+" * 70000)

    monkeypatch.setattr(_fsstore, "read_stream", read_stream)


def test_a_file_that_grew_once_is_read_again_and_bounded_by_the_scan(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    original = os.urandom(200_000)
    (src / "log.bin").write_bytes(original)
    appending_during_reads(monkeypatch, src / "log.bin", times=1)
    cp = new_checkpoint(bank)
    log = Log()
    out = fs.protect_tree(cp, directory(src), {"chunk_size": 65536, "pack_size": 0}, log)
    assert out["bytes"] == len(original)  # what was scanned, not what is there now
    assert any("grew from 200000 to 270000" in w for w in out["warnings"])
    assert ("warning", out["warnings"][0]) in log.messages
    assert list(manifest_of(cp, src).warnings or ()) == out["warnings"]
    dest = Path(fs.restore_tree(cp, directory(src), {"target": str(tmp_path / "out")}))
    assert (dest / "log.bin").read_bytes() == original


def test_a_file_that_keeps_changing_is_read_a_bounded_number_of_times(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "busy.bin").write_bytes(os.urandom(200_000))
    appending_during_reads(monkeypatch, src / "busy.bin", times=100)
    cp = new_checkpoint(bank)
    out = fs.protect_tree(cp, directory(src), {"chunk_size": 65536, "pack_size": 0})
    assert any(f"changed while it was read, {ATTEMPTS} times" in w for w in out["warnings"])
    assert (src / "busy.bin").stat().st_size == 200_000 + ATTEMPTS * 70000  # read 3 times
    # the chunks of the reads not kept hold no reference of this checkpoint
    store = ChunkStore(bank, owner_id(cp.id, directory(src).key))
    assert set(store.orphan_refs()) == set(fs.manifest_chunks(manifest_of(cp, src)))


def test_small_packed_files_are_checked_too(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a" * 1000)
    real = _fsstore._into
    calls = [0]

    def into(fd: int, pack: bytearray, used: int, size: int) -> Iterator[memoryview]:
        calls[0] += 1
        yield from real(fd, pack, used, size)
        with open(src / "a.txt", "ab") as f:
            f.write(b"b")

    monkeypatch.setattr(_fsstore, "_into", into)
    cp = new_checkpoint(bank)
    out = fs.protect_tree(cp, directory(src), {})
    assert calls[0] == ATTEMPTS
    assert any("a.txt: changed while it was read" in w for w in out["warnings"])
    dest = Path(fs.restore_tree(cp, directory(src), {"target": str(tmp_path / "out")}))
    assert (dest / "a.txt").read_bytes() == b"a" * 1000


@pytest.mark.parametrize("pack_size", [0, 4 << 20])
@pytest.mark.parametrize(("how", "said"), [
    ("symlink", "replaced by a symlink since the scan; not followed"),
    ("deleted", "gone since the scan"),
    ("replaced", "replaced by another file or something else"),
    ("fifo", "replaced by another file or something else"),
])
def test_a_file_gone_or_turned_into_something_else_is_reported_never_followed(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, said: str,
        pack_size: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_text("kept")
    (src / "victim.txt").write_text("scanned")
    secret = tmp_path / "passwd"
    secret.write_text("root:SECRET:0:0")
    real = _fsstore.open_scanned

    def swap_then_open(root: str, entry: FileEntry) -> Any:
        path = src / "victim.txt"
        if entry.path == "victim.txt" and path.exists() and not path.is_symlink():
            if how == "replaced":  # as editors save: a new inode renamed over the old
                (src / "new.tmp").write_text("another file")
                os.replace(src / "new.tmp", path)
            else:
                path.unlink()
            if how == "symlink":
                os.symlink(secret, path)
            elif how == "fifo":
                os.mkfifo(path)
        return real(root, entry)

    monkeypatch.setattr(_fsstore, "open_scanned", swap_then_open)
    cp = new_checkpoint(bank)
    out = fs.protect_tree(cp, directory(src), {"pack_size": pack_size})
    assert [w for w in out["warnings"] if said in w and "victim.txt" in w]
    assert [e.path for e in manifest_of(cp, src)] == [".", "keep.txt"]
    assert b"SECRET" not in stored_bytes(bank, cp, src)


def test_warnings_show_in_the_result_and_in_checkpoints_show(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "busy.bin").write_bytes(os.urandom(200_000))
    appending_during_reads(monkeypatch, src / "busy.bin", times=100)
    plan = parse_plan(json.dumps({"name": "w", "resources": [
        {"type": fs.DIRECTORY, "id": "files", "extra_info": {"path": str(src)},
         }]}), source="<test>.json")
    result = operations.protect(plan, bank=bank, executor="serial",
                                parameters={fs.DIRECTORY: {"pack_size": 0,
                                                           "chunk_size": 65536}})
    assert result.ok, result.report
    for resources in (result.resources, result.checkpoint.resources):
        reason = resources[KEY].reason or ""
        assert "2 warning(s): busy.bin: changed while it was read" in reason
        assert "busy.bin: grew from 200000" in reason
