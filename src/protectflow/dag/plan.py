"""A plan as pure data: its resources, discoveries, parameters, limits and
pools, and the bank and provider it names, with its JSON form.

:meth:`Plan.to_json` is the form a checkpoint keeps in its record and
:meth:`Plan.from_json` reads it back, its types checked (a bank is untrusted
storage). Reading a plan *file* -- YAML or JSON, checked against the plan
schema with every error reported at once, relative paths resolved -- is the
compiler's (:func:`protectflow.compiler.load_plan`).
"""

from __future__ import annotations

from typing import Any

import attrs

from protectflow._fields import Fail, Fields, within
from protectflow.dag.model import Resource
from protectflow.errors import PlanError
from protectflow.retention import RetentionPolicy, Schedule

__all__ = ["Discovery", "Plan", "PlanResource"]


@attrs.frozen
class PlanResource:
    """A resource the plan lists, with the keys of the resources it depends on."""

    resource: Resource
    depends_on: tuple[str, ...] = ()


@attrs.frozen
class Discovery:
    """A plan entry standing for every resource of ``type`` that its
    protectable lists (``list_resources(context, parameters)``)."""

    type: str
    parameters: dict[str, Any] = attrs.field(factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        if self.parameters:
            body["parameters"] = self.parameters
        return {"discover": body}


@attrs.frozen
class Plan:
    """A checked plan: its resources, the discoveries that add more, its
    parameters, limits and pools, and the bank and provider it names."""

    name: str
    resources: tuple[PlanResource, ...]
    parameters: dict[str, dict[str, Any]] = attrs.field(factory=dict, hash=False)
    limits: dict[str, int] = attrs.field(factory=dict, hash=False)
    pools: dict[str, list[str]] = attrs.field(factory=dict, hash=False)
    bank: str | None = None
    description: str = ""
    source: str = attrs.field(default="<plan>", eq=False)
    #: A provider's name, an inline provider (its document form), or None
    #: for the default provider.
    provider: str | dict[str, Any] | None = attrs.field(default=None, hash=False)
    discover: tuple[Discovery, ...] = ()
    #: Tags every checkpoint of the plan carries (``protect --tag`` adds more).
    tags: tuple[str, ...] = ()
    #: Which of its checkpoints ``forget`` keeps; None: no policy.
    retention: RetentionPolicy | None = None
    #: When ``protectflow scheduler`` runs its operations.
    schedules: tuple[Schedule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The plan as the document it was read from (normalised)."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.bank:
            data["bank"] = self.bank
        if self.provider is not None:
            data["provider"] = self.provider
        items: list[dict[str, Any]] = []
        for pr in self.resources:
            item = pr.resource.to_json()
            if pr.depends_on:
                item["depends_on"] = list(pr.depends_on)
            items.append(item)
        items.extend(d.to_json() for d in self.discover)
        data["resources"] = items
        for field in ("parameters", "limits", "pools"):
            if getattr(self, field):
                data[field] = getattr(self, field)
        if self.tags:
            data["tags"] = list(self.tags)
        if self.retention is not None:
            data["retention"] = self.retention.to_json()
        if self.schedules:
            data["schedules"] = [s.to_json() for s in self.schedules]
        return data

    @classmethod
    def from_json(cls, data: object, *, source: str = "<stored plan>") -> Plan:
        """The plan :meth:`to_json` wrote (as a checkpoint keeps it), each
        field's type checked; ``source`` names it in the plan's errors.

        Raises
        ------
        PlanError
            Naming the first field that is missing or of the wrong type.
        """
        def fail(why: str) -> PlanError:
            return PlanError(f"plan {source} is not valid: {why}")

        fields = Fields(data, "plan", fail)
        resources: list[PlanResource] = []
        found: list[Discovery] = []
        for index, raw in enumerate(fields.get("resources", list)):
            item = Fields(raw, "resource", within(fail, f"resources[{index}]"))
            if "discover" in item:
                found.append(_discovery(item.get("discover", dict), item.fail))
            else:
                resources.append(PlanResource(_resource(item), item.strings("depends_on")))
        return cls(
            name=fields.get("name", str), resources=tuple(resources),
            parameters=_objects(fields, "parameters"), limits=_numbers(fields, "limits"),
            pools=_lists(fields, "pools"), bank=fields.optional("bank", str),
            description=fields.default("description", str, ""), source=source,
            provider=_provider(fields), discover=tuple(found), tags=fields.strings("tags"),
            retention=None if fields.optional("retention", dict) is None
            else RetentionPolicy.from_json(fields.data["retention"], within(fail, "retention")),
            schedules=tuple(Schedule.from_json(item, within(fail, f"schedules[{i}]"))
                            for i, item in enumerate(fields.default("schedules", list, []))),
        )


def _resource(item: Fields) -> Resource:
    return Resource(item.get("type", str), item.get("id", str), item.default("name", str, ""),
                    item.default("extra_info", dict, {}))


def _discovery(body: dict[str, object], fail: Fail) -> Discovery:
    fields = Fields(body, "discovery", fail)
    return Discovery(fields.get("type", str), fields.default("parameters", dict, {}))


def _objects(fields: Fields, name: str) -> dict[str, dict[str, Any]]:
    """A field mapping names to JSON objects (``parameters``)."""
    found = fields.default(name, dict, {})
    if not all(isinstance(v, dict) for v in found.values()):
        raise fields.fail(f"{name!r} does not map names to JSON objects")
    return found


def _numbers(fields: Fields, name: str) -> dict[str, int]:
    """A field mapping names to whole numbers (``limits``)."""
    found = fields.default(name, dict, {})
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in found.values()):
        raise fields.fail(f"{name!r} does not map names to whole numbers")
    return found


def _lists(fields: Fields, name: str) -> dict[str, list[str]]:
    """A field mapping names to lists of strings (``pools``)."""
    found = fields.default(name, dict, {})
    if not all(isinstance(v, list) and all(isinstance(s, str) for s in v)
               for v in found.values()):
        raise fields.fail(f"{name!r} does not map names to lists of strings")
    return found


def _provider(fields: Fields) -> str | dict[str, Any] | None:
    provider = fields.data.get("provider")
    if provider is not None and not isinstance(provider, (str, dict)):
        raise fields.fail("'provider' is neither a provider's name nor a JSON object")
    return provider
