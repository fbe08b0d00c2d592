"""Providers, as in Karbor: which plugin serves which resource type, with
each plugin's configuration, and the bank they keep their data in.

A plan names its provider (``provider: NAME``) or gives one inline::

    provider:
      bank: s3://backups/tenant
      plugins:
        OS::Glance::Image: glance-real   # this type by this plugin
      config:
        glance-real: {endpoint: https://glance.example}

A provider chooses for the types it names; every other type takes the
default choice (:meth:`Registry.plugin_name_for`): the one plugin claiming
it, fallbacks such as the sim plugins yielding to any other. Named providers
are the built-in ``default`` (chooses nothing) and ``sim`` (the sim plugins
for their seven OpenStack types, whatever else is installed), and those of
the providers file: ``$PROTECTFLOW_PROVIDERS``, else ``providers.yaml`` in
the user's configuration folder (read when a plan names a provider, never
at import)::

    providers:
      production:
        bank: s3://backups
        plugins: {OS::Glance::Image: glance-real}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import attrs
import jsonschema
import yaml

from protectflow.errors import PlanError, PluginError
from protectflow.plugins.registry import Registry

__all__ = ["DEFAULT", "Provider", "load_providers", "providers_path", "resolve_provider"]

DEFAULT = "default"
SIM = "sim"
VARIABLE = "PROTECTFLOW_PROVIDERS"


@attrs.frozen
class Provider:
    """A named choice of plugins per resource type, their configuration and a bank."""

    name: str
    plugins: dict[str, str] = attrs.field(factory=dict, hash=False)
    config: dict[str, dict[str, Any]] = attrs.field(factory=dict, hash=False)
    bank: str | None = None
    description: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], name: str = "inline") -> Provider:
        """A provider from its document form (already checked by the schema)."""
        return cls(name=data.get("name", name), plugins=dict(data.get("plugins", {})),
                   config={k: dict(v) for k, v in data.get("config", {}).items()},
                   bank=data.get("bank"), description=data.get("description", ""))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for field in ("description", "bank", "plugins", "config"):
            if getattr(self, field):
                out[field] = getattr(self, field)
        return out

    def plugin_for(self, resource_type: str, registry: Registry) -> str | None:
        """The plugin serving ``resource_type`` under this provider (``None``
        when no installed plugin claims it).

        Raises
        ------
        PluginError
            When the type is left to the default choice and two plugins claim
            it (the message names both and shows how to choose).
        """
        chosen = self.plugins.get(resource_type)
        return chosen if chosen is not None else registry.plugin_name_for(resource_type)

    def check(self, registry: Registry) -> None:
        """Refuse a provider naming a plugin that is not installed, or one
        that does not claim the type it is chosen for.

        Raises
        ------
        PluginError
            Listing every such problem.
        """
        problems = []
        claims = registry.claims()
        for rtype, name in sorted(self.plugins.items()):
            if name not in registry.protections:
                problems.append(f"it chooses plugin {name!r} for {rtype}, but no such plugin "
                                f"is installed (installed: {', '.join(registry.protections)})")
            elif name not in claims.get(rtype, ()):
                problems.append(f"it chooses plugin {name!r} for {rtype}, which that plugin "
                                f"does not handle (claimed by: "
                                f"{', '.join(claims.get(rtype, ())) or 'none'})")
        problems.extend(f"it configures plugin {name!r}, which is not installed"
                        for name in sorted(self.config) if name not in registry.protections)
        if problems:
            raise PluginError(f"provider {self.name!r} is not usable: " + "; ".join(problems),
                              self.name)


def builtin_providers(registry: Registry) -> dict[str, Provider]:
    """``default``, and ``sim`` when the sim plugin is installed."""
    out = {DEFAULT: Provider(DEFAULT, description="every installed plugin, each type served "
                             "by the one plugin claiming it")}
    if SIM in registry.protections:
        types = [t for t, names in registry.claims().items() if SIM in names]
        out[SIM] = Provider(SIM, plugins=dict.fromkeys(types, SIM),
                            description="the simulated cloud for its OpenStack types")
    return out


def providers_path() -> str:
    """Where the providers file is: ``$PROTECTFLOW_PROVIDERS``, else
    ``<user config dir>/protectflow/providers.yaml``."""
    env = os.environ.get(VARIABLE)
    if env:
        return env
    import platformdirs  # only when a plan names a provider: no work at import

    return os.path.join(platformdirs.user_config_dir("protectflow"), "providers.yaml")


def load_providers(path: str | os.PathLike[str] | None = None) -> dict[str, Provider]:
    """The providers of the providers file at ``path`` (default
    :func:`providers_path`); none when the file does not exist.

    Raises
    ------
    PlanError
        When the file cannot be read or is not valid; ``errors`` lists every
        problem.
    """
    source = os.fspath(path) if path is not None else providers_path()
    try:
        with open(source, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise PlanError(f"cannot read the providers file {source}: {err}") from err
    errors = sorted(f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
                    for e in _file_validator().iter_errors(data))
    if errors:
        raise PlanError(f"the providers file {source} is not valid:", errors)
    return {name: Provider.from_json(body, name)
            for name, body in sorted(data["providers"].items())}


def resolve_provider(spec: str | Mapping[str, Any] | Provider | None, registry: Registry, *,
                     providers: Mapping[str, Provider] | None = None) -> Provider:
    """The provider a plan's ``provider`` field names, checked against ``registry``.

    ``None`` is the default provider; a name is a built-in provider or one of
    ``providers`` (default: the providers file's); a mapping is an inline
    provider.

    Raises
    ------
    PluginError
        When the name is unknown (listing the known ones) or the provider
        chooses a plugin that is not installed or does not claim the type.
    """
    if spec is None:
        return builtin_providers(registry)[DEFAULT]
    if isinstance(spec, Provider):
        provider = spec
    elif isinstance(spec, Mapping):
        provider = Provider.from_json(spec)
    else:
        known = {**builtin_providers(registry),
                 **(load_providers() if providers is None else providers)}
        if spec not in known:
            raise PluginError(f"unknown provider {spec!r}; known: {', '.join(sorted(known))} "
                              f"(define providers in {providers_path()})", spec)
        provider = known[spec]
    provider.check(registry)
    return provider


@cache
def _file_validator() -> Any:
    text = importlib_resources.files("protectflow").joinpath("schemas/plan.schema.json")
    plan_schema = json.loads(text.read_text(encoding="utf-8"))
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "required": ["providers"], "additionalProperties": False,
        "properties": {"providers": {"type": "object",
                                     "additionalProperties": {"$ref": "#/$defs/provider"}}},
        "$defs": plan_schema["$defs"],
    }
    return jsonschema.Draft202012Validator(schema)
