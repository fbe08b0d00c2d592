"""Finding plugins: entry points, built-ins registered the same way.

An executor resolves a node's plugin by name through :func:`get_registry` in
the process where the hook runs, so only names travel between processes.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

from protectflow.errors import PluginError
from protectflow.plugins.contract import supported_types

__all__ = ["PROTECTABLES", "PROTECTIONS", "Registry", "ambiguity", "configured_spec",
           "get_registry", "load_entry_points", "using_registry"]

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

    Any number of plugins may claim one resource type: which one serves it
    is a provider's choice (:mod:`protectflow.plugins.providers`). Without
    one, the default choice is the only plugin claiming the type, not
    counting *fallback* plugins (``fallback = True``, as the built-in sim
    plugins are), which serve a type only when nothing else claims it. Two
    plugins left to choose from is an error only when a plan uses the type
    (:meth:`plugin_name_for`); the same holds for protectables.
    """

    def __init__(
        self,
        protections: Mapping[str, Any],
        protectables: Iterable[Any] = (),
    ) -> None:
        self.protections: dict[str, Any] = dict(sorted(protections.items()))
        claims: dict[str, list[str]] = {}
        for name, plugin in self.protections.items():
            for rtype in supported_types(plugin):
                claims.setdefault(rtype, []).append(name)
        self._claims = {t: tuple(names) for t, names in sorted(claims.items())}
        by_type: dict[str, list[Any]] = {}
        for p in protectables:
            by_type.setdefault(p.get_resource_type(), []).append(p)
        self._protectable_claims = dict(sorted(by_type.items()))
        #: The default protectable of each type that has exactly one choice.
        self.protectables: dict[str, Any] = {
            t: chosen[0] for t, ps in self._protectable_claims.items()
            if len(chosen := _preferred(ps)) == 1
        }
        self._configured: dict[tuple[str, str], Any] = {}
        self._with_config: dict[str, Registry] = {}
        self._configured_lock = threading.Lock()

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Every installed plugin, found through the ``protectflow.*`` groups."""
        protections = {n: c() for n, c in load_entry_points(PROTECTIONS).items()}
        protectables = [c() for c in load_entry_points(PROTECTABLES).values()]
        return cls(protections, protectables)

    def with_choices(self, choices: Mapping[str, str]) -> Registry:
        """A registry in which each resource type of ``choices`` is claimed
        only by the plugin chosen for it (the others keep their other types):
        a provider's choice made the default one.

        Raises
        ------
        PluginError
            When a chosen plugin is not installed.
        """
        for name in choices.values():
            self.plugin(name)
        protections = {
            name: _Restricted(plugin, tuple(
                t for t in supported_types(plugin) if choices.get(t, name) == name))
            for name, plugin in self.protections.items()
        }
        protectables = [p for ps in self._protectable_claims.values() for p in ps]
        return Registry(protections, protectables)

    def resource_types(self) -> list[str]:
        """Every resource type some protection plugin claims, sorted."""
        return list(self._claims)

    def claims(self) -> dict[str, tuple[str, ...]]:
        """Resource type -> the names of every plugin claiming it, sorted."""
        return dict(self._claims)

    def conflicts(self) -> dict[str, tuple[str, ...]]:
        """The types a plan can only use through a provider that chooses:
        type -> the (non-fallback) plugins claiming it."""
        out = {}
        for rtype, names in self._claims.items():
            preferred = _preferred([self.protections[n] for n in names])
            if len(preferred) > 1:
                out[rtype] = tuple(n for n in names if self.protections[n] in preferred)
        return out

    def plugin_name_for(self, resource_type: str) -> str | None:
        """The default choice of protection plugin for ``resource_type``
        (``None`` if no plugin claims it).

        Raises
        ------
        PluginError
            When two plugins claim the type and neither is a fallback; the
            message names both and shows how a plan chooses.
        """
        names = self._claims.get(resource_type, ())
        preferred = _preferred([self.protections[n] for n in names])
        chosen = [n for n in names if self.protections[n] in preferred]
        if len(chosen) > 1:
            raise PluginError(ambiguity(resource_type, chosen), chosen[0])
        return chosen[0] if chosen else None

    def plugin(self, name: str) -> Any:
        """The protection plugin called ``name``.

        Raises
        ------
        PluginError
            When none is, listing the installed ones.
        """
        try:
            return self.protections[name]
        except KeyError:
            raise PluginError(
                f"unknown protection plugin {name!r}; installed: "
                f"{', '.join(self.protections) or 'none'}",
                name,
            ) from None

    def configured(self, name: str, config: Mapping[str, Any] | None) -> Any:
        """The plugin ``name`` made with a provider's ``config`` (its class
        called with ``config=``), one instance per configuration; the plain
        installed instance when ``config`` is empty.

        Raises
        ------
        PluginError
            When there is no such plugin, or its class takes no configuration.
        """
        plugin = self.plugin(name)
        if not config:
            return plugin
        key = (name, json.dumps(config, sort_keys=True, default=str))
        with self._configured_lock:
            made = self._configured.get(key)
            if made is None:
                base = plugin.wrapped if isinstance(plugin, _Restricted) else plugin
                try:
                    made = type(base)(config=dict(config))
                except TypeError as err:
                    raise PluginError(
                        f"plugin {name!r} takes no configuration ({err}); remove its entry "
                        "from the provider's config", name) from err
                self._configured[key] = made
        return made

    def with_config(self, config: Mapping[str, Mapping[str, Any]]) -> Registry:
        """This registry with each plugin that ``config`` names made with its
        configuration (:meth:`configured`): a provider's ``config`` put where
        the executors look plugins up. One registry per configuration.

        Raises
        ------
        PluginError
            As :meth:`configured`.
        """
        config = {name: body for name, body in config.items() if body}
        if not config:
            return self
        key = json.dumps(config, sort_keys=True, default=str)
        made = self._with_config.get(key)
        if made is None:
            for name in config:
                self.plugin(name)  # a configured plugin that is not installed
            protections = {name: self._configured_as_claimed(name, config[name])
                           if name in config else plugin
                           for name, plugin in self.protections.items()}
            protectables = [p for ps in self._protectable_claims.values() for p in ps]
            made = Registry(protections, protectables)
            with self._configured_lock:
                made = self._with_config.setdefault(key, made)
        return made

    def _configured_as_claimed(self, name: str, config: Mapping[str, Any]) -> Any:
        """:meth:`configured`, claiming no more types than the plugin does here."""
        plugin, made = self.plugin(name), self.configured(name, config)
        if isinstance(plugin, _Restricted):
            return _Restricted(made, tuple(plugin.get_supported_resources_types()))
        return made

    def protectable_for(self, resource_type: str) -> Any:
        """The protectable of ``resource_type``, or ``None``.

        Raises
        ------
        PluginError
            When two protectables claim the type and neither is a fallback.
        """
        chosen = _preferred(self._protectable_claims.get(resource_type, []))
        if len(chosen) > 1:
            names = sorted(type(p).__name__ for p in chosen)
            raise PluginError(
                f"protectables {' and '.join(repr(n) for n in names)} both claim resource type "
                f"{resource_type!r}; uninstall one of them", names[0])
        return chosen[0] if chosen else None


class _Restricted:
    """A plugin seen through :meth:`Registry.with_choices`: it claims fewer
    types; everything else is the plugin's own."""

    def __init__(self, plugin: Any, types: tuple[str, ...]) -> None:
        self.wrapped = plugin
        self._types = types

    def get_supported_resources_types(self) -> tuple[str, ...]:
        return self._types

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)


