"""The plugin interfaces the built-in plugins share: HookOperation, HookArgs,
HookCheckpoint, and how the plugin modules depend on each other."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from protectflow.bank import Bank
from protectflow.dag.model import HOOKS, Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins import (
    HookArgs,
    HookCheckpoint,
    HookOperation,
    Operation,
    implemented_hooks,
)
from protectflow.plugins.builtin import app, fs, sim
from protectflow.plugins.builtin import sqlite as sq
from tests.plugins.plugin_helpers import new_checkpoint

PLUGINS = Path(sim.__file__).parent
#: The built-in plugins an entry point names (a module, or a package of
#: modules); none may import another.
PLUGIN_MODULES = ("app", "exec", "fs", "sim", "sqlite")
RESOURCE = Resource("T", "a")


def test_a_hook_operation_implements_exactly_the_hooks_it_is_given() -> None:
    for hooks in ((), ("main",), ("prepare_begin", "complete"), HOOKS):
        op = HookOperation({h: lambda args: None for h in reversed(hooks)})
        assert implemented_hooks(op) == tuple(h for h in HOOKS if h in hooks)


def test_a_hook_function_gets_its_call_and_returns_its_output() -> None:
    calls: list[HookArgs] = []

    def record(args: HookArgs) -> str:
        calls.append(args)
        return f"out of {args.hook}"

    op = HookOperation({"prepare_finish": record, "main": record})
    log = object()
    assert op.on_main(None, RESOURCE, "ctx", {"p": 1}, operation_log=log) == "out of main"
    assert op.on_prepare_begin(None, RESOURCE, "ctx", {}) is None  # not given: a no-op
    assert op.on_prepare_finish(None, RESOURCE, None, {}) == "out of prepare_finish"
    assert [a.hook for a in calls] == ["main", "prepare_finish"]
    first = calls[0]
    assert (first.checkpoint, first.resource, first.context, first.parameters) == (
        None, RESOURCE, "ctx", {"p": 1})
    assert first.kwargs == {"operation_log": log}


def test_a_hook_operation_refuses_an_unknown_hook_name() -> None:
    with pytest.raises(ValueError, match="unknown hooks on_main"):
        HookOperation({"on_main": lambda args: None})


def test_publish_writes_the_new_id_only_where_the_operation_passes_new_resources() -> None:
    new_resources: dict[str, Any] = {"other": 1}
    HookArgs("main", None, RESOURCE, None, {}, {"new_resources": new_resources}).publish("x")
    assert new_resources == {"other": 1, RESOURCE.key: "x"}
    HookArgs("main", None, RESOURCE, None, {}, {}).publish("x")  # protect: nowhere to write


def test_the_banks_checkpoint_is_a_hook_checkpoint(tmp_path: Path) -> None:
    checkpoint = new_checkpoint(Bank(tmp_path / "bank", fsync=False))
    assert isinstance(checkpoint, HookCheckpoint)
    assert not isinstance(None, HookCheckpoint)
    assert not isinstance("a checkpoint id", HookCheckpoint)


@pytest.mark.parametrize("plugin", [fs.FsProtectionPlugin(), sq.SqliteProtectionPlugin()],
                         ids=["fs", "sqlite"])
@pytest.mark.parametrize("operation", ["restore", "verify", "copy", "delete"])
def test_local_plugins_need_a_checkpoint_in_a_bank(plugin: Any, operation: str) -> None:
    resource = Resource(plugin.get_supported_resources_types()[0], "a")
    op = plugin.get_operation(operation, resource)
    with pytest.raises(LocalPluginError, match=r"needs a checkpoint in a bank; got None"):
        op.on_main(None, resource, None, {"target": "/nonexistent"}, new_resources={})


@pytest.mark.parametrize(("plugin", "operation", "hooks"), [
    (fs.FsProtectionPlugin(), "protect", ("prepare_finish", "main")),
    (sq.SqliteProtectionPlugin(), "protect", ("prepare_finish", "main")),
    (sq.SqliteProtectionPlugin(), "restore", ("main",)),
    (app.AppProtectionPlugin(), "protect", ("prepare_begin", "prepare_finish")),
    (app.AppProtectionPlugin(), "delete", ("main",)),
    (app.AppProtectionPlugin(), "restore", ()),
    (sim.SimProtectionPlugin(), "copy", HOOKS),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_the_built_in_plugins_implement_the_hooks_they_document(
        plugin: Any, operation: str, hooks: tuple[str, ...]) -> None:
    resource = Resource(plugin.get_supported_resources_types()[0], "a")
    assert implemented_hooks(plugin.get_operation(operation, resource)) == hooks


def test_every_built_in_operation_class_has_its_docstring() -> None:
    classes = {cls for module in (app, fs, sim, sq) for cls in vars(module).values()
               if isinstance(cls, type) and issubclass(cls, Operation)
               and cls.__module__ == module.__name__}
    assert app.AppProtectOperation in classes
    assert {c.__name__ for c in classes if not c.__doc__} == set()
    assert app.AppProtectOperation.atomic_prepare  # the class attribute kept its value


def _imports(module: str) -> set[str]:
    """Every module named by an import in ``module`` (every file of it, if a package)."""
    files = sorted((PLUGINS / module).rglob("*.py")) or [PLUGINS / f"{module}.py"]
    assert all(f.is_file() for f in files)  # the walk sees the plugin
    found: set[str] = set()
    for node in (n for f in files for n in ast.walk(ast.parse(f.read_text("utf-8")))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", PLUGIN_MODULES)
def test_no_plugin_imports_another(module: str) -> None:
    others = {f"protectflow.plugins.builtin.{m}" for m in PLUGIN_MODULES if m != module}
    found = _imports(module)
    assert found  # an empty walk would pass vacuously
    assert {name for name in found if name.startswith(tuple(others))} == set()

