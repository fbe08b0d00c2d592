"""The guide's read-only methods as library calls: saved info, list and show."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.compiler import parse_plan
from protectflow.dag import Resource
from protectflow.errors import BankError, LocalPluginError, PluginError
from protectflow.plugins import Registry, get_registry
from protectflow.plugins.builtin.fs import DIRECTORY
from protectflow.plugins.builtin.sim import SERVER, ServerProtectable, SimProtectionPlugin
from protectflow.plugins.builtin.sqlite import DATABASE
from protectflow.plugins.queries import list_resources, saved_info, show_resource
from protectflow.plugins.registry import using_registry


def fs_plan(root: Path) -> Any:
    return parse_plan(json.dumps({"name": "t", "resources": [
        {"type": DIRECTORY, "id": "docs", "extra_info": {"path": str(root)}}]}),
        source="<t>.json")


def test_saved_info_of_a_protected_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    result = operations.protect(fs_plan(tmp_path / "docs"), bank=tmp_path / "bank",
                                executor="serial")
    assert result.ok
    info = saved_info(result.checkpoint, f"{DIRECTORY}#docs")
    assert info.plugin == "fs"
    assert info.info["files"] == 1 and info.info["bytes"] == 5
    with pytest.raises(BankError, match=r"holds no resource protectflow::fs::Directory#doc; "
                                        r"did you mean 'protectflow::fs::Directory#docs'"):
        saved_info(result.checkpoint, f"{DIRECTORY}#doc")


class LyingSim(SimProtectionPlugin):
    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        return {"type": 3, "id": resource.id}


def test_saved_info_that_breaks_its_schema_is_a_plugin_error(tmp_path: Path) -> None:
    registry = Registry({"sim": LyingSim()}, [ServerProtectable()])
    plan = parse_plan(json.dumps({"name": "t", "resources": [{"type": SERVER, "id": "s"}]}),
                      source="<t>.json")
    with using_registry(registry):
        result = operations.protect(plan, bank=tmp_path / "bank", executor="serial")
        with pytest.raises(PluginError, match=r"breaks its own get_saved_info_schema: "
                                              r"type: 3 is not of type 'string'"):
            saved_info(result.checkpoint, f"{SERVER}#s")


def test_the_sim_protectables_list_and_show() -> None:
    assert [r.id for r in list_resources(SERVER)] == ["server-1", "server-2", "server-3"]
    assert [r.id for r in list_resources(SERVER, parameters={"ids": ["b", "a"]})] == ["a", "b"]
    assert show_resource(SERVER, "x").key == f"{SERVER}#x"
    with pytest.raises(PluginError, match="no protectable for resource type 'OS::Nova::Sever'; "
                                          "did you mean 'OS::Nova::Server'"):
        list_resources("OS::Nova::Sever")


def test_the_local_protectables_find_folders_and_databases(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "plain.txt").write_text("not a database")
    sqlite3.connect(tmp_path / "shop.db").execute("create table t (x)").connection.close()
    root = {"root": str(tmp_path)}
    assert [r.id for r in list_resources(DIRECTORY, parameters=root)] == ["one"]
    assert [r.id for r in list_resources(DATABASE, parameters=root)] == ["shop.db"]
    shown = show_resource(DATABASE, "shop.db", parameters=root)
    assert shown.extra_info["path"] == str(tmp_path / "shop.db")
    with pytest.raises(LocalPluginError, match=r"no SQLite database 'plain.txt'"):
        show_resource(DATABASE, "plain.txt", parameters=root)
    with pytest.raises(LocalPluginError, match=r"not a name directly under"):
        show_resource(DIRECTORY, "../one", parameters=root)
    with pytest.raises(LocalPluginError, match=re.escape("parameters: {root: PATH}")):
        list_resources(DIRECTORY)


def test_a_plan_discovers_folders_and_protects_them(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "f").write_text(name)
    plan = parse_plan(json.dumps({"name": "t", "resources": [
        {"discover": {"type": DIRECTORY, "parameters": {"root": str(tmp_path / "data")}}}]}),
        source="<t>.json")
    result = operations.protect(plan, bank=tmp_path / "bank", executor="serial")
    assert sorted(result.resources) == [f"{DIRECTORY}#a", f"{DIRECTORY}#b"]
    assert saved_info(result.checkpoint, f"{DIRECTORY}#b", registry=get_registry()).info[
        "files"] == 1
