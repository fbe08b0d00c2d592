"""What the app plugin stores in a resource's bank section: the freeze record.

:class:`FreezeRecord` (``freeze``) is written when ``prepare_begin`` freezes
the application and rewritten when ``prepare_finish`` thaws it: how it was
frozen (``mode``: ``command`` or ``lock``), when, the guard's pid and
deadline, when it was thawed and, if the guard thawed it before the thaw
hook did, that thaw's :class:`ThawRecord` (``thawed_early``). One
``from_json`` checks every field's type (refusing with
:class:`~protectflow.errors.LocalPluginError` naming the resource), one
``to_json`` gives back the JSON it was read from.
"""

from __future__ import annotations

import attrs

from protectflow._fields import Fields
from protectflow.errors import LocalPluginError

__all__ = ["FreezeRecord", "ThawRecord"]

Json = dict[str, object]


def _fail(what: str) -> LocalPluginError:
    return LocalPluginError(f"{what}: its freeze record in the bank is not valid")


@attrs.frozen(kw_only=True)
class ThawRecord:
    """A thaw: by whom (``thaw``, ``guard``, ``failure``...), when, why."""

    by: str
    at: float
    reason: str | None = None
    ok: bool | None = None
    now: bool | None = None

    def to_json(self) -> Json:
        """The record's JSON, as :meth:`from_json` reads it."""
        out: Json = {"by": self.by, "at": self.at}
        for name in ("reason", "ok", "now"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: object, *, what: str) -> ThawRecord:
        """The thaw ``data`` says (the guard's account, or a stored one).

        Raises
        ------
        LocalPluginError
            If a field is missing or of the wrong type, naming it.
        """
        f = Fields(data, "thaw record", lambda why: LocalPluginError(f"{_fail(what)}: {why}"))
        return cls(by=f.get("by", str), at=f.get("at", float), reason=f.optional("reason", str),
                   ok=f.optional("ok", bool), now=f.optional("now", bool))


@attrs.frozen(kw_only=True)
class FreezeRecord:
    """One freeze of the application, and its thaw once there is one."""

    mode: str
    frozen_at: float
    guard_pid: int | None = None
    deadline: float | None = None
    thawed_at: float | None = None
    thawed_early: ThawRecord | None = None

    def to_json(self) -> Json:
        """The record's JSON, as :meth:`from_json` reads it."""
        out: Json = {"mode": self.mode, "frozen_at": self.frozen_at}
        for name in ("guard_pid", "deadline", "thawed_at"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.thawed_early is not None:
            out["thawed_early"] = self.thawed_early.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, *, what: str) -> FreezeRecord:
        """The record ``data`` holds.

        Raises
        ------
        LocalPluginError
            If a field is missing or of the wrong type, naming it.
        """
        f = Fields(data, "freeze record", lambda why: LocalPluginError(f"{_fail(what)}: {why}"))
        early = f.optional("thawed_early", dict)
        return cls(mode=f.get("mode", str), frozen_at=f.get("frozen_at", float),
                   guard_pid=f.optional("guard_pid", int), deadline=f.optional("deadline", float),
                   thawed_at=f.optional("thawed_at", float),
                   thawed_early=None if early is None else ThawRecord.from_json(early, what=what))
