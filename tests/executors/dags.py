"""Building test DAGs from small plans of sim resources."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import HookDAG
from protectflow.plugins import get_registry
from tests.executors.executor_plugins import SPEC

TYPES = ("OS::Cinder::Volume", "OS::Glance::Image", "OS::Nova::Server")


def make_dag(resources: list[dict[str, Any]], operation: str = "protect", *,
             parameters: dict[str, Any] | None = None,
             limits: dict[str, int] | None = None) -> HookDAG:
    plan: dict[str, Any] = {"name": "test", "resources": resources}
    if parameters:
        plan["parameters"] = parameters
    if limits:
        plan["limits"] = limits
    return compile_plan(parse_plan(json.dumps(plan)), operation, registry=get_registry(SPEC))


def flat(n: int, rtype: str = "OS::Cinder::Volume", prefix: str = "v") -> list[dict[str, Any]]:
    """``n`` independent resources."""
    return [{"type": rtype, "id": f"{prefix}{i}"} for i in range(n)]


@st.composite
def resource_graphs(draw: st.DrawFn, max_resources: int = 7) -> list[dict[str, Any]]:
    """A random acyclic resource graph: resource i may depend on any j > i."""
    n = draw(st.integers(1, max_resources))
    types = [draw(st.sampled_from(TYPES)) for _ in range(n)]
    resources = []
    for i in range(n):
        deps = draw(st.sets(st.integers(i + 1, n - 1), max_size=3)) if i < n - 1 else set()
        item: dict[str, Any] = {"type": types[i], "id": f"r{i}"}
        if deps:
            item["depends_on"] = [f"{types[j]}#r{j}" for j in sorted(deps)]
        resources.append(item)
    return resources


def ancestors(preds: dict[str, list[str]], node: str) -> set[str]:
    """Every node ``node`` waits for, directly or not."""
    seen: set[str] = set()
    stack = list(preds[node])
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.add(p)
            stack.extend(preds[p])
    return seen
