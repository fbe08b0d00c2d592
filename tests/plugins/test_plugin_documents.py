"""The built-in plugins' stored documents -- the fs manifest and its entries,
the sqlite manifest and snapshot record, the app's freeze record -- read back
what the protectflow before them wrote, byte for byte, and a bank it wrote
still restores.

``tests/data/golden/manifests`` was written by the protectflow before these
documents were typed (``RECIPE.md`` beside it says how): one protect, with
the fs plugin at 4 KiB chunks and packs, of a tree holding packed and
chunked files, a sparse file, a symlink, a hard link, a FIFO, an empty
folder and an extended attribute, of an SQLite database, and of an
application frozen by a lock file; the bank (password in ``password``), the
decrypted documents, and the files' SHA-256 sums.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin.app._record import FreezeRecord
from protectflow.plugins.builtin.fs._entries import (
    DirEntry,
    FileEntry,
    HardLinkEntry,
    SpecialEntry,
    SymlinkEntry,
)
from protectflow.plugins.builtin.fs._manifest import Manifest
from protectflow.plugins.builtin.sqlite._records import SnapshotInfo, SqliteManifest
from tests.scripts import ROOT

GOLDEN = ROOT / "tests" / "data" / "golden" / "manifests"
FS = "protectflow::fs::Directory"
DB = "protectflow::sqlite::Database"
MTIME = 1_700_000_000_000_000_000


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def stored_bytes(value: Any) -> bytes:
    """As the bank serialises a JSON object."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# -- byte for byte ------------------------------------------------------------------------
def test_the_fs_manifest_reads_back_and_writes_the_same_bytes() -> None:
    data = golden("fs-manifest.json")
    manifest = Manifest.from_json(copy.deepcopy(data), what="tree")
    assert stored_bytes(manifest.to_json()) == stored_bytes(data)
    assert Manifest.from_json(manifest.to_json(), what="tree") == manifest
    files = [e.to_json() for e in manifest if isinstance(e, FileEntry)]
    assert files and all(list(f) == sorted(f) for f in files)  # as the bank sorts them


@pytest.mark.parametrize(("name", "cls"), [("sqlite-manifest.json", SqliteManifest),
                                           ("sqlite-snapshot.json", SnapshotInfo),
                                           ("app-freeze.json", FreezeRecord)])
def test_the_other_plugins_records_read_back_and_write_the_same_bytes(name: str,
                                                                      cls: Any) -> None:
    data = golden(name)
    record = cls.from_json(copy.deepcopy(data), what="r")
    assert stored_bytes(record.to_json()) == stored_bytes(data)


def test_a_manifest_gives_its_entries_by_kind_path_and_totals() -> None:
    manifest = Manifest.from_json(golden("fs-manifest.json"), what="tree")
    paths = [e.path for e in manifest]
    assert paths == sorted(paths) and paths[0] == "."
    assert isinstance(manifest.get("."), DirEntry) and isinstance(manifest.get("empty"), DirEntry)
    assert isinstance(manifest.get("link"), SymlinkEntry)
    hard, pipe = manifest.get("hard"), manifest.get("pipe")
    assert isinstance(hard, HardLinkEntry) and hard.link == "docs/note2.txt"
    assert isinstance(pipe, SpecialEntry) and pipe.kind == "fifo" and pipe.rdev is None
    big, sparse, note = (manifest.get(p) for p in ("big.bin", "sparse.img", "docs/note0.txt"))
    assert isinstance(big, FileEntry) and big.chunks is not None and len(big.chunks) == 5
    assert isinstance(sparse, FileEntry) and sparse.sparse is not None
    assert isinstance(note, FileEntry) and note.pack is not None
    assert dict(note.meta.xattrs) == {"user.golden": "a2VwdA=="}
    files = golden("files.json")
    assert manifest.files == len(files) - 1  # "hard" is the second name of note2.txt
    assert manifest.bytes == 7 + 16388 + 256 * 1024 + sum(
        len(f"note {i}\n") * (i + 1) for i in range(1, 5))
    assert manifest.get("nothing") is None and len(manifest) == len(paths)


# -- refused, with the reason -------------------------------------------------------------
def _forged(change: Any) -> Any:
    data = golden("fs-manifest.json")
    change(data)
    return data


@pytest.mark.parametrize(("change", "said"), [
    (lambda d: d.update(version=4), r"format version 4.*upgrade"),
    (lambda d: d.update(version=True), r"format version True"),
    (lambda d: d.update(chunk_size=0), r"chunk_size 0 is not valid"),
    (lambda d: d.update(entries={}), r"entries are not a list"),
    (lambda d: d["entries"][1].update(type="socket"), r"'big.bin': unknown type 'socket'"),
    (lambda d: d["entries"][1].update(mode="644"), r"'big.bin': 'mode' is not a int"),
    (lambda d: d["entries"][1].update(size=-1), r"'big.bin': no valid size"),
    (lambda d: d["entries"][1].update(chunks=["../x"]), r"'big.bin': no valid chunk list"),
    (lambda d: d["entries"][1].update(path="../big.bin"), r"a '\.\.' component"),
    (lambda d: d["entries"].pop(0), r"no root folder entry"),
    (lambda d: d["entries"][1].update(uid=None, gid="0"), r"'gid' is not a int"),
])
def test_a_damaged_or_forged_manifest_is_refused_naming_the_entry(change: Any,
                                                                   said: str) -> None:
    with pytest.raises(LocalPluginError, match=said):
        Manifest.from_json(_forged(change), what="tree")