def _preferred(claimants: list[Any]) -> list[Any]:
    """The claimants of a type that are not fallbacks, or the fallbacks when
    nothing else claims it."""
    real = [c for c in claimants if not getattr(c, "fallback", False)]
    return real or list(claimants)


def ambiguity(resource_type: str, names: Iterable[str]) -> str:
    """The message for a type that several plugins claim and nothing chooses."""
    names = sorted(names)
    quoted = ", ".join(repr(n) for n in names[:-1]) + f" and {names[-1]!r}"
    verb = "both claim" if len(names) == 2 else "all claim"
    return (f"protection plugins {quoted} {verb} resource type {resource_type!r}; "
            f"choose one with a provider in the plan, e.g.\n"
            f"    provider:\n      plugins:\n        {resource_type}: {names[0]}\n"
            "  (or 'provider: NAME' for a provider defined in the providers file)")


_lock = threading.Lock()
_cache: dict[str | None, Registry] = {}
_overrides: list[Registry] = []


#: How a registry spec that carries plugins' configuration starts.
_CONFIGURED = "configured:"


def configured_spec(spec: str | None, config: Mapping[str, Mapping[str, Any]]) -> str | None:
    """A registry spec for :func:`get_registry` naming the registry ``spec``
    names with ``config`` applied (:meth:`Registry.with_config`): how a
    provider's configuration reaches plugins in other processes, where only
    names travel. ``spec`` itself when nothing is configured.
    """
    config = {name: dict(body) for name, body in config.items() if body}
    if not config:
        return spec
    return _CONFIGURED + json.dumps({"registry": spec, "config": config}, sort_keys=True,
                                    default=str)


def get_registry(spec: str | None = None) -> Registry:
    """The registry of this process, built once and cached.

    ``spec`` is ``None`` for the installed entry points, or ``"module:function"``
    naming a function that returns a :class:`Registry`: the way a program (or a
    test) hands its own plugins to executors in other processes, by name; or
    what :func:`configured_spec` made of either.

    Raises
    ------
    PluginError
        When ``spec`` names no registry.
    """
    if spec is not None and spec.startswith(_CONFIGURED):
        body = json.loads(spec[len(_CONFIGURED):])
        # On the registry of this process (an override included); with_config
        # keeps what it made, so a plugin is configured once per registry.
        return get_registry(body["registry"]).with_config(body["config"])
    with _lock:
        if spec is None and _overrides:
            return _overrides[-1]
        registry = _cache.get(spec)
        if registry is None:
            registry = Registry.from_entry_points() if spec is None else _from_spec(spec)
            _cache[spec] = registry
        return registry


@contextmanager
def using_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` this process's default (``get_registry()``) while the
    block runs: how a test suite runs the library's operations with plugins
    that are not installed. Other processes (dask workers) do not see it:
    give them a ``registry`` spec as well.
    """
    with _lock:
        _overrides.append(registry)
    try:
        yield registry
    finally:
        with _lock:
            _overrides.remove(registry)


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
