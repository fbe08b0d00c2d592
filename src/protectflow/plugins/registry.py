"""Finding plugins: entry points, built-ins registered the same way.

An executor resolves a node's plugin by name through :func:`get_registry` in
the process where the hook runs, so only names travel between processes.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from protectflow.errors import PluginError
from protectflow.plugins.base import Protectable, ProtectionPlugin

__all__ = ["PROTECTABLES", "PROTECTIONS", "Registry", "get_registry", "load_entry_points"]

PROTECTIONS = "protectflow.protections"
PROTECTABLES = "protectflow.protectables"


def load_entry_points(group: str) -> dict[str, Any]:
    """Name -> loaded object for every entry point of ``group``, sorted by name."""
    found: dict[str, Any] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if ep.name in found:
            continue  # the same distribution seen twice on sys.path
        try:
            found[ep.name] = ep.load()
        except Exception as err:
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) of {group} failed to load: {err}", ep.name
            ) from err
    return found


class Registry:
    """Protection plugins by name and by resource type, protectables by type.

    Two protection plugins (or two protectables) claiming one resource type is
    an error naming both, never "the last one wins".
    """

    def __init__(
        self,
        protections: Mapping[str, ProtectionPlugin],
        protectables: Iterable[Protectable] = (),
    ) -> None:
        self.protections = dict(sorted(protections.items()))
        self._by_type: dict[str, str] = {}
        for name, plugin in self.protections.items():
            for rtype in plugin.get_supported_resources_types():
                other = self._by_type.setdefault(rtype, name)
                if other != name:
                    raise PluginError(
                        f"protection plugins {other!r} and {name!r} both claim resource type "
                        f"{rtype!r}; uninstall or disable one of them",
                        name,
                    )
        self.protectables: dict[str, Protectable] = {}
        for p in protectables:
            rtype = p.get_resource_type()
            if rtype in self.protectables:
                raise PluginError(
                    f"protectables {type(self.protectables[rtype]).__name__!r} and "
                    f"{type(p).__name__!r} both claim resource type {rtype!r}",
                    type(p).__name__,
                )
            self.protectables[rtype] = p

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Every installed plugin, found through the ``protectflow.*`` groups."""
        protections = {n: c() for n, c in load_entry_points(PROTECTIONS).items()}
        protectables = [c() for c in load_entry_points(PROTECTABLES).values()]
        return cls(protections, protectables)

    def resource_types(self) -> list[str]:
        return sorted(self._by_type)

    def plugin_name_for(self, resource_type: str) -> str | None:
        """The name of the protection plugin for ``resource_type``, if any."""
        return self._by_type.get(resource_type)

    def plugin(self, name: str) -> ProtectionPlugin:
        try:
            return self.protections[name]
        except KeyError:
            raise PluginError(
                f"unknown protection plugin {name!r}; installed: "
                f"{', '.join(self.protections) or 'none'}",
                name,
            ) from None

    def protectable_for(self, resource_type: str) -> Protectable | None:
        return self.protectables.get(resource_type)


_lock = threading.Lock()
_cache: dict[str | None, Registry] = {}


def get_registry(spec: str | None = None) -> Registry:
    """The registry of this process, built once and cached.

    ``spec`` is ``None`` for the installed entry points, or ``"module:function"``
    naming a function that returns a :class:`Registry`: the way a program (or a
    test) hands its own plugins to executors in other processes, by name.
    """
    with _lock:
        registry = _cache.get(spec)
        if registry is None:
            registry = Registry.from_entry_points() if spec is None else _from_spec(spec)
            _cache[spec] = registry
        return registry


def _from_spec(spec: str) -> Registry:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise PluginError(
            f"cannot load the plugin registry {spec!r}: {err}; "
            "give it as 'module:function' where the function returns a Registry",
            spec,
        ) from err
    registry = factory()
    if not isinstance(registry, Registry):
        raise PluginError(f"{spec!r} returned {type(registry).__name__}, not a Registry", spec)
    return registry
