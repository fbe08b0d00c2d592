"""Plans: the resources to protect, read from YAML or JSON and checked once.

A plan is validated against ``schemas/plan.schema.json`` where it enters, every
error collected at once, so that the rest of the compiler can trust it. The
:class:`~protectflow.dag.plan.Plan` it makes is pure data beside the HookDAG
(:mod:`protectflow.dag.plan`, re-exported here).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import attrs
import jsonschema

from protectflow._urls import check_bank_url
from protectflow._util import paused_gc
from protectflow.compiler.documents import parse_document
from protectflow.compiler.names import plan_name_problems, resource_problems
from protectflow.compiler.partial import well_formed
from protectflow.dag.model import Resource
from protectflow.dag.plan import Discovery, Plan, PlanResource
from protectflow.errors import BankError, PlanError
from protectflow.retention import RetentionPolicy, Schedule
from protectflow.retention.tags import tag_problem

__all__ = ["Discovery", "Plan", "PlanResource", "load_plan", "parse_plan", "partial_plan",
           "plan_schema"]


@cache
def plan_schema() -> dict[str, Any]:
    """The JSON Schema plans are checked against (shipped in the package)."""
    text = importlib_resources.files("protectflow").joinpath("schemas/plan.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


@cache
def _validator() -> Any:
    return jsonschema.Draft202012Validator(plan_schema())


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and check the plan at ``path`` (``.json``, ``.yaml`` or ``.yml``).

    Relative paths in the plan mean relative to the plan's folder, not to the
    current one: its ``bank`` (and an inline provider's), and those in a
    resource's ``extra_info``, for which every resource with ``extra_info``
    gets the folder, absolute, as ``extra_info["base_dir"]`` unless it gives
    one (the local plugins resolve against it, in every process and at
    restore time).

    Raises
    ------
    PlanError
        When the file is missing, is not well-formed, or breaks the schema;
        ``errors`` lists every problem found.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise PlanError(f"cannot read plan {source!r}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise PlanError(f"plan {source!r} is not UTF-8 text: {err}") from err
    plan = parse_plan(text, source=source)
    base = os.path.dirname(os.path.abspath(source))
    provider = plan.provider
    if isinstance(provider, dict) and isinstance(provider.get("bank"), str):
        provider = {**provider, "bank": _local_url(provider["bank"], base)}
    plan = attrs.evolve(plan, bank=plan.bank and _local_url(plan.bank, base), provider=provider)
    if not any(pr.resource.extra_info for pr in plan.resources):
        return plan
    resources = tuple(
        attrs.evolve(pr, resource=attrs.evolve(
            pr.resource, extra_info={"base_dir": base, **pr.resource.extra_info}))
        if pr.resource.extra_info else pr
        for pr in plan.resources
    )
    return attrs.evolve(plan, resources=resources)


def _local_url(url: str, base: str) -> str:
    """``url`` with a relative local folder made absolute against ``base``;
    other URLs (``s3://...``, ``memory://...``) as they are."""
    scheme = "file://" if url.startswith("file://") else ""
    if "://" in url and not scheme:
        return url
    folder = os.path.expanduser(url.removeprefix(scheme))
    return scheme + os.path.normpath(os.path.join(base, folder))


def parse_plan(text: str, *, source: str = "<plan>") -> Plan:
    """Parse and check a plan given as YAML or JSON text (JSON when ``source``
    ends in ``.json``).

    Raises
    ------
    PlanError
        When the text is not well-formed (see
        :func:`~protectflow.compiler.documents.parse_document`), breaks the
        schema, or names what no operation could store and restore (see
        :mod:`protectflow.compiler.names`); ``errors`` lists every problem.
    """
    with paused_gc():
        data = parse_document(text, source)
    errors = [] if _plainly_valid(data) else [_describe(e) for e in _validator().iter_errors(data)]
    if errors:
        # The references between the resources that read are checked too.
        raise PlanError(f"plan {source} is not valid:", sorted(errors) + _reference_problems(data))
    return _build(data, source)


def _reference_problems(data: Any) -> list[str]:
    """What :func:`_build` finds in the well-formed part of ``data`` (its
    resources named by their index in ``data``)."""
    found = well_formed(data)
    if found is None:
        return []
    part, indices = found
    try:
        _build(part, "")
    except PlanError as err:
        return [re.sub(r"resources\[(\d+)\]", lambda m: f"resources[{indices[int(m[1])]}]", e)
                for e in err.errors if not e.startswith("name: ")]
    return []


def partial_plan(path: str | os.PathLike[str]) -> Plan | None:
    """The plan at ``path`` made of its well-formed resources only (their
    dependencies on each other, its parameters if they read): what the
    plugin and parameter checks can still look at when the plan itself is
    refused; None when nothing of it reads.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = parse_document(f.read(), os.fspath(path))
    except (OSError, UnicodeDecodeError, PlanError):
        return None
    found = well_formed(data)
    if found is None:
        return None
    part, _ = found
    keys: dict[str, dict[str, Any]] = {}
    for item in part["resources"]:
        keys.setdefault(f"{item['type']}#{item['id']}", item)
    for item in keys.values():
        item["depends_on"] = [d for d in item["depends_on"]
                              if d in keys and d != f"{item['type']}#{item['id']}"]
    try:
        return _build({**part, "resources": list(keys.values())}, os.fspath(path))
    except PlanError:
        return None


_RESOURCE_FIELDS = frozenset(("type", "id", "name", "extra_info", "depends_on"))
_TYPE = re.compile(r"[^#\s]+")
_KEY = re.compile(r"[^#\s]+#.+")


def _plainly_valid(data: Any) -> bool:
    """A fast check that passes only plans the schema accepts.

    jsonschema spends about 30 us on each resource, 3 s for a plan of 100,000.
    When this check passes, so would the schema (a property test holds it to
    that); when it does not, the schema runs and reports every error.
    """
    if not isinstance(data, dict) or not isinstance(data.get("resources"), list):
        return False
    if not data["resources"]:
        return False
    rest = {k: v for k, v in data.items() if k != "resources"}
    if not _validator().is_valid({**rest, "resources": [{"type": "t", "id": "i"}]}):
        return False
    for item in data["resources"]:
        if (
            type(item) is not dict
            or not item.keys() <= _RESOURCE_FIELDS
            or type(item.get("type")) is not str
            or not _TYPE.fullmatch(item["type"])
            or type(item.get("id")) is not str
            or not item["id"]
            or type(item.get("name", "")) is not str
            or type(item.get("extra_info", {})) is not dict
        ):
            return False
        deps = item.get("depends_on", [])
        if type(deps) is not list:
            return False
        for dep in deps:
            if type(dep) is not str or not _KEY.fullmatch(dep):
                return False
    return True


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}"
            )
            hints.append(f"{where}: unknown field {name!r}{hint}")
        return "\n  - ".join(hints)
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "type" and not error.absolute_path:
        got = "empty" if error.instance is None else f"a {type(error.instance).__name__}"
        return (f"(top level): the plan is {got}; a plan is a mapping with a 'name' and a "
                "list of 'resources'")
    if error.validator == "pattern" and "#" in str(error.validator_value):
        if str(error.validator_value).startswith("^[^#\\s]+#"):
            return f"{where}: {error.instance!r} is not of the form 'TYPE#ID'"
        return f"{where}: {error.instance!r} is not a resource type (no '#' or spaces)"
    return f"{where}: {error.message}"


def _build(data: dict[str, Any], source: str) -> Plan:
    seen: dict[str, int] = {}
    errors = [f"name: {problem}" for problem in plan_name_problems(data["name"])]
    items: list[PlanResource] = []
    found: list[Discovery] = []
    for index, raw in enumerate(data["resources"]):
        if "discover" in raw:
            found.append(Discovery(raw["discover"]["type"], raw["discover"].get("parameters", {})))
            continue
        resource = Resource(raw["type"], raw["id"], raw.get("name", ""), raw.get("extra_info"))
        errors.extend(f"resources[{index}]: {problem}" for problem in resource_problems(resource))
        if resource.key in seen:
            errors.append(
                f"resources[{index}]: {resource.key} is listed twice "
                f"(first at resources[{seen[resource.key]}]); a resource's identity is TYPE#ID"
            )
            continue
        seen[resource.key] = index
        items.append(PlanResource(resource, tuple(raw.get("depends_on", ()))))
    for index, pr in enumerate(items):
        for dep in pr.depends_on:
            if dep not in seen:
                close = difflib.get_close_matches(dep, list(seen), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                errors.append(
                    f"resources[{index}] {pr.resource.key} depends on {dep}, which the plan "
                    f"does not list: add it to resources or remove it from depends_on{hint}"
                )
            elif dep == pr.resource.key:
                errors.append(f"resources[{index}] {dep} depends on itself")
    if data.get("bank") is not None:
        try:
            # A plan's file://rel is its folder's rel (load_plan makes it absolute).
            bank = data["bank"]
            relative = bank.startswith("file://") and not bank.startswith("file:///")
            check_bank_url("file:///" + bank[len("file://"):] if relative else bank)
        except BankError as err:
            errors.append(f"bank: {err}")
    errors.extend(f"tags: {problem}" for tag in data.get("tags", ())
                  if (problem := tag_problem(tag)) is not None)
    retention, schedules = _policies(data, errors)
    if errors:
        raise PlanError(f"plan {source} is not valid:", errors)
    return Plan(
        name=data["name"],
        resources=tuple(items),
        parameters=data.get("parameters", {}),
        limits=data.get("limits", {}),
        pools=data.get("pools", {}),
        bank=data.get("bank"),
        description=data.get("description", ""),
        source=source,
        provider=data.get("provider"),
        discover=tuple(found),
        tags=tuple(sorted(set(data.get("tags", ())))),
        retention=retention,
        schedules=schedules,
    )


def _policies(data: dict[str, Any], errors: list[str]
              ) -> tuple[RetentionPolicy | None, tuple[Schedule, ...]]:
    """The plan's ``retention`` and ``schedules``, their problems added to ``errors``."""
    retention = None
    if data.get("retention") is not None:
        try:
            retention = RetentionPolicy.from_json(data["retention"], _problem("retention"))
        except _Problem as err:
            errors.append(str(err))
    schedules = []
    for index, raw in enumerate(data.get("schedules", ())):
        try:
            schedules.append(Schedule.from_json(raw, _problem(f"schedules[{index}]")))
        except _Problem as err:
            errors.append(str(err))
    return retention, tuple(schedules)


class _Problem(Exception):
    """One problem of a plan's policies (collected with the others)."""


def _problem(where: str) -> Callable[[str], Exception]:
    return lambda why: _Problem(f"{where}: {why}")
