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
from protectflow.plugins.contract import get_operation
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
        self._ops: dict[tuple[str, str], Any] = {}
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
        key = (plugin, resource.key)
        with self._lock:
            if key in self._ops:
                return self._ops[key]
        # Outside the lock: a plugin may take its time, and other resources'
        # hooks must not wait for it.
        op = get_operation(get_registry(self.registry).plugin(plugin), operation, resource)
        with self._lock:
            return self._ops.setdefault(key, op)
