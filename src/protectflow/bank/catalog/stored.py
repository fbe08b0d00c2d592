"""Where a catalog document was read, and the errors that refuse it.

Every document the catalog keeps (a checkpoint's record, its resource
statuses, run records, journals, leases) is read back through its class's
``from_json``, given the :class:`Stored` it came from; a document that does
not read -- a field missing or of the wrong type -- is refused with a
:class:`~protectflow.errors.CorruptObjectError` naming its checkpoint, its
key and its bank, and one of another format version with the version found
and the one this protectflow reads.
"""

from __future__ import annotations

import attrs

from protectflow._fields import Fail, Fields
from protectflow.errors import BankError, CorruptObjectError

__all__ = ["RESTORE", "Stored"]

#: What to do about a corrupt object, unless its document says more.
RESTORE = "restore that object from a copy of the bank"


@attrs.frozen
class Stored:
    """The object a document was read from: its ``key`` in the bank at ``bank``."""

    key: str
    bank: str

    @property
    def checkpoint(self) -> str:
        """The id of the checkpoint the object belongs to (``checkpoints/ID/...``)."""
        parts = self.key.split("/")
        return parts[1] if len(parts) > 2 and parts[0] == "checkpoints" else "?"

    def corrupt(self, what: str, why: str, remedy: str = RESTORE) -> CorruptObjectError:
        """The error refusing the ``what`` (``record``, ``run record``...) stored here."""
        return CorruptObjectError(f"checkpoint {self.checkpoint!r} has a corrupt {what} "
                                  f"({self.key} in bank {self.bank}): {why}; {remedy}",
                                  key=self.key)

    def failing(self, what: str, remedy: str = RESTORE) -> Fail:
        """What refuses the ``what`` stored here, given why (see :meth:`corrupt`)."""
        return lambda why: self.corrupt(what, why, remedy)

    def fields(self, data: object, what: str, *, version: int | tuple[int, ...] | None = None,
               remedy: str = RESTORE) -> Fields:
        """The fields of the ``what`` read from here; its ``version`` checked
        first when the document has one.

        Raises
        ------
        CorruptObjectError
            If ``data`` is not a JSON object.
        BankError
            If it is of another format version.
        """
        fields = Fields(data, what, self.failing(what, remedy))
        if version is not None:
            fields.version(version, lambda found: BankError(
                f"checkpoint {self.checkpoint!r} has {what} format {found!r}; this "
                f"protectflow reads format {_formats(version)}: use the protectflow that "
                "wrote it"))
        return fields


def _formats(version: int | tuple[int, ...]) -> str:
    """``2`` or ``1 or 2``: the formats a reader takes, for its message."""
    if isinstance(version, int):
        return str(version)
    return " or ".join(str(v) for v in version)
