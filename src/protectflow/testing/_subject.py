"""What the conformance kit needs to know about the plugin under test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from protectflow.dag.model import Resource
from protectflow.plugins.registry import Registry, get_registry

__all__ = ["ConformanceFailure", "PluginSubject"]

#: Output and bank fields that say when something ran, not what it left.
VOLATILE = frozenset(("start", "end", "time", "started_at", "finished_at", "taken_at"))


class ConformanceFailure(AssertionError):
    """A plugin broke the contract; the message names the hook and what broke."""


@attrs.frozen
class PluginSubject:
    """The plugin under test, and how to make and compare its resources.

    Parameters
    ----------
    plugin : str
        The plugin's name in the registry.
    make_resource : callable
        ``make_resource(folder) -> Resource``: create a sample resource whose
        data lives under ``folder`` (an empty folder of its own) and return it.
    compare : callable
        ``compare(original, restored) -> str | None``: ``original`` is the
        sample resource, ``restored`` what restore published for it in
        ``new_resources``; return ``None`` when they hold the same data, else
        what differs (or raise ``AssertionError``).
    protect_parameters : dict
        Protect parameters of the sample resource.
    restore_parameters : callable
        ``restore_parameters(folder) -> dict``: restore parameters putting
        the restored resource under ``folder``.
    registry : str, optional
        A ``"module:function"`` spec of a registry holding the plugin, for a
        plugin that is not installed through an entry point; it must be
        importable in other processes (the kill checks start some).
    volatile : frozenset of str
        Output (and bank JSON) fields that report what one call did, not the
        state it leaves (new chunks stored, say): the idempotency check
        ignores them, besides timing fields.
    """

    plugin: str
    make_resource: Callable[[Path], Resource]
    compare: Callable[[Resource, Any], str | None]
    protect_parameters: dict[str, Any] = attrs.field(factory=dict)
    restore_parameters: Callable[[Path], dict[str, Any]] = lambda folder: {}
    verify_parameters: dict[str, Any] = attrs.field(factory=dict)
    registry: str | None = None
    volatile: frozenset[str] = frozenset()

    def get_registry(self) -> Registry:
        """The registry holding the plugin."""
        return get_registry(self.registry)

    def get_plugin(self) -> Any:
        return self.get_registry().plugin(self.plugin)

    def ignored(self) -> frozenset[str]:
        return VOLATILE | self.volatile
