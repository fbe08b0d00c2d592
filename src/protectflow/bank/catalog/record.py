"""A checkpoint's record: its persisted layout, built in one place, and its status machine.

The record is the JSON object ``checkpoints/ID/record`` (format
:data:`FORMAT_VERSION`). :func:`new_record` is the one place its fields are
spelled out; :func:`record_problems` checks a record read back;
:func:`allowed_transitions` is the life a checkpoint may lead.
"""

from __future__ import annotations

from typing import Any, TypedDict

from protectflow._paths import validate_key
from protectflow._util import now_iso
from protectflow.errors import BankError
from protectflow.states import (
    AVAILABLE,
    CHECKPOINT_STATUSES,
    COPYING,
    DELETED,
    DELETING,
    ERROR,
    ERROR_DELETING,
    PROTECTING,
)

__all__ = [
    "FORMAT_VERSION",
    "STATUSES",
    "CheckpointRecord",
    "allowed_transitions",
    "check_checkpoint_id",
    "creating_operation",
    "history_entry",
    "new_record",
    "record_problems",
    "verification_entry",
]

FORMAT_VERSION = 1

STATUSES = CHECKPOINT_STATUSES
_TRANSITIONS: dict[str, tuple[str, ...]] = {
    PROTECTING: (AVAILABLE, ERROR),
    AVAILABLE: (COPYING, DELETING),
    ERROR: (DELETING, PROTECTING),  # protecting: a resumed protect
    COPYING: (AVAILABLE,),  # a copy's source; its target may also fail: 'error'
    DELETING: (DELETED, ERROR_DELETING),
    ERROR_DELETING: (DELETING,),
    DELETED: (),
}


class Verification(TypedDict):
    """How the last verify of a checkpoint ended (the record's ``verification``)."""

    at: str
    ok: bool
    problems: int
    summary: str | None


class CheckpointRecord(TypedDict):
    """The fields a new checkpoint's record holds.

    A transition adds ``next_steps``, a verify ``verification`` (a
    :class:`Verification`, from :func:`verification_entry`); plugins and the
    framework never add others. ``operations`` is the history: :func:`history_entry` items.
    """

    version: int
    id: str
    plan: dict[str, Any]
    plan_name: str
    resource_graph: dict[str, Any]
    dag_fingerprint: str
    status: str
    status_reason: str | None
    created_at: str
    updated_at: str
    owner: str
    copied_from: dict[str, Any] | None
    operations: list[dict[str, Any]]


#: The fields every record has, and their types: checked on reading, so that a
#: damaged record is refused with its name instead of failing deep inside.
_RECORD_FIELDS: dict[str, type] = {
    "id": str, "plan": dict, "plan_name": str, "resource_graph": dict,
    "dag_fingerprint": str, "status": str, "created_at": str, "updated_at": str,
    "owner": str, "operations": list,
}


def history_entry(event: str, *, at: str | None = None, **fields: Any) -> dict[str, Any]:
    """One item of a record's ``operations`` history: ``{"at", "event", **fields}``.

    ``event`` is ``start`` or ``end`` (of a lease, with ``operation`` and
    ``owner``) or ``status`` (with ``from``, ``to`` and ``reason``).
    """
    return {"at": now_iso() if at is None else at, "event": event, **fields}


def verification_entry(*, ok: bool, problems: int, summary: str | None,
                       at: str | None = None) -> Verification:
    """The record's ``verification``: when the last verify ran, whether it
    found the checkpoint whole, how many problems it found and the first."""
    return Verification(at=now_iso() if at is None else at, ok=ok, problems=problems,
                        summary=summary)


def creating_operation(copied_from: dict[str, Any] | None) -> str:
    """The operation that creates a checkpoint: a copy's target or a protect."""
    return "copy" if copied_from is not None else "protect"


def new_record(
    checkpoint_id: str,
    *,
    plan: dict[str, Any],
    plan_name: str,
    resource_graph: dict[str, Any],
    dag_fingerprint: str,
    owner: str,
    copied_from: dict[str, Any] | None = None,
    created_at: str | None = None,
) -> CheckpointRecord:
    """The record of a checkpoint ``owner``'s operation is about to fill.

    It starts ``protecting`` (``copying`` for a copy's target, one with
    ``copied_from``), its history holding that operation's start.

    Raises
    ------
    BankError
        If ``checkpoint_id`` is not one key segment.
    """
    stamp = now_iso() if created_at is None else created_at
    operation = creating_operation(copied_from)
    return CheckpointRecord(
        version=FORMAT_VERSION, id=check_checkpoint_id(checkpoint_id), plan=plan,
        plan_name=plan_name, resource_graph=resource_graph, dag_fingerprint=dag_fingerprint,
        status=COPYING if copied_from is not None else PROTECTING, status_reason=None,
        created_at=stamp, updated_at=stamp, owner=owner, copied_from=copied_from,
        operations=[history_entry("start", at=stamp, operation=operation, owner=owner)],
    )


def record_problems(record: dict[str, Any]) -> list[str]:
    """The fields of a record read back that are missing or of the wrong type."""
    return [f"{name!r} is not a {kind.__name__}" for name, kind in _RECORD_FIELDS.items()
            if not isinstance(record.get(name), kind)]


def allowed_transitions(status: str, *, copy_target: bool = False) -> tuple[str, ...]:
    """The statuses a checkpoint in ``status`` may move to.

    ``copy_target`` marks a checkpoint created in a target bank by a copy: it
    starts in ``copying`` and ends ``available`` or ``error``; the source of
    a copy goes ``available -> copying -> available``.

    Raises
    ------
    BankError
        If ``status`` is unknown.
    """
    if status not in _TRANSITIONS:
        raise BankError(f"unknown checkpoint status {status!r}; known: {', '.join(STATUSES)}")
    if copy_target and status == COPYING:
        return (AVAILABLE, ERROR)
    if copy_target and status == ERROR:
        return (DELETING,)  # a failed copy is not resumed as a protect
    return _TRANSITIONS[status]


def check_checkpoint_id(checkpoint_id: str) -> str:
    """Return ``checkpoint_id`` if it is one key segment, else raise BankError."""
    validate_key(checkpoint_id, what="checkpoint id")
    if "/" in checkpoint_id:
        raise BankError(f"invalid checkpoint id {checkpoint_id!r}: it may not contain '/'")
    return checkpoint_id
