"""The well-formed part of a plan that breaks its schema, so that the checks
after the schema's -- references between resources, plugins, parameters --
still run on what can be read, and one ``validate`` names every mistake
rather than one stage's at a time.

Nothing here accepts a plan: a plan with any problem is still refused; this
only finds more of its problems in the same run.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["well_formed"]

_TYPE = re.compile(r"[^#\s]+")
_KEY = re.compile(r"[^#\s]+#.+")


def _resource(raw: Any) -> dict[str, Any] | None:
    """``raw`` reduced to the fields that read as a resource's; None if its
    type or id does not."""
    if type(raw) is not dict or "discover" in raw:
        return None
    rtype, rid = raw.get("type"), raw.get("id")
    if not isinstance(rtype, str) or not _TYPE.fullmatch(rtype) or not isinstance(rid, str) \
            or not rid:
        return None
    deps = raw.get("depends_on")
    item: dict[str, Any] = {"type": rtype, "id": rid, "depends_on": [
        d for d in (deps if isinstance(deps, list) else []) if isinstance(d, str)
        and _KEY.fullmatch(d)]}
    if isinstance(raw.get("name"), str):
        item["name"] = raw["name"]
    if isinstance(raw.get("extra_info"), dict):
        item["extra_info"] = raw["extra_info"]
    return item


def well_formed(data: Any) -> tuple[dict[str, Any], list[int]] | None:
    """The plan document ``data`` keeps of its well-formed resources (and
    parameters, when they are a mapping of mappings), with each kept
    resource's index in the original; None when no resource reads."""
    raw = data.get("resources") if isinstance(data, dict) else None
    read = [(i, _resource(r)) for i, r in enumerate(raw if isinstance(raw, list) else [])]
    kept = [(i, r) for i, r in read if r is not None]
    if not kept:
        return None
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not all(isinstance(v, dict)
                                                   for v in parameters.values()):
        parameters = {}
    name = data.get("name")
    return ({"name": name if isinstance(name, str) and name else "plan",
             "resources": [r for _, r in kept], "parameters": parameters},
            [i for i, _ in kept])
