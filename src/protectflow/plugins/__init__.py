"""The plugin interfaces, the registry and the built-in plugins."""

from protectflow.plugins.base import Operation, Protectable, ProtectionPlugin, implemented_hooks
from protectflow.plugins.registry import Registry, get_registry

__all__ = [
    "Operation",
    "Protectable",
    "ProtectionPlugin",
    "Registry",
    "get_registry",
    "implemented_hooks",
]
