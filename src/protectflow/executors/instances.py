"""The Operations of one run, in the process where its hooks run.

As in Karbor, a plugin's ``get_<operation>_operation`` is asked once per
resource per run, and that one Operation serves all four hooks of the
resource: what ``on_prepare_finish`` keeps on ``self`` (a snapshot's id) is
there for ``on_main``. An :class:`Instances` holds them, keyed by (plugin
name, resource key), for exactly as long as the run: the serial and threads
executors make one per run and drop it when the run returns; a dask runner
keeps one per run it serves and drops it when the client ends the run (which
is why all hooks of a resource run on the same runner). A resumed run is a
new run, so it starts with new Operations: what must outlive a run (or a
lost worker process) belongs in the bank, not on ``self``.
"""

from __future__ import annotations

import threading
from typing import Any

from protectflow.dag.model import Resource
from protectflow.errors import PluginError
from protectflow.plugins.contract import OperationSettings, get_operation, operation_settings
from protectflow.plugins.registry import get_registry

__all__ = ["Instances"]


class Instances:
    """One run's Operations, made on first use, one per (plugin, resource).

    Thread-safe: hooks of different resources run at once on a pool's
    threads. A resource's own hooks never do (the DAG orders them), so a
    plugin's ``get_*_operation`` is never called twice for one resource,
    unless it raised: a failed call is not kept, and the next attempt asks
    again.
    """

    def __init__(self, registry: str | None = None) -> None:
        self.registry = registry
        # (plugin, resource key) -> the Operation and its settings, read once
        # (None: settings of the wrong kind, refused again at each use)
        self._ops: dict[tuple[str, str], tuple[Any, OperationSettings | None]] = {}
        self._lock = threading.Lock()

    def get(self, plugin: str, operation: str, resource: Resource) -> Any:
        """The Operation of ``plugin`` for ``operation`` on ``resource`` in this
        run, asking the plugin (resolved through this process's registry) the
        first time.

        Raises
        ------
        PluginError
            When the plugin is unknown here or the operation name is not one.
        Exception
            Whatever the plugin's ``get_<operation>_operation`` raises.
        """
        return self.get_with_settings(plugin, operation, resource)[0]

    def get_with_settings(self, plugin: str, operation: str,
                          resource: Resource) -> tuple[Any, OperationSettings]:
        """:meth:`get`, and the Operation's settings (``retries``, ``timeout``...),
        read once with it: each hook of the resource needs them.

        Raises
        ------
        PluginError
            As :meth:`get`, or for settings of the wrong kind.
        Exception
            Whatever the plugin's ``get_<operation>_operation`` raises.
        """
        key = (plugin, resource.key)
        found = self._ops.get(key)  # a dict read is atomic: no lock for a hit
        if found is None:
            # Outside the lock: a plugin may take its time, and other resources'
            # hooks must not wait for it.
            op = get_operation(get_registry(self.registry).plugin(plugin), operation, resource)
            try:
                settings: OperationSettings | None = operation_settings(op)
            except PluginError:
                settings = None  # the Operation is kept; its settings refused at each use
            with self._lock:
                found = self._ops.setdefault(key, (op, settings))
        op, settings = found
        return op, settings if settings is not None else operation_settings(op)
