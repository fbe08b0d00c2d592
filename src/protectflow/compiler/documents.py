"""Reading a YAML or JSON document that a stranger may have written.

A plan is data from outside, so the reader refuses, before anything uses the
document, what the YAML and JSON libraries take silently or fail on late:

- a key given twice in one mapping (YAML and JSON both keep the last one,
  so ``path:`` given twice would protect the second path without a word);
- aliases that expand a YAML document beyond :data:`MAX_ALIAS_EXPANSION`
  nodes (a 560-byte "billion laughs" document loads as shared objects in
  microseconds, then takes gigabytes as soon as it is validated or stored);
- a recursive YAML alias (an object that contains itself);
- nesting deeper than :data:`MAX_DEPTH` (a 10,000-deep JSON list ends in a
  ``RecursionError`` otherwise).

Each is a :class:`~protectflow.errors.PlanError` naming the document, what is
wrong and where: a line and column.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import yaml
from yaml.constructor import BaseConstructor, ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from protectflow.errors import PlanError

__all__ = ["MAX_ALIAS_EXPANSION", "MAX_DEPTH", "parse_document"]

#: The deepest a document may nest mappings and lists (a plan needs about 5).
MAX_DEPTH = 100
#: How many nodes YAML aliases may add to a document once expanded.
MAX_ALIAS_EXPANSION = 1_000_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_document(text: str, source: str, *, what: str = "plan") -> Any:
    """The data in ``text``: JSON when ``source`` ends in ``.json``, else YAML.

    ``what`` names the document in messages (``plan``, ``parameters``).

    Raises
    ------
    PlanError
        When the text is not well-formed, gives a key twice in one mapping,
        nests deeper than :data:`MAX_DEPTH`, or (YAML) has aliases that
        expand beyond :data:`MAX_ALIAS_EXPANSION` nodes or refer to
        themselves; the message names the place.
    """
    name = f"{what} {source}"
    if source.endswith(".json"):
        return _parse_json(text, name)
    # Without an anchor there is no alias: nothing can expand or recur, and the
    # depth is checked on the data (the node graph is checked only to say where).
    aliases = "&" in text
    data = _parse_yaml(text, name, checked=aliases)
    if not aliases and _depth(data) > MAX_DEPTH:
        _parse_yaml(text, name, checked=True)  # raises, with the place
        raise PlanError(f"{name} is not valid YAML: it nests deeper than {MAX_DEPTH} levels")
    return data


def _parse_yaml(text: str, name: str, *, checked: bool) -> Any:
    try:
        return yaml.load(text, Loader=_loader(checked))
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or str(err)
        raise PlanError(f"{name} is not valid YAML: {problem}{where}") from err
    except RecursionError as err:  # only the pure-Python parser recurses this deep
        raise PlanError(f"{name} is not valid YAML: it nests deeper than "
                        f"{MAX_DEPTH} levels") from err


def _depth(data: Any) -> int:
    """How deep lists and mappings nest in ``data`` (0 for a scalar), or the
    first depth found beyond MAX_DEPTH; level by level, no recursion."""
    level, depth = [data], 0
    while level:
        level = [item for value in level if type(value) in _CONTAINERS
                 for item in (value.values() if type(value) is dict else value)]
        level = [item for item in level if type(item) in _CONTAINERS]
        depth += 1
        if depth > MAX_DEPTH:
            break
    return depth if type(data) in _CONTAINERS else 0


_CONTAINERS = frozenset((dict, list, tuple))


# -- YAML ---------------------------------------------------------------------------
@cache
def _loader(checked: bool) -> type:
    """YAML's safe loader (the C one when there is one) that refuses a key
    given twice, and with ``checked`` the node graph as the module says; dates
    stay strings: a plan is JSON data, and a date would pass an "any object"
    schema only to break the DAG file."""
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    resolvers = {
        first: [(tag, regexp) for tag, regexp in entries if tag != "tag:yaml.org,2002:timestamp"]
        for first, entries in base.yaml_implicit_resolvers.items()
    }
    methods: dict[str, Any] = {"yaml_implicit_resolvers": resolvers,
                               "construct_mapping": _construct_mapping}
    if checked:
        methods["construct_document"] = _construct_document
    return type("PlanLoader", (base,), methods)


def _construct_document(self: Any, node: Node) -> Any:
    # The composed node graph shares the node of an anchor with every alias to
    # it, so it is small even for a bomb: check it before building anything.
    _check_node_graph(node)
    return BaseConstructor.construct_document(self, node)


def _construct_mapping(self: Any, node: MappingNode, deep: bool = False) -> Any:
    original = node.value
    pairs = list(original)
    mapping = SafeConstructor.construct_mapping(self, node, deep)
    # Fewer keys than pairs means a key given twice; a merge key ("<<", which
    # flatten_mapping replaces in node.value) may hide one: check those slowly.
    merged = node.value is not original or len(original) != len(pairs)
    if merged or len(mapping) < len(pairs):
        _refuse_duplicate_keys(self, pairs)
    return mapping


def _refuse_duplicate_keys(self: Any, pairs: list[tuple[Node, Node]]) -> None:
    seen: dict[Any, Node] = {}
    for key_node, _ in pairs:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
            continue  # merge keys may repeat and their keys be overridden
        first = seen.setdefault(self.construct_object(key_node), key_node)
        if first is not key_node:
            raise ConstructorError(
                None, None,
                f"duplicate key {key_node.value!r} (first at line {first.start_mark.line + 1}"
                f", column {first.start_mark.column + 1}); give each key once",
                key_node.start_mark)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_node_graph(root: Node) -> None:
    """Refuse a recursive alias, nesting deeper than MAX_DEPTH, or aliases that
    expand beyond MAX_ALIAS_EXPANSION nodes; iteratively (no recursion limit),
    visiting each list and mapping once (scalars are counted, not visited)."""
    size: dict[int, int] = {}  # id(collection) -> its nodes once expanded
    height: dict[int, int] = {}  # id(collection) -> collections nested in it, itself too
    own: dict[int, int] = {}  # id(collection) -> itself and its scalars
    uses: dict[int, int] = {}
    nodes: dict[int, Node] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = [id(kid) for kid in _children(node)]
            size[key] = 1 + sum(size.get(k, 1) for k in kids)
            height[key] = 1 + max((height.get(k, 0) for k in kids), default=0)
            own[key] = 1 + sum(k not in size for k in kids)
            on_path.discard(key)
            continue
        uses[key] = uses.get(key, 0) + 1
        if key in size:
            continue
        if key in on_path:
            raise ConstructorError(None, None, "an alias refers to the node that contains "
                                   "it (a recursive alias)", node.start_mark)
        on_path.add(key)
        nodes[key] = node
        stack.append((node, True))
        stack.extend((kid, False) for kid in reversed(_children(node))
                     if not isinstance(kid, ScalarNode))
    if not size:
        return  # a scalar document
    if height[id(root)] > MAX_DEPTH:
        raise ConstructorError(None, None, f"it nests deeper than {MAX_DEPTH} levels",
                               _deepest_mark(root, height))
    expansion = size[id(root)] - sum(own.values())
    if expansion > MAX_ALIAS_EXPANSION:
        worst = max((n for n in size if uses[n] > 1), key=lambda n: size[n] * uses[n])
        raise ConstructorError(
            None, None,
            f"its aliases expand it by {expansion:,} nodes, more than the "
            f"{MAX_ALIAS_EXPANSION:,} allowed (this anchor, {size[worst]:,} nodes once "
            f"expanded, is used {uses[worst]} times)", nodes[worst].start_mark)


def _deepest_mark(root: Node, height: dict[int, int]) -> Any:
    """Where the path to the deepest list or mapping passes MAX_DEPTH."""
    node, depth = root, 1
    while depth <= MAX_DEPTH:
        node = max(_children(node), key=lambda k: height.get(id(k), 0))
        depth += 1
    return node.start_mark


# -- JSON ---------------------------------------------------------------------------
class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateKey()
    return out


def _parse_json(text: str, name: str) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as err:
        raise PlanError(
            f"{name} is not valid JSON: {err.msg} "
            f"{'' if err.msg.endswith(' at') else 'at '}line {err.lineno}, column {err.colno}"
        ) from err
    except (_DuplicateKey, RecursionError) as err:
        raise PlanError(f"{name} is not valid JSON: {_json_problem(text)}") from err
    if _depth(data) > MAX_DEPTH:
        raise PlanError(f"{name} is not valid JSON: {_json_problem(text)}")
    return data


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?|[\[\]{}]', re.DOTALL)


def _json_problem(text: str) -> str:
    """Where a well-formed JSON text gives a key twice or nests too deep (the
    slow way, only once a problem is known)."""
    keys: list[dict[str, int] | None] = []  # per open bracket: keys seen in an object
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            keys.append({} if token == "{" else None)
            if len(keys) > MAX_DEPTH:
                return f"it nests deeper than {MAX_DEPTH} levels{_place(text, match.start())}"
        elif token in ("}", "]"):
            keys.pop()
        elif match.group(1) and keys and keys[-1] is not None:
            key = json.loads(token[:-len(match.group(1))])
            if key in keys[-1]:
                first = _place(text, keys[-1][key]).removeprefix(" at ")
                return (f"duplicate key {key!r} (first at {first}); give each key "
                        f"once{_place(text, match.start())}")
            keys[-1][key] = match.start()
    return "a key is given twice in one object"


def _place(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)  # rfind gives -1 on the first line
    return f" at line {line}, column {column}"
