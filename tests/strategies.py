"""Hypothesis strategies shared by the tests: resource graphs, plans, cycles and
mutated documents.

A resource graph is drawn as a :class:`Spec`: resources and ``(parent, child)``
key pairs. Acyclic specs only ever link a resource to one drawn after it in a
random order, so they cover several roots, shared children with several
parents and deep chains; cyclic specs add the edges of one cycle on top.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import attrs
from hypothesis import strategies as st

from protectflow.compiler import compile_plan
from protectflow.compiler.plan import Plan, PlanResource
from protectflow.dag.model import HOOKS, OPERATIONS, HookDAG, Resource
from protectflow.plugins.base import Operation, ProtectionPlugin
from protectflow.plugins.builtin.sim import SIM_TYPES
from protectflow.plugins.registry import Registry
from protectflow.retention import RetentionPolicy, Span

__all__ = [
    "Spec",
    "any_text",
    "cyclic_specs",
    "full_registry",
    "hook_dags",
    "mutated",
    "operation_class",
    "plan_dicts",
    "plans",
    "plugin_for",
    "refused_ids",
    "registry_plugins",
    "resource_ids",
    "resource_types",
    "set_path",
    "specs",
]

_PLAN_TYPE = re.compile(r"[^#\s]+")

#: Any text a JSON document can carry and UTF-8 can encode (no lone surrogates).
any_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)

#: Text with no control character (a resource's key and a plan's name may have none).
_printable = st.characters(blacklist_categories=("Cs", "Cc"))

#: Resource types: the sim ones, or odd strings a plan's schema still accepts
#: (no '#', no whitespace; a '#' in a type would make two keys collide).
resource_types = st.one_of(
    st.sampled_from(SIM_TYPES),
    st.text(_printable, min_size=1, max_size=8).filter(
        lambda t: _PLAN_TYPE.fullmatch(t) is not None),
)

#: Resource ids: anything a plan accepts (protectflow.compiler.names: no control
#: character, no '/', not '.' or '..'); '#', spaces, quotes, backslashes and
#: non-ASCII included on purpose.
resource_ids = st.one_of(
    st.sampled_from(["a", "b", "web-1", "x#y", "a.main", 'q"uote', "back\\slash", "é ü 名",
                     "...", ".hidden", "%2F", "a b"]),
    st.text(_printable, min_size=1, max_size=8).filter(
        lambda i: "/" not in i and i not in (".", "..")),
)

#: Resource ids no operation could store and restore, each refused by name.
refused_ids = st.one_of(
    st.sampled_from([".", "..", "a/b", "/", "a\x00b", "tab\tbed", "new\nline", "\x7f",
                     "x" * 256, "é" * 50, "\ud800"]),
    st.builds(lambda head, bad, tail: head + bad + tail, st.text(_printable, max_size=4),
              st.sampled_from(["/", "\x00", "\x1b", "\r", "\x85"]),
              st.text(_printable, max_size=4)),
)


@attrs.frozen
class Spec:
    """A resource graph as drawn: resources, and parent -> child key pairs."""

    resources: tuple[Resource, ...]
    edges: frozenset[tuple[str, str]]

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self.resources]

    @property
    def types(self) -> list[str]:
        return sorted({r.type for r in self.resources})

    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {k: [] for k in self.keys}
        for parent, child in sorted(self.edges):
            out[parent].append(child)
        return out

    def to_plan(self, name: str = "spec") -> Plan:
        kids = self.children()
        return Plan(
            name=name,
            resources=tuple(PlanResource(r, tuple(kids[r.key])) for r in self.resources),
        )

    def to_plan_dict(self, name: str = "spec") -> dict[str, Any]:
        kids = self.children()
        items: list[dict[str, Any]] = []
        for r in self.resources:
            item: dict[str, Any] = {"type": r.type, "id": r.id, "name": r.name}
            if r.extra_info:
                item["extra_info"] = copy.deepcopy(r.extra_info)
            if kids[r.key]:
                item["depends_on"] = kids[r.key]
            items.append(item)
        return {"name": name, "resources": items}


@st.composite
def _resources(
    draw: st.DrawFn, min_size: int, max_size: int, types: st.SearchStrategy[str]
) -> list[Resource]:
    # A few types shared by many resources, as in a real tenant.
    palette = draw(st.lists(types, min_size=1, max_size=4, unique=True))
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(palette), resource_ids),
            min_size=min_size,
            max_size=max_size,
            unique=True,
        )
    )
    names = st.one_of(st.just(""), any_text)
    extras = st.one_of(st.just({}), st.just({"zone": "a", "tags": ["x", 1]}))
    return [Resource(t, i, draw(names), draw(extras)) for t, i in pairs]


@st.composite
def specs(
    draw: st.DrawFn,
    *,
    min_size: int = 1,
    max_size: int = 10,
    types: st.SearchStrategy[str] = resource_types,
) -> Spec:
    """Acyclic resource graphs."""
    resources = draw(_resources(min_size, max_size, types))
    order = draw(st.permutations(resources))  # the topological order, not list order
    n = len(order)
    edges: set[tuple[str, str]] = set()
    if n > 1:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        edges |= {
            (order[i].key, order[j].key)
            for i, j in draw(st.lists(st.sampled_from(pairs), max_size=3 * n))
        }
        if draw(st.booleans()):  # a deep chain through every resource
            edges |= {(order[i].key, order[i + 1].key) for i in range(n - 1)}
    return Spec(tuple(resources), frozenset(edges))


@st.composite
def cyclic_specs(
    draw: st.DrawFn,
    *,
    min_cycle: int = 2,
    max_size: int = 8,
    types: st.SearchStrategy[str] = resource_types,
) -> Spec:
    """Resource graphs with at least one cycle of ``min_cycle`` or more resources
    (``min_cycle=1`` allows a resource that depends on itself)."""
    spec = draw(specs(min_size=max(min_cycle, 1), max_size=max_size, types=types))
    keys = spec.keys
    ring = draw(
        st.lists(st.sampled_from(keys), min_size=min_cycle, max_size=len(keys), unique=True)
    )
    cycle = {(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))}
    return Spec(spec.resources, spec.edges | cycle)


def plans(**kwargs: Any) -> st.SearchStrategy[Plan]:
    """Acyclic graphs as :class:`Plan` objects (ids may hold any character)."""
    return specs(**kwargs).map(lambda s: s.to_plan())


def plan_dicts(**kwargs: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Acyclic graphs as plan documents, valid against the plan schema."""
    return specs(**kwargs).map(lambda s: s.to_plan_dict())


