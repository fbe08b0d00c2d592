"""Helpers for the local plugins' tests: checkpoints, trees, running a DAG's hooks."""

from __future__ import annotations

import graphlib
import os
import stat
from pathlib import Path
from typing import Any

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import Plan, ResourceGraph
from protectflow.plugins import get_registry
from protectflow.plugins.builtin.fs._tree import comparable, scan
from tests.scripts import ROOT, load_script

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})

SHOP = ROOT / "examples" / "shop"
make_shop = load_script("examples/shop/make_shop.py")
shopctl = load_script("examples/shop/shopctl.py")


class Log:
    """A stand-in for the executor's OperationLog."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda message: self.messages.append((level, message))


def new_checkpoint(bank: Bank, name: str = "test") -> Checkpoint:
    return CheckpointStore(bank).create(Plan(name, ()), NO_GRAPH, "fingerprint", "tests")


def count_objects(bank: Bank, prefix: str) -> int:
    return len(bank.list_objects(prefix))


def snapshot_tree(root: Path) -> tuple[list[tuple[Any, ...]], dict[str, bytes]]:
    """Metadata (as a restore must keep it) and the bytes of every file."""
    entries = scan(str(root))
    data = {e["path"]: (root / e["path"]).read_bytes() for e in entries if e["type"] == "file"}
    return comparable(entries), data


def make_tree(root: Path) -> Path:
    """A small tree with every kind of entry the fs plugin keeps."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "text.txt").write_text("hello\n")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 300 + b"\0\0\xff")
    (root / "sub" / "deeper" / "big.dat").write_bytes(os.urandom(300_000))
    (root / "sub" / "secret.key").write_bytes(b"k" * 10)
    os.chmod(root / "sub" / "secret.key", 0o600)
    os.chmod(root / "text.txt", 0o754)
    os.symlink("sub/deeper/big.dat", root / "link-to-big")
    os.symlink("/nonexistent/target", root / "dangling")
    os.chmod(root / "empty", 0o700)
    for i, path in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        t = 1_600_000_000_000_000_000 + i * 1_000_003
        os.utime(path, ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(1_500_000_000_123_456_789,) * 2)
    return root


def is_readonly_dir(path: Path) -> bool:
    return not (os.stat(path).st_mode & stat.S_IWUSR)


def plan_from(data: dict[str, Any]) -> Any:
    import json

    return parse_plan(json.dumps(data), source="<test>.json")


def run_dag(plan: Any, operation: str, checkpoint: Any,
            parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every hook of ``plan``'s DAG serially in a topological order, fail-fast.

    Returns node id -> output; on a failure, raises it with ``.outputs`` set
    to what ran before.
    """
    registry = get_registry()
    dag = compile_plan(plan, operation, registry=registry, parameters=parameters)
    nodes = {n.id: n for n in dag.nodes}
    outputs: dict[str, Any] = {}
    new_resources: dict[str, Any] = {}
    for node_id in graphlib.TopologicalSorter(dag.predecessors()).static_order():
        node = nodes[node_id]
        op = registry.plugin(node.plugin).get_operation(operation, node.resource)
        kwargs: dict[str, Any] = {"attempt": 1, "operation_log": Log()}
        if operation in ("restore", "verify"):
            kwargs["new_resources"] = new_resources
        try:
            outputs[node_id] = getattr(op, "on_" + node.hook)(
                checkpoint, node.resource, None, dag.parameters.get(node.resource.key, {}),
                **kwargs)
        except Exception as err:
            err.outputs = outputs  # type: ignore[attr-defined]
            raise
    return outputs
