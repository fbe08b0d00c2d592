"""Helpers for the local plugins' tests: checkpoints, trees, running a DAG's hooks."""

from __future__ import annotations

import graphlib
import hashlib
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


def snapshot_tree(root: Path) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Metadata (as a restore must keep it) and the contents of every file
    (see :func:`file_contents`)."""
    entries = scan(str(root))
    data = {e.path: file_contents(root / e.path) for e in entries if e.kind == "file"}
    return comparable(entries), data


_BLOCK = 1 << 20
_ZEROS = bytes(_BLOCK)


def file_contents(path: Path) -> bytes | tuple[int, str]:
    """A small file's bytes; a large one's size and a digest of its bytes.

    Equal contents give equal values whatever the holes: a block that is all
    zeros counts as zeros, and one inside a hole is not read at all -- the
    fidelity tests' 1 GiB sparse file costs a few reads, not a gigabyte.
    """
    size = path.stat().st_size
    if size < _BLOCK:
        return path.read_bytes()
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        for start in range(0, size, _BLOCK):
            n = min(_BLOCK, size - start)
            if _in_a_hole(fd, start, n):
                digest.update(b"zeros %d;" % n)
                continue
            block = os.pread(fd, n, start)
            zeros = block == (_ZEROS if n == _BLOCK else bytes(n))
            digest.update(b"zeros %d;" % n if zeros else b"data " + block)
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def _in_a_hole(fd: int, start: int, n: int) -> bool:
    """Whether ``n`` bytes from ``start`` lie in a hole (False where the
    system cannot say)."""
    if not hasattr(os, "SEEK_DATA"):
        return False
    try:
        return os.lseek(fd, start, os.SEEK_DATA) >= start + n
    except OSError:  # ENXIO: no data from ``start`` to the end
        return True


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