# -- plugins whose operations implement only some hooks ---------------------------


def operation_class(hooks: Sequence[str]) -> type[Operation]:
    """An Operation subclass that overrides exactly ``hooks``."""
    # A fresh function per hook: implemented_hooks() compares identities.
    body = {f"on_{h}": (lambda *a, **k: None) for h in hooks}
    return type(f"Op_{'_'.join(hooks) or 'none'}", (Operation,), body)


def plugin_for(types: Sequence[str], hooks_by_operation: dict[str, Sequence[str]]) -> Any:
    """A ProtectionPlugin for ``types`` whose operations implement the given hooks."""
    ops = {op: operation_class(hooks) for op, hooks in hooks_by_operation.items()}
    body: dict[str, Any] = {"supported_resource_types": tuple(types)}
    for op, cls in ops.items():
        body[f"get_{op}_operation"] = lambda self, resource, _cls=cls: _cls()
    return type("PartialPlugin", (ProtectionPlugin,), body)()


def registry_plugins(
    types: Sequence[str], operations: Sequence[str]
) -> st.SearchStrategy[dict[str, Any]]:
    """Plugin name -> plugin, one plugin per type, each implementing a drawn
    subset of the hooks (possibly none, possibly all) for each operation."""
    subsets = st.lists(st.sampled_from(HOOKS), unique=True).map(
        lambda hs: [h for h in HOOKS if h in hs]
    )
    per_type = st.fixed_dictionaries({op: subsets for op in operations})
    return st.lists(per_type, min_size=len(types), max_size=len(types)).map(
        lambda chosen: {
            f"partial-{i}": plugin_for([t], hooks)
            for i, (t, hooks) in enumerate(zip(types, chosen, strict=True))
        }
    )


# -- mutated documents, for the fast pre-checks ------------------------------------

_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "\n", "x", "a#b", "#", "T#", "main", "green", "a b", "x\n"]),
    st.just([]),
    st.just({}),
    st.just(["x"]),
    st.just({"a": 1}),
    st.just([["a", "b"]]),
).map(copy.deepcopy)  # mutations go on inside a value: never share one between examples


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _misspell(name: str) -> str:
    if len(name) < 2:
        return name + "s"
    return name[1] + name[0] + name[2:] if name[0] != name[1] else name + "s"


