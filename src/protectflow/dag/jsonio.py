"""The HookDAG's JSON format: versioned, schema-checked, byte-deterministic.

The file is written one node and one edge per line, so that two DAGs diff line
by line, and with every mapping's keys sorted, so that the same DAG gives the
same bytes in every run and under every ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from functools import cache
from importlib import resources as importlib_resources
from typing import IO, Any

import jsonschema

from protectflow._util import paused_gc
from protectflow.dag.graphs import find_cycle
from protectflow.dag.model import HOOKS, RULES, HookDAG, HookEdge, HookNode, Resource
from protectflow.errors import DagFormatError

__all__ = ["FORMAT", "VERSION", "dag_schema", "dump", "dumps", "fingerprint", "load", "loads"]

FORMAT = "protectflow.hookdag"
VERSION = 1

_dumps = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode


@cache
def dag_schema() -> dict[str, Any]:
    """The JSON Schema of the HookDAG format (shipped in the package)."""
    text = importlib_resources.files("protectflow").joinpath("schemas/hookdag.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


@cache
def _validator() -> Any:
    return jsonschema.Draft202012Validator(dag_schema())


def _lines(dag: HookDAG) -> Iterator[str]:
    yield "{"
    yield f'"format": "{FORMAT}",'
    yield f'"version": {VERSION},'
    yield f'"operation": {_dumps(dag.operation)},'
    yield f'"plan": {_dumps(dag.plan)},'
    yield f'"pruned": {"true" if dag.pruned else "false"},'
    yield f'"limits": {_dumps(dag.limits)},'
    yield f'"parameters": {_dumps(dag.parameters)},'
    yield '"resources": ['
    yield ",\n".join(_dumps(r.to_json()) for r in dag.resources)
    yield "],"
    yield '"dependencies": ['
    yield ",\n".join(f"[{_dumps(p)}, {_dumps(c)}]" for p, c in dag.dependencies)
    yield "],"
    yield '"nodes": ['
    yield ",\n".join(_node_lines(dag.nodes))
    yield "],"
    yield '"edges": ['
    yield ",\n".join(_edge_lines(dag))
    yield "]"
    yield "}"


def _node_lines(nodes: tuple[HookNode, ...]) -> Iterator[str]:
    # Encode each resource once, not once per hook: this is the hot loop of
    # writing a 400,000-hook DAG.
    last: Resource | None = None
    encoded = ""
    for n in nodes:
        if n.resource is not last:
            last = n.resource
            encoded = _dumps({"type": last.type, "id": last.id, "name": last.name})
        yield (
            f'{{"hook": "{n.hook}", "id": {_dumps(n.id)}, "plugin": {_dumps(n.plugin)}, '
            f'"resource": {encoded}}}'
        )


def _edge_lines(dag: HookDAG) -> Iterator[str]:
    quoted = {n.id: _dumps(n.id) for n in dag.nodes}
    for source, target, rule in dag.edges:
        yield f'{{"rule": "{rule}", "source": {quoted[source]}, "target": {quoted[target]}}}'


def dumps(dag: HookDAG) -> str:
    """The DAG as JSON text (see :func:`dump`)."""
    return "\n".join(_lines(dag)) + "\n"


def dump(dag: HookDAG, fp: IO[str] | str | os.PathLike[str]) -> None:
    """Write ``dag`` as JSON to a text file or to the path ``fp``.

    A path is written to a temporary file first and renamed into place, so a
    crash never leaves half a DAG behind.
    """
    if isinstance(fp, (str, os.PathLike)):
        path = os.fspath(fp)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in _lines(dag))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    fp.writelines(line + "\n" for line in _lines(dag))


def fingerprint(dag: HookDAG | str) -> str:
    """A SHA-256 of the DAG's JSON: equal DAGs, equal fingerprints. Given the
    DAG's :func:`dumps` text instead, the same fingerprint without writing
    the DAG again (an operation serialises its DAG once)."""
    if isinstance(dag, str):
        return hashlib.sha256(dag.encode("utf-8")).hexdigest()
    h = hashlib.sha256()
    for line in _lines(dag):
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def load(fp: IO[str] | str | os.PathLike[str]) -> HookDAG:
    """Read a HookDAG written by :func:`dump`.

    Raises
    ------
    DagFormatError
        When the file cannot be read, is not JSON, is of another format or
        version, breaks the schema, or its edges name unknown nodes or form a
        cycle.
    """
    source = os.fspath(fp) if isinstance(fp, (str, os.PathLike)) else getattr(fp, "name", "<dag>")
    try:
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, encoding="utf-8") as f:
                text = f.read()
        else:
            text = fp.read()
    except (OSError, UnicodeDecodeError) as err:
        raise DagFormatError(f"cannot read DAG file {source!r}: {err}") from err
    return loads(text, source=str(source))


def loads(text: str, *, source: str = "<dag>") -> HookDAG:
    """Parse and check a HookDAG from JSON text (see :func:`load`)."""
    try:
        with paused_gc():
            data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DagFormatError(
            f"{source} is not a HookDAG file: not JSON ({err.msg} "
            f"{'' if err.msg.endswith(' at') else 'at '}line {err.lineno}, column {err.colno})"
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DagFormatError(
            f"{source} is not a HookDAG file (no \"format\": \"{FORMAT}\"); "
            "write one with `protectflow compile PLAN -o FILE`"
        )
    if data.get("version") != VERSION:
        raise DagFormatError(
            f"{source} is a HookDAG of format version {data.get('version')!r}; this protectflow "
            f"reads version {VERSION}: compile the plan again with this version"
        )
    if _plainly_valid(data):
        errors = []
    else:
        errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        shown = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]
        raise DagFormatError(
            f"{source} is not a valid HookDAG:\n" + "\n".join(f"  - {s}" for s in shown[:20])
        )
    with paused_gc():
        return _build(data, source)


_HOOKS = frozenset(HOOKS)
_RULES = frozenset(RULES)
_NODE_FIELDS = frozenset(("id", "resource", "hook", "plugin"))
_REF_FIELDS = frozenset(("type", "id", "name"))
_RESOURCE_FIELDS = frozenset(("type", "id", "name", "extra_info"))


def _plainly_valid(data: dict[str, Any]) -> bool:
    """A fast check that passes only documents the schema accepts.

    jsonschema takes about 30 s over the 1.2 million nodes and edges of a
    100,000-resource DAG. When this check passes, so would the schema (a
    property test holds it to that); when it fails, the schema runs and
    reports every error.
    """
    big = ("resources", "dependencies", "nodes", "edges")
    if not all(type(data.get(k)) is list for k in big):
        return False
    if not _validator().is_valid({**data, **{key: [] for key in big}}):
        return False
    for r in data["resources"]:
        if not (
            type(r) is dict and r.keys() <= _RESOURCE_FIELDS and _ref_ok(r)
            and type(r.get("extra_info", {})) is dict
        ):
            return False
    for d in data["dependencies"]:
        if not (type(d) is list and len(d) == 2 and type(d[0]) is str and type(d[1]) is str):
            return False
    for n in data["nodes"]:
        if not (
            type(n) is dict and n.keys() == _NODE_FIELDS and type(n["id"]) is str and n["id"]
            and type(n["hook"]) is str and n["hook"] in _HOOKS  # a list is unhashable
            and type(n["plugin"]) is str and n["plugin"]
            and type(n["resource"]) is dict and n["resource"].keys() <= _REF_FIELDS
            and _ref_ok(n["resource"]) and "type" in n["resource"]
        ):
            return False
    for e in data["edges"]:
        if not (
            type(e) is dict and len(e) == 3 and type(e.get("source")) is str
            and type(e.get("target")) is str and type(e.get("rule")) is str
            and e["rule"] in _RULES
        ):
            return False
    return True


def _ref_ok(r: dict[str, Any]) -> bool:
    t, i = r.get("type"), r.get("id")
    return (
        type(t) is str and type(i) is str and bool(t) and bool(i)
        and type(r.get("name", "")) is str
    )


def _build(data: dict[str, Any], source: str) -> HookDAG:
    resources = {}
    for r in data["resources"]:
        res = Resource(r["type"], r["id"], r.get("name", ""), r.get("extra_info"))
        resources[res.key] = res
    nodes = []
    for n in data["nodes"]:
        key = f"{n['resource']['type']}#{n['resource']['id']}"
        if key not in resources:
            raise DagFormatError(f"{source}: node {n['id']!r} names resource {key}, not listed")
        nodes.append(HookNode(n["id"], resources[key], n["hook"], n["plugin"]))
    ids = {n.id for n in nodes}
    if len(ids) != len(nodes):
        raise DagFormatError(f"{source}: two nodes share an id")
    edges = []
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for e in data["edges"]:
        for end in (e["source"], e["target"]):
            if end not in ids:
                raise DagFormatError(f"{source}: an edge names node {end!r}, which is not listed")
        edges.append(HookEdge(e["source"], e["target"], e["rule"]))
        succs[e["source"]].append(e["target"])
    cycle = find_cycle(succs)
    if cycle:
        raise DagFormatError(f"{source}: the hooks form a cycle: {' -> '.join(cycle)}")
    return HookDAG(
        operation=data["operation"],
        plan=data["plan"],
        resources=tuple(resources.values()),
        dependencies=tuple((p, c) for p, c in data["dependencies"]),
        nodes=tuple(nodes),
        edges=tuple(edges),
        parameters=data["parameters"],
        limits=data.get("limits", {}),
        pruned=data.get("pruned", False),
    )
