"""The built-in fs, sqlite and exec plugins pass the conformance kit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from protectflow.dag import Resource
from protectflow.plugins.builtin.exec import COMMAND
from protectflow.plugins.builtin.fs import DIRECTORY
from protectflow.plugins.builtin.sqlite import DATABASE
from protectflow.testing import PluginConformance, PluginSubject

pytest_plugins = ["protectflow.testing"]


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def make_folder(folder: Path) -> Resource:
    (folder / "docs" / "sub").mkdir(parents=True)
    (folder / "docs" / "a.txt").write_text("alpha\n")
    (folder / "docs" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    return Resource(DIRECTORY, "docs", extra_info={"path": str(folder / "docs")})


def compare_folders(original: Resource, restored: Any) -> str | None:
    before, after = _tree(Path(original.extra_info["path"])), _tree(Path(restored))
    if before == after:
        return None
    return f"entries differ: {sorted(set(before) ^ set(after)) or 'contents of some files'}"


class TestFsConformance(PluginConformance):
    @pytest.fixture
    def plugin_subject(self) -> PluginSubject:
        return PluginSubject(
            plugin="fs", make_resource=make_folder, compare=compare_folders,
            restore_parameters=lambda folder: {"target": str(folder)},
            volatile=frozenset((
                "new_chunks", "new_bytes", "reused_files", "copied_chunks", "released",
                "deleted_chunks")))


def make_database(folder: Path) -> Resource:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shop.db"
    con = sqlite3.connect(path)
    con.execute("create table items (id integer primary key, name text)")
    con.executemany("insert into items (name) values (?)", [(f"item {i}",) for i in range(500)])
    con.commit()
    con.close()
    return Resource(DATABASE, "shop.db", extra_info={"path": str(path)})


def _rows(path: str) -> list[Any]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("select * from items order by id").fetchall()
    finally:
        con.close()


def compare_databases(original: Resource, restored: Any) -> str | None:
    before, after = _rows(original.extra_info["path"]), _rows(restored)
    return None if before == after else f"{len(before)} rows before, {len(after)} restored"


class TestSqliteConformance(PluginConformance):
    @pytest.fixture
    def plugin_subject(self, tmp_path: Path) -> PluginSubject:
        (tmp_path / "snapshots").mkdir()
        return PluginSubject(
            plugin="sqlite", make_resource=make_database, compare=compare_databases,
            protect_parameters={"snapshot_dir": str(tmp_path / "snapshots")},
            restore_parameters=lambda folder: {"target": str(folder)},
            volatile=frozenset((
                "new_chunks", "new_bytes", "copied_chunks", "released", "deleted_chunks")))


def make_tar_stream(folder: Path) -> Resource:
    """A folder protected as a tar stream through the exec plugin."""
    make_folder(folder)
    return Resource(COMMAND, "docs", extra_info={
        "base_dir": str(folder),
        "protect": {"main": {"argv": ["tar", "-C", "docs", "-cf", "-", "."],
                             "stdout": "store"}},
        "restore": {"main": {"argv": ["sh", "-c", 'tar -C "$PROTECTFLOW_RESTORE_TARGET" -xf -'],
                             "stdin": "stored"}},
        "verify": {"main": {"argv": ["tar", "-tf", "-"], "stdin": "stored"}}})


def compare_tar_trees(original: Resource, restored: Any) -> str | None:
    before, after = _tree(Path(original.extra_info["base_dir"]) / "docs"), _tree(Path(restored))
    if before == after:
        return None
    return f"entries differ: {sorted(set(before) ^ set(after)) or 'contents of some files'}"


class TestExecConformance(PluginConformance):
    @pytest.fixture
    def plugin_subject(self) -> PluginSubject:
        return PluginSubject(
            plugin="exec", make_resource=make_tar_stream, compare=compare_tar_trees,
            restore_parameters=lambda folder: {"target": str(folder)},
            volatile=frozenset(("seconds", "new_chunks", "stats", "copied_chunks",
                                "released", "deleted_chunks", "stderr")))
