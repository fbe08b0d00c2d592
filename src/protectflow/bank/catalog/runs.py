"""Run records: one restore, verify, copy or delete run of a checkpoint."""

from __future__ import annotations

import uuid
from typing import Any

import attrs

from protectflow._util import now_iso

__all__ = ["RUN_FORMAT_VERSION", "RunRecord", "new_run_id"]

RUN_FORMAT_VERSION = 1


def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by start time: ``20240517T134501123456Z-1a2b3c4d``."""
    stamp = now_iso(now).replace("-", "").replace(":", "").replace(".", "")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


@attrs.define
class RunRecord:
    """What one operation on a checkpoint did.

    Attributes
    ----------
    id : str
        Sorts by start time.
    checkpoint_id, operation, owner : str
    status : str
        ``running``, ``success`` or ``error``.
    resources : dict
        ``{resource key: {"status": ..., "reason": ...}}``.
    new_resources : dict
        For restore: ``{resource key: new resource id}``.
    status_updates : dict
        What the hooks reported through Karbor's ``restore``, ``verify`` or
        ``checkpoint_copy`` object: ``{resource key: {"status", "reason",
        "time"}}``, the last report of each resource (a record written
        before these were kept has none).
    started_at, finished_at : str or None
        ISO 8601 UTC.
    """

    id: str
    checkpoint_id: str
    operation: str
    owner: str
    status: str = "running"
    resources: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    new_resources: dict[str, str] = attrs.field(factory=dict)
    status_updates: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    started_at: str = attrs.field(factory=now_iso)
    finished_at: str | None = None

    def set_resource(self, key: str, status: str, reason: str | None = None) -> None:
        """Record the outcome for one resource."""
        self.resources[key] = {"status": status, "reason": reason}

    def report_status(self, key: str, status: str, reason: str | None, time: float) -> None:
        """Keep a hook's report of resource ``key``'s ``status``; a later
        report (by ``time``, epoch seconds) replaces an earlier one."""
        known = self.status_updates.get(key)
        if known is None or known["time"] <= time:
            self.status_updates[key] = {"status": status, "reason": reason, "time": time}

    def finish(self, status: str) -> None:
        """Mark the run finished with ``status`` (``success`` or ``error``)."""
        self.status = status
        self.finished_at = now_iso()

    def to_json(self) -> dict[str, Any]:
        return {"version": RUN_FORMAT_VERSION, **attrs.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        fields = {k: v for k, v in data.items() if k != "version"}
        return cls(**fields)
