"""The plugin interfaces, the registry and the built-in plugins."""

from protectflow.plugins.base import (
    HookArgs,
    HookCheckpoint,
    HookOperation,
    Operation,
    Protectable,
    ProtectionPlugin,
    implemented_hooks,
)
from protectflow.plugins.registry import Registry, get_registry

__all__ = [
    "HookArgs",
    "HookCheckpoint",
    "HookOperation",
    "Operation",
    "Protectable",
    "ProtectionPlugin",
    "Registry",
    "get_registry",
    "implemented_hooks",
]
