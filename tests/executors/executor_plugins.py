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

import os
import threading
import time
from typing import Any

from protectflow.dag.model import Resource
from protectflow.plugins import HookArgs, Operation, Registry
from protectflow.plugins.sim import (
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


class RecordingOperation(SimOperation):
    def _run(self, args: HookArgs) -> dict[str, Any]:
        start = time.time()
        kwargs = args.kwargs
        seen = dict(kwargs["new_resources"]) if "new_resources" in kwargs else None
        kwargs["operation_log"].info(
            f"{args.hook} of {args.resource.key}, attempt {kwargs['attempt']}")
        out = super()._run(args)
        out.update(start=start, end=time.time(), pid=os.getpid(),
                   thread=threading.get_ident(), seen=seen, attempt=kwargs["attempt"])
        return out


class RecordingPlugin(SimProtectionPlugin):
    def get_operation(self, operation: str, resource: Resource) -> Operation:
        return RecordingOperation(operation)


class OwnDefaultsOperation(RecordingOperation):
    """Times out after 0.3 s and retries twice, 10 ms apart, by itself."""

    timeout = 0.3
    retries = 2
    retry_delay = 0.01


class OwnDefaultsPlugin(SimProtectionPlugin):
    def get_operation(self, operation: str, resource: Resource) -> Operation:
        return OwnDefaultsOperation(operation)


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
