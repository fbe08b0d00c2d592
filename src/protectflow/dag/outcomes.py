"""What a run says about its resources and hooks, as pure data: the status
the framework settles for each resource (:class:`ResourceStatus`), the
statuses hooks report through Karbor's ``update_resource_status``
(:class:`StatusUpdate`), and a hook's exception (:class:`ErrorInfo`).

They travel from the run to the bank and the command line, and are read back
from the bank (per-resource statuses, run records, journals): their
``from_json`` checks every field and refuses a damaged one with the error its
reader's ``fail`` makes (a corrupt bank object, named).
"""

from __future__ import annotations

import traceback
from typing import Any

import attrs

from protectflow._fields import Fail, Fields

__all__ = ["ErrorInfo", "ResourceStatus", "StatusUpdate"]


@attrs.frozen
class ResourceStatus:
    """How one resource ended an operation: its ``status`` (``available``,
    ``error``, ``not_run``...) and why (``reason``, None when all went well).

    ``updated_at`` is when the bank recorded it (absent from the statuses an
    operation returns, and from run records); it takes no part in equality.
    """

    status: str
    reason: str | None = None
    updated_at: str | None = attrs.field(default=None, eq=False)

    def to_json(self) -> dict[str, Any]:
        """``{"status", "reason"}``, and ``updated_at`` when it is set."""
        data: dict[str, Any] = {"status": self.status, "reason": self.reason}
        if self.updated_at is not None:
            data["updated_at"] = self.updated_at
        return data

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> ResourceStatus:
        """The status :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field that is missing or of the
            wrong type.
        """
        fields = Fields(data, "resource status", fail)
        return cls(fields.get("status", str), fields.optional("reason", str),
                   fields.optional("updated_at", str))


@attrs.frozen
class StatusUpdate:
    """One ``update_resource_status`` call a hook made."""

    resource_type: str
    resource_id: str
    status: str
    reason: str | None
    time: float

    @property
    def key(self) -> str:
        return f"{self.resource_type}#{self.resource_id}"

    def to_json(self) -> dict[str, Any]:
        return {"resource": self.key, "status": self.status, "reason": self.reason,
                "time": self.time}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> StatusUpdate:
        """The update :meth:`to_json` wrote (a run journal's, read back).

        Raises
        ------
        Exception
            What ``fail`` makes, when ``data`` is not such an object.
        """
        fields = Fields(data, "resource status update", fail)
        rtype, sep, rid = fields.get("resource", str).partition("#")
        status = fields.get("status", str)
        if not (sep and rtype and rid and status):
            raise fail(f"not a resource status update: {data!r:.200}")
        return cls(rtype, rid, status, fields.optional("reason", str),
                   float(fields.get("time", float)))


@attrs.frozen
class ErrorInfo:
    """A hook's exception as plain data: type, message and traceback text."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, err: BaseException) -> ErrorInfo:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        return cls(f"{type(err).__module__}.{type(err).__qualname__}", str(err), text)

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> ErrorInfo:
        """The error :meth:`to_json` wrote (a journal entry's, read back).

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field missing or of the wrong type.
        """
        fields = Fields(data, "hook error", fail)
        return cls(fields.get("type", str), fields.get("message", str),
                   fields.default("traceback", str, ""))