def _file(path: str) -> dict[str, Any]:
    return {"path": path, "type": "file", "mode": 0o644, "mtime_ns": MTIME, "size": 0,
            "chunks": []}


def _dir(path: str) -> dict[str, Any]:
    return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": MTIME}


@pytest.mark.parametrize(("path", "said"), [
    ("a//b", r"'a//b': an empty or '\.' component"),
    ("a/./b", r"'a/\./b': an empty or '\.' component"),
    ("./b", r"'\./b': an empty or '\.' component"),
    ("a/", r"'a/': an empty or '\.' component"),
    ("a/..", r"'a/\.\.': a '\.\.' component"),
    ("../b", r"a '\.\.' component"),
    ("/etc/passwd", r"'/etc/passwd': an absolute path"),
    ("a/b\0", r"an absolute path or one holding NUL"),
    ("", r"'': not a path"),
    ("a", r"'a': a duplicate path"),
    ("f/x", r"'f/x': its folder is not a folder listed before it"),
    ("none/x", r"'none/x': its folder is not a folder listed before it"),
])
def test_a_well_formed_entry_with_a_bad_path_is_refused_naming_it(path: str, said: str) -> None:
    # entries exactly as a protect writes them: the quick reading, not the field checker
    entries = [_dir("."), _dir("a"), _file("f"), _file(path)]
    with pytest.raises(LocalPluginError, match=said):
        Manifest.from_json({"version": 3, "root": "/r", "chunk_size": 4096,
                            "entries": entries}, what="tree")


def test_hidden_names_and_entries_before_the_root_are_read() -> None:
    entries = [_dir(".a"), _file(".a/.b"), _file(".a/..c"), _file("x."), _dir(".")]
    manifest = Manifest.from_json({"version": 3, "root": "/r", "chunk_size": 4096,
                                   "entries": entries}, what="tree")
    assert [e.path for e in manifest] == [".a", ".a/.b", ".a/..c", "x.", "."]
    assert isinstance(manifest.get("."), DirEntry) and manifest.get(".") is manifest.entries[-1]
    assert manifest.to_json()["entries"] == entries


def test_every_problem_is_named_up_to_ten() -> None:
    def break_all(d: Any) -> None:
        for e in d["entries"][1:]:
            e["mode"] = -1
    with pytest.raises(LocalPluginError) as raised:
        Manifest.from_json(_forged(break_all), what="tree")
    assert "nothing was written" in str(raised.value)
    assert str(raised.value).count("is not a mode") == 10 and "more" in str(raised.value)


@pytest.mark.parametrize("version", [1, 2])
def test_older_sqlite_manifests_are_read_and_a_newer_one_refused(version: int) -> None:
    data = golden("sqlite-manifest.json")
    old = {k: v for k, v in data.items() if version == 2 or k not in ("mode", "uid", "gid",
                                                                      "mtime_ns")}
    assert SqliteManifest.from_json({**old, "version": version}, what="db").meta.mode == (
        data["mode"] if version == 2 else None)
    with pytest.raises(LocalPluginError, match=r"format version 3.*upgrade"):
        SqliteManifest.from_json({**data, "version": 3}, what="db")


# -- the bank written before still restores ------------------------------------------------
@pytest.fixture
def golden_bank(tmp_path: Path) -> tuple[Bank, str]:
    shutil.copytree(GOLDEN / "bank", tmp_path / "bank", symlinks=True)
    bank = Bank(tmp_path / "bank", password_file=GOLDEN / "password", fsync=False)
    return bank, (GOLDEN / "checkpoint").read_text().strip()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bank_written_before_restores_every_entry(golden_bank: tuple[Bank, str],
                                                      tmp_path: Path) -> None:
    bank, checkpoint = golden_bank
    out = tmp_path / "out"
    result = operations.restore(checkpoint, bank=bank, executor="serial", parameters={
        FS: {"target": str(out), "owners": False}, DB: {"target": str(out)}})
    assert result.ok, result.report
    tree = out / "tree"
    files = {str(p.relative_to(tree)): _sha(p) for p in sorted(tree.rglob("*"))
             if p.is_file() and not p.is_symlink()}
    assert files == golden("files.json")
    assert os.readlink(tree / "link") == "docs/note1.txt"
    assert (tree / "hard").stat().st_ino == (tree / "docs" / "note2.txt").stat().st_ino
    assert stat.S_ISFIFO((tree / "pipe").lstat().st_mode) and (tree / "empty").is_dir()
    assert os.getxattr(tree / "docs" / "note0.txt", "user.golden") == b"kept"
    assert stat.S_IMODE((tree / "docs" / "note3.txt").stat().st_mode) == 0o640
    assert (tree / "big.bin").stat().st_mtime_ns == MTIME
    assert (tree / "sparse.img").stat().st_blocks * 512 < 256 << 10  # holes kept
    con = sqlite3.connect(out / "orders.db")
    try:
        assert con.execute("select count(*) from t").fetchone() == (100,)
    finally:
        con.close()
    checked = operations.verify(checkpoint, bank=bank, executor="serial")
    assert checked.ok, checked.problems
