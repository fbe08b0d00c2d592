"""``--dry-run``: what a restore would write, or a protect would read, with
nothing written -- no checkpoint, no lease, no journal, no bank change.

Both check what the real operation checks first (the plan or the saved
graph, the parameters, the plugins' preflight), so a dry run refuses what
the operation would refuse, with the same error.

- a restore lists, per resource, the items its plugin would write (for a
  tree, after ``include``/``exclude``) and where;
- a protect asks each plugin that can (an optional classmethod
  ``preview_protect(bank, resource, parameters)`` returning
  :class:`~protectflow.dag.outcomes.ResourceStats`) what it would read;
  the others are listed without numbers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from protectflow.bank import Bank, Checkpoint
from protectflow.compiler import Plan
from protectflow.dag.outcomes import ResourceStats
from protectflow.errors import BankError, LocalPluginError, PluginError
from protectflow.operations.prepared import RunSettings, prepare_checkpoint, prepare_plan
from protectflow.plugins.contents import Item, contents, select_items
from protectflow.plugins.registry import get_registry

__all__ = ["Preview", "preview_protect", "preview_restore"]


@attrs.frozen
class Preview:
    """What an operation would do with one resource."""

    resource: str
    destination: str | None = None
    items: tuple[Item, ...] = ()
    stats: ResourceStats | None = None
    note: str | None = None

    @property
    def files(self) -> list[Item]:
        return [i for i in self.items if i.type in ("file", "database")]

    def to_json(self) -> dict[str, Any]:
        return {"resource": self.resource, "destination": self.destination,
                "files": len(self.files), "bytes": sum(i.size or 0 for i in self.files),
                "items": [i.to_json() for i in self.items],
                "stats": None if self.stats is None else self.stats.to_json(),
                "note": self.note}


def preview_restore(checkpoint: Checkpoint, *,
                    parameters: Mapping[str, Mapping[str, Any]] | None = None,
                    resources: Sequence[str] | None = None,
                    dependencies: bool = True) -> list[Preview]:
    """What :func:`protectflow.operations.restore` with these arguments would
    write, resource by resource; nothing is written.

    Raises
    ------
    BankError, PlanError, PluginError, PreflightError
        What the restore would raise before it starts.
    """
    prepared = prepare_checkpoint(checkpoint, "restore", parameters=parameters,
                                  executor="serial", settings=RunSettings(),
                                  resources=resources, dependencies=dependencies)
    prepared.check_resources(checkpoint)
    dag = prepared.dag
    out = []
    for resource in dag.resources:
        params = dag.parameters.get(resource.key, {})
        try:
            _, items = contents(checkpoint, resource)
        except (BankError, PluginError, LocalPluginError) as err:
            out.append(Preview(resource.key, _destination(resource.key, resource.id,
                                                          resource.extra_info, params),
                               note=f"its contents cannot be listed: {err}"))
            continue
        kept = select_items(items, params.get("include") or (), params.get("exclude") or ())
        out.append(Preview(resource.key, _destination(resource.key, resource.id,
                                                      resource.extra_info, params),
                           tuple(kept)))
    return out


def _destination(key: str, rid: str, extra_info: Mapping[str, Any],
                 params: Mapping[str, Any]) -> str | None:
    """Where a local plugin would restore: ``<target>/<id>`` or, in place,
    the path it was protected from; None when neither is given."""
    if params.get("in_place"):
        path = extra_info.get("path")
        return str(path) if path is not None else None
    target = params.get("target")
    return os.path.join(os.path.abspath(os.path.expanduser(str(target))), rid) if target else None


def preview_protect(plan: Plan, *, bank: Bank | None,
                    parameters: Mapping[str, Mapping[str, Any]] | None = None) -> list[Preview]:
    """What :func:`protectflow.operations.protect` would read, resource by
    resource, compared with the last checkpoints in ``bank`` (None: a bank
    not made yet); nothing is written.

    Raises
    ------
    PlanError, PluginError, PreflightError
        What the protect would raise before it starts.
    """
    prepared = prepare_plan(plan, "protect", parameters=parameters, executor="serial",
                            settings=RunSettings())
    prepared.check_resources()
    dag = prepared.dag
    registry = get_registry(prepared.registry)
    plugins = {n.resource.key: n.plugin for n in dag.nodes}
    out = []
    for resource in dag.resources:
        plugin = registry.plugin(plugins[resource.key])
        preview = getattr(plugin, "preview_protect", None)
        if preview is None:
            out.append(Preview(resource.key, note="its plugin does not say what it would read"))
            continue
        stats = preview(bank, resource, dict(dag.parameters.get(resource.key, {})))
        out.append(Preview(resource.key, stats=stats))
    return out
