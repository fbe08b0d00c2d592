"""Test plugins for the executor suite: the sim plugins, recording when each
hook ran and what it saw.

Hooks return their own timing and what they saw in ``new_resources`` as their
output, so the record comes back through the report from any process (no
shared memory). Importable by name from dask workers (the registry is
``tests.executors.executor_plugins:registry``): workers spawned by a
LocalCluster inherit the test process's ``sys.path``, and the suite gives the
scheduler and worker it starts as commands the repository on their PYTHONPATH.
"""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
import weakref
from collections import Counter
from typing import Any

from protectflow.dag.model import Resource
from protectflow.plugins import HookArgs, Operation, Registry
from protectflow.plugins.builtin.sim import (
    DatabaseProtectable,
    ImageProtectable,
    NetworkProtectable,
    ProjectProtectable,
    ServerProtectable,
    ShareProtectable,
    SimOperation,
    SimProtectionPlugin,
    VolumeProtectable,
)

SPEC = "tests.executors.executor_plugins:registry"
#: The same plugins, whose Operations carry their own timeout and retries.
OWN_DEFAULTS_SPEC = "tests.executors.executor_plugins:registry_with_own_defaults"


#: (operation, resource key) -> calls of the plugin's get_<operation>_operation
#: in this process.
MADE: Counter[tuple[str, str]] = Counter()
#: Every RecordingOperation alive in this process: a run's go with the run.
LIVE: weakref.WeakSet[RecordingOperation] = weakref.WeakSet()
_serials = itertools.count(1)


class RecordingOperation(SimOperation):
    """A sim Operation that says, in each hook's output, which instance ran it
    (``op``: its process, serial, the get call that made it, how many get
    calls there were for the resource by this hook, and the hooks that ran on
    ``self`` so far)."""

    def __init__(self, operation: str, resource: Resource) -> None:
        super().__init__(operation)
        self.key = (operation, resource.key)
        MADE[self.key] += 1
        self.made = MADE[self.key]
        self.serial = next(_serials)
        self.on_self: list[str] = []
        LIVE.add(self)

    def _run(self, args: HookArgs) -> dict[str, Any]:
        start = time.time()
        kwargs = args.kwargs
        self.on_self.append(f"{args.resource.key}/{args.hook}")
        seen = dict(kwargs["new_resources"]) if "new_resources" in kwargs else None
        kwargs["operation_log"].info(
            f"{args.hook} of {args.resource.key}, attempt {kwargs['attempt']}")
        out = super()._run(args)
        out.update(start=start, end=time.time(), pid=os.getpid(),
                   thread=threading.get_ident(), seen=seen, attempt=kwargs["attempt"],
                   op={"pid": os.getpid(), "serial": self.serial, "made": self.made,
                       "calls": MADE[self.key], "on_self": list(self.on_self)})
        return out


class RecordingPlugin(SimProtectionPlugin):
    def get_protect_operation(self, resource: Resource) -> Operation:
        return RecordingOperation("protect", resource)

    def get_restore_operation(self, resource: Resource) -> Operation:
        return RecordingOperation("restore", resource)

    def get_verify_operation(self, resource: Resource) -> Operation:
        return RecordingOperation("verify", resource)

    def get_copy_operation(self, resource: Resource) -> Operation:
        return RecordingOperation("copy", resource)

    def get_delete_operation(self, resource: Resource) -> Operation:
        return RecordingOperation("delete", resource)


def live_operations(marker: str) -> int:
    """How many RecordingOperations of resources whose id holds ``marker``
    are still alive in this process (run on a dask worker by ``client.run``)."""
    gc.collect()
    return sum(marker in op.key[1] for op in list(LIVE))


class OwnDefaultsOperation(RecordingOperation):
    """Times out after 0.3 s and retries twice, 10 ms apart, by itself."""

    timeout = 0.3
    retries = 2
    retry_delay = 0.01


class OwnDefaultsPlugin(SimProtectionPlugin):
    def get_protect_operation(self, resource: Resource) -> Operation:
        return OwnDefaultsOperation("protect", resource)

    def get_restore_operation(self, resource: Resource) -> Operation:
        return OwnDefaultsOperation("restore", resource)


def _protectables() -> list[Any]:
    return [
        c() for c in (ProjectProtectable, ServerProtectable, VolumeProtectable,
                      ImageProtectable, NetworkProtectable, ShareProtectable,
                      DatabaseProtectable)
    ]


def registry() -> Registry:
    return Registry({"sim": RecordingPlugin()}, _protectables())


def registry_with_own_defaults() -> Registry:
    return Registry({"sim": OwnDefaultsPlugin()}, _protectables())
