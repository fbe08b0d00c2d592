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

__all__ = ["STATS_KEY", "ErrorInfo", "ResourceStats", "ResourceStatus", "StatusUpdate"]

#: The key of a hook's output (a JSON object) under which a plugin reports
#: the :class:`ResourceStats` of what it did.
STATS_KEY = "stats"
_STAT_FIELDS = ("files_new", "files_changed", "files_unmodified", "bytes_new", "bytes_changed",
                "bytes_unmodified", "bytes_read", "bytes_added")


@attrs.frozen
class ResourceStats:
    """What a protect did with one resource's data, as restic counts it.

    Files (and their sizes in bytes) that are new since the previous
    checkpoint of the resource, changed, or unmodified; the bytes read from
    the source; the bytes added to the bank (after deduplication and
    compression: what the bank grew by). A plugin reports them as the
    ``stats`` field of a hook's output (:meth:`of_output`); one that reports
    nothing has none (shown as "-").
    """

    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    bytes_new: int = 0
    bytes_changed: int = 0
    bytes_unmodified: int = 0
    bytes_read: int = 0
    bytes_added: int = 0

    @property
    def files(self) -> int:
        """Every file the resource holds now."""
        return self.files_new + self.files_changed + self.files_unmodified

    @property
    def size(self) -> int:
        """The bytes of every file the resource holds now (its restore size)."""
        return self.bytes_new + self.bytes_changed + self.bytes_unmodified

    def __add__(self, other: ResourceStats) -> ResourceStats:
        return ResourceStats(*(getattr(self, f) + getattr(other, f) for f in _STAT_FIELDS))

    def to_json(self) -> dict[str, int]:
        """Every count by name, and ``files`` and ``size``, the totals."""
        return {**{f: getattr(self, f) for f in _STAT_FIELDS}, "files": self.files,
                "size": self.size}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> ResourceStats:
        """The stats :meth:`to_json` wrote (the totals are recomputed).

        Raises
        ------
        Exception
            What ``fail`` makes, naming a count that is missing or not a
            whole number at least 0.
        """
        fields = Fields(data, "resource stats", fail)
        counts = [fields.get(f, int) for f in _STAT_FIELDS]
        if any(c < 0 for c in counts):
            raise fail(f"resource stats: a negative count in {data!r:.200}")
        return cls(*counts)

    @classmethod
    def of_output(cls, output: object) -> ResourceStats | None:
        """The stats a hook's ``output`` reports: the output itself when it is
        a ResourceStats, or the ``stats`` field of an output that is a JSON
        object; None when it reports none or one that is not valid."""
        if isinstance(output, ResourceStats):
            return output
        if not isinstance(output, dict):
            return None
        found = output.get(STATS_KEY)
        if isinstance(found, ResourceStats):
            return found
        try:
            return cls.from_json(found, ValueError)
        except ValueError:
            return None


@attrs.frozen
class ResourceStatus:
    """How one resource ended an operation: its ``status`` (``available``,
    ``error``, ``not_run``...) and why (``reason``, None when all went well).

    ``updated_at`` is when the bank recorded it (absent from the statuses an
    operation returns, and from run records); it takes no part in equality,
    nor do ``stats``, what a protect did with the resource's data (None
    when its plugin reports none).
    """

    status: str
    reason: str | None = None
    updated_at: str | None = attrs.field(default=None, eq=False)
    stats: ResourceStats | None = attrs.field(default=None, eq=False)

    def to_json(self) -> dict[str, Any]:
        """``{"status", "reason"}``, and ``updated_at`` and ``stats`` when set."""
        data: dict[str, Any] = {"status": self.status, "reason": self.reason}
        if self.updated_at is not None:
            data["updated_at"] = self.updated_at
        if self.stats is not None:
            data["stats"] = self.stats.to_json()
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
        stats = fields.optional("stats", dict)
        return cls(fields.get("status", str), fields.optional("reason", str),
                   fields.optional("updated_at", str),
                   None if stats is None else ResourceStats.from_json(stats, fail))


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