@st.composite
def _mutation(draw: st.DrawFn, doc: Any) -> None:
    """Change ``doc`` in place at one drawn spot."""
    # Draw the shape of the spot first ("nodes[*].hook"), then the spot: each
    # kind of field gets its turn however many nodes and edges repeat it.
    shapes: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for p in _paths(doc)[1:]:  # never the root itself
        shapes.setdefault(tuple("*" if type(x) is int else x for x in p), []).append(p)
    path = draw(st.sampled_from(draw(st.sampled_from(list(shapes.values())))))
    parent, last = _get(doc, path[:-1]), path[-1]
    value = parent[last]
    kinds = ["replace", "replace", "replace", "delete"]
    if isinstance(parent, dict):
        kinds += ["rename", "add-sibling"]
    if isinstance(value, str):
        kinds += ["newline", "empty", "hash", "space"]
    kind = draw(st.sampled_from(kinds))
    if kind == "replace":
        parent[last] = draw(_JUNK)
    elif kind == "delete":
        del parent[last]
    elif kind == "rename":
        parent[_misspell(str(last))] = parent.pop(last)
    elif kind == "add-sibling":
        parent[draw(st.sampled_from(["extra", "nmae", "type", "id", "Name"]))] = draw(_JUNK)
    elif kind == "empty":
        parent[last] = ""
    else:
        where = draw(st.integers(0, len(value)))
        char = {"newline": "\n", "hash": "#", "space": " "}[kind]
        parent[last] = value[:where] + char + value[where:]


def mutated(docs: st.SearchStrategy[Any], *, max_mutations: int = 3) -> st.SearchStrategy[Any]:
    """``docs`` with one to ``max_mutations`` random changes each: fields dropped,
    added or misspelt, values of the wrong type, empty strings, newlines,
    '#' and spaces inserted into strings."""

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        doc = copy.deepcopy(draw(docs))
        # Mostly one change: a second one would often hide the first from the check.
        count = draw(st.sampled_from([1, 1, 1, *range(2, max_mutations + 1)]))
        for _ in range(count):
            if len(_paths(doc)) > 1:
                draw(_mutation(doc))
        return doc

    return build()


def set_path(doc: Any, path: str, value: Any) -> Any:
    """``doc`` with the value at ``path`` (dotted, '-' to delete) replaced."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = doc
    for part in parents:
        target = target[part]
    if value == "-":
        del target[last]
    else:
        target[last] = value
    return doc


# -- registries and compiled DAGs ---------------------------------------------------


def full_registry(types: Sequence[str]) -> Registry:
    """A registry with one plugin, ``every``, implementing every hook of every
    operation for ``types``."""
    return Registry({"every": plugin_for(types, {op: HOOKS for op in OPERATIONS})})


@st.composite
def hook_dags(draw: st.DrawFn, *, max_size: int = 8) -> HookDAG:
    """Compiled HookDAGs: a drawn resource graph and operation, plugins that
    implement a drawn subset of the hooks, pruned or not."""
    spec = draw(specs(max_size=max_size))
    operation = draw(st.sampled_from(OPERATIONS))
    plugins = draw(registry_plugins(spec.types, [operation]))
    return compile_plan(spec.to_plan(), operation, registry=Registry(plugins),
                        prune=draw(st.booleans()))


# -- retention: histories of checkpoint times and policies --------------------------
TAGS = ("a", "b", "c")


@st.composite
def histories(draw: st.DrawFn, *, max_size: int = 40,
              ) -> list[tuple[str, Any, frozenset[str]]]:
    """``(id, time, tags)`` of a plan's checkpoints: distinct UTC times over a
    few years, bunched (several an hour, a day, a week) as real ones are."""
    start = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)
    gaps = draw(st.lists(st.sampled_from([60, 1800, 3600, 5 * 3600, 86400, 3 * 86400,
                                          8 * 86400, 40 * 86400, 200 * 86400]),
                         min_size=1, max_size=max_size))
    out = []
    at = start + dt.timedelta(seconds=draw(st.integers(0, 86400 * 400)))
    for index, gap in enumerate(gaps):
        at += dt.timedelta(seconds=gap + draw(st.integers(0, 59)))
        tags = frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2)))
        out.append((f"c{index:03d}", at, tags))
    return out


@st.composite
def retention_policies(draw: st.DrawFn, *, unlimited: bool = True) -> Any:
    """A retention policy with restic's rules (counts -1 only if ``unlimited``:
    restic 0.14 has no -1)."""
    low = -1 if unlimited else 0
    counts = {k: draw(st.one_of(st.just(0), st.integers(low, 5)))
              for k in ("last", "hourly", "daily", "weekly", "monthly", "yearly")}
    spans = st.one_of(st.none(), st.builds(Span, st.integers(0, 1), st.integers(0, 6),
                                           st.integers(0, 40), st.integers(0, 30)))
    within = {k: draw(spans) for k in ("within", "within_hourly", "within_daily",
                                       "within_weekly", "within_monthly", "within_yearly")}
    within = {k: (None if v is not None and v.zero else v) for k, v in within.items()}
    tags = draw(st.lists(st.sets(st.sampled_from(TAGS), min_size=1, max_size=2).map(
        lambda s: tuple(sorted(s))), max_size=2))
    return RetentionPolicy(**counts, **within, keep_tags=tuple(tags))
