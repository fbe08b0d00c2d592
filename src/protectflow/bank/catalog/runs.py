"""Run records: one restore, verify, copy or delete run of a checkpoint.

A run record is the JSON object ``checkpoints/ID/runs/RUN`` (format
:data:`RUN_FORMAT_VERSION`): :meth:`RunRecord.to_json` writes it and
:meth:`RunRecord.from_json` reads it back, its version and fields checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from protectflow._fields import Fields, within
from protectflow._util import now_iso
from protectflow.bank.catalog.stored import Stored
from protectflow.dag.outcomes import ResourceStatus, StatusUpdate

__all__ = ["RUNNING", "RUN_FORMAT_VERSION", "RunRecord", "last_reports", "new_run_id"]

RUN_FORMAT_VERSION = 1
#: A run record's status until its run ends (``success`` or ``error``).
RUNNING = "running"


def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by start time: ``20240517T134501123456Z-1a2b3c4d``."""
    stamp = now_iso(now).replace("-", "").replace(":", "").replace(".", "")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def last_reports(updates: Iterable[StatusUpdate]) -> dict[str, StatusUpdate]:
    """The last report of each resource among ``updates``: a later one (by
    ``time``; of two at the same time, the one given last) replaces an
    earlier one, whatever the order they are given in."""
    last: dict[str, StatusUpdate] = {}
    for update in updates:
        known = last.get(update.key)
        if known is None or known.time <= update.time:
            last[update.key] = update
    return last


@attrs.frozen
class RunRecord:
    """What one operation on a checkpoint did.

    Attributes
    ----------
    id : str
        Sorts by start time.
    checkpoint_id, operation, owner : str
    status : str
        ``running``, ``success`` or ``error``.
    resources : mapping
        Each resource's :class:`~protectflow.dag.outcomes.ResourceStatus` by key.
    new_resources : mapping
        For restore: what the hooks published, ``{resource key: new resource id}``.
    status_updates : mapping
        What the hooks reported through Karbor's ``restore``, ``verify`` or
        ``checkpoint_copy`` object, the last report of each resource by its
        key (a record written before these were kept has none).
    started_at, finished_at : str or None
        ISO 8601 UTC.
    """

    id: str
    checkpoint_id: str
    operation: str
    owner: str
    status: str = RUNNING
    resources: Mapping[str, ResourceStatus] = attrs.field(factory=dict, hash=False)
    new_resources: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    status_updates: Mapping[str, StatusUpdate] = attrs.field(factory=dict, hash=False)
    started_at: str = attrs.field(factory=now_iso)
    finished_at: str | None = None

    def finished(self, status: str, *, resources: Mapping[str, ResourceStatus],
                 new_resources: Mapping[str, Any],
                 status_updates: Mapping[str, StatusUpdate]) -> RunRecord:
        """This run, finished now with ``status`` (``success`` or ``error``)
        and what it did."""
        return attrs.evolve(self, status=status, resources=dict(resources),
                            new_resources=dict(new_resources),
                            status_updates=dict(status_updates), finished_at=now_iso())

    def to_json(self) -> dict[str, Any]:
        """The record as the bank holds it (and ``checkpoints show --json`` prints it)."""
        return {
            "version": RUN_FORMAT_VERSION, "id": self.id, "checkpoint_id": self.checkpoint_id,
            "operation": self.operation, "owner": self.owner, "status": self.status,
            "resources": {k: v.to_json() for k, v in self.resources.items()},
            "new_resources": dict(self.new_resources),
            "status_updates": {k: {"status": u.status, "reason": u.reason, "time": u.time}
                               for k, u in self.status_updates.items()},
            "started_at": self.started_at, "finished_at": self.finished_at,
        }

    @classmethod
    def from_json(cls, data: object, source: Stored) -> RunRecord:
        """The record :meth:`to_json` wrote, read from ``source``.

        Raises
        ------
        CorruptObjectError
            Naming the record and the first field missing or of the wrong type.
        BankError
            If it is of another format version.
        """
        fields = source.fields(data, "run record", version=RUN_FORMAT_VERSION)
        return cls(
            id=fields.get("id", str), checkpoint_id=fields.get("checkpoint_id", str),
            operation=fields.get("operation", str), owner=fields.get("owner", str),
            status=fields.get("status", str),
            resources={k: ResourceStatus.from_json(v, within(fields.fail, f"resources: {k}"))
                       for k, v in fields.get("resources", dict).items()},
            new_resources=fields.default("new_resources", dict, {}),
            status_updates={k: _update(k, v, fields)
                            for k, v in fields.default("status_updates", dict, {}).items()},
            started_at=fields.get("started_at", str),
            finished_at=fields.optional("finished_at", str),
        )


def _update(key: str, data: object, fields: Fields) -> StatusUpdate:
    """A run record's status update of resource ``key``, kept without its key."""
    fail = within(fields.fail, f"status_updates: {key}")
    body = Fields(data, "status update", fail)
    return StatusUpdate.from_json({**body.data, "resource": key}, fail)
