"""A checkpoint's record: its stored documents, built in one place, and its status machine.

The record is the JSON object ``checkpoints/ID/record`` (format
:data:`FORMAT_VERSION`), a :class:`CheckpointRecord` once read:
:meth:`CheckpointRecord.to_json` is its one writer and
:meth:`CheckpointRecord.from_json` its one reader, which checks the version
and every field once and refuses a damaged record naming it; :func:`new_record`
is where a new one's fields are spelled out. Its parts are documents of their
own: the plan and resource graph (:mod:`protectflow.dag`), the history
(:class:`LeaseEvent`, :class:`StatusChange`), the source of a copy
(:class:`CopiedFrom`) and the last verify (:class:`Verification`).
:func:`allowed_transitions` is the life a checkpoint may lead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

import attrs

from protectflow._fields import Fail, Fields, within
from protectflow._paths import validate_key
from protectflow._util import now_iso
from protectflow.bank.catalog.stored import RESTORE, Stored
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import BankError, CorruptObjectError, PlanError
from protectflow.retention.tags import tag_problem
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
    "CopiedFrom",
    "HistoryEntry",
    "LeaseEvent",
    "StatusChange",
    "Verification",
    "allowed_transitions",
    "check_checkpoint_id",
    "check_tag",
    "corrupt_record",
    "new_record",
    "normal_tags",
]

#: The newest format a record is written in: 2 added ``tags``. A record is
#: written in the oldest format that holds it -- 1 when it has no tag, so a
#: bank stays readable by the protectflow before tags until a checkpoint is
#: tagged, and that protectflow refuses a tagged record rather than drop its
#: tags when it rewrites it. Format 1 records read as records with no tag.
FORMAT_VERSION = 2
#: The formats :meth:`CheckpointRecord.from_json` reads.
READ_VERSIONS = (1, 2)

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
#: The events of a record's history a lease makes.
LEASE_EVENTS = ("start", "end")


@attrs.frozen
class CopiedFrom:
    """The checkpoint a copy's target was copied from (the record's ``copied_from``)."""

    bank: str
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        return {"bank": self.bank, "checkpoint": self.checkpoint}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> CopiedFrom:
        """The source :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field missing or of the wrong type.
        """
        fields = Fields(data, "copy's source", fail)
        return cls(fields.get("bank", str), fields.get("checkpoint", str))


@attrs.frozen
class LeaseEvent:
    """An item of the history: an operation's lease taken (``start``) or
    given up (``end``) by ``owner``, at ``at``."""

    event: str
    operation: str
    owner: str
    at: str = attrs.field(factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "event": self.event, "operation": self.operation,
                "owner": self.owner}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> LeaseEvent:
        """The event :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field missing or of the wrong type.
        """
        fields = Fields(data, "history entry", fail)
        event = fields.get("event", str)
        if event not in LEASE_EVENTS:
            raise fail(f"{event!r} is not a lease's event")
        return cls(event, fields.get("operation", str), fields.get("owner", str),
                   fields.get("at", str))


@attrs.frozen
class StatusChange:
    """An item of the history: the checkpoint moved ``from_status`` ``to_status``."""

    from_status: str
    to_status: str
    reason: str | None = None
    at: str = attrs.field(factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "event": "status", "from": self.from_status,
                "to": self.to_status, "reason": self.reason}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> StatusChange:
        """The change :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field missing or of the wrong type.
        """
        fields = Fields(data, "history entry", fail)
        return cls(fields.get("from", str), fields.get("to", str),
                   fields.optional("reason", str), fields.get("at", str))


#: One item of a record's history, oldest first: lease starts and ends, and
#: status changes.
HistoryEntry: TypeAlias = LeaseEvent | StatusChange


def _history_entry(data: object, fail: Fail) -> HistoryEntry:
    """The history entry stored as ``data``, of the class its ``event`` says."""
    if isinstance(data, dict) and data.get("event") == "status":
        return StatusChange.from_json(data, fail)
    return LeaseEvent.from_json(data, fail)


@attrs.frozen
class Verification:
    """How the last verify of a checkpoint ended (the record's ``verification``):
    when it ran, whether it found the checkpoint whole, how many problems it
    found and the first."""

    ok: bool
    problems: int
    summary: str | None
    at: str = attrs.field(factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "ok": self.ok, "problems": self.problems,
                "summary": self.summary}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> Verification:
        """The verification :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field missing or of the wrong type.
        """
        fields = Fields(data, "verification", fail)
        return cls(fields.get("ok", bool), fields.get("problems", int),
                   fields.optional("summary", str), fields.get("at", str))


@attrs.frozen
class CheckpointRecord:
    """A checkpoint's record: what it holds (plan, resource graph, the DAG's
    fingerprint), its status and why, who made it and when, where a copy
    came from, its history, what to do after a failure, and the last verify.

    Plugins never add fields; a transition sets ``next_steps``, a verify
    ``verification``.
    """

    id: str
    plan: Plan
    plan_name: str
    resource_graph: ResourceGraph
    dag_fingerprint: str
    status: str
    owner: str
    created_at: str
    updated_at: str
    status_reason: str | None = None
    copied_from: CopiedFrom | None = None
    operations: tuple[HistoryEntry, ...] = ()
    next_steps: str | None = None
    verification: Verification | None = None
    #: The checkpoint's tags, sorted and unique (``protect --tag``, the plan's
    #: ``tags``, ``checkpoints tag``).
    tags: tuple[str, ...] = ()

    @property
    def copy_target(self) -> bool:
        """Whether a copy made this checkpoint (in the copy's target bank)."""
        return self.copied_from is not None

    def to_json(self) -> dict[str, Any]:
        """The record as the bank holds it (``verification`` only once
        verified, ``tags`` only when tagged: see :data:`FORMAT_VERSION`)."""
        data: dict[str, Any] = {
            "version": FORMAT_VERSION if self.tags else 1, "id": self.id,
            "plan": self.plan.to_json(),
            "plan_name": self.plan_name, "resource_graph": self.resource_graph.to_json(),
            "dag_fingerprint": self.dag_fingerprint, "status": self.status,
            "status_reason": self.status_reason, "created_at": self.created_at,
            "updated_at": self.updated_at, "owner": self.owner,
            "copied_from": None if self.copied_from is None else self.copied_from.to_json(),
            "operations": [entry.to_json() for entry in self.operations],
            "next_steps": self.next_steps,
        }
        if self.tags:
            data["tags"] = list(self.tags)
        if self.verification is not None:
            data["verification"] = self.verification.to_json()
        return data

    @classmethod
    def from_json(cls, data: object, source: Stored) -> CheckpointRecord:
        """The record :meth:`to_json` wrote, read from ``source``: its format
        version checked first, then every field.

        Raises
        ------
        CorruptObjectError
            Naming the record and the first field that is missing or of the
            wrong type (its plan and resource graph included: a graph with a
            cycle or a dependency on no resource is refused here).
        BankError
            If it is of another format version.
        """
        fields = source.fields(data, "record", version=READ_VERSIONS,
                               remedy=_remedy(source))
        fail = fields.fail
        status = fields.get("status", str)
        if status not in STATUSES:
            raise fail(f"'status' is {status!r}, not a checkpoint status")
        copied = fields.optional("copied_from", dict)
        verified = fields.optional("verification", dict)
        return cls(
            id=fields.get("id", str), plan=_plan(fields, source),
            plan_name=fields.get("plan_name", str), resource_graph=_graph(fields),
            dag_fingerprint=fields.get("dag_fingerprint", str), status=status,
            owner=fields.get("owner", str), created_at=fields.get("created_at", str),
            updated_at=fields.get("updated_at", str),
            status_reason=fields.optional("status_reason", str),
            copied_from=None if copied is None else CopiedFrom.from_json(
                copied, within(fail, "copied_from")),
            operations=tuple(_history_entry(item, within(fail, f"operations[{i}]"))
                             for i, item in enumerate(fields.get("operations", list))),
            next_steps=fields.optional("next_steps", str),
            verification=None if verified is None else Verification.from_json(
                verified, within(fail, "verification")),
            tags=_tags(fields),
        )


def _tags(fields: Fields) -> tuple[str, ...]:
    """The record's tags (none in a format 1 record), each one checked."""
    tags = fields.strings("tags")
    for tag in tags:
        try:
            check_tag(tag)
        except BankError as err:
            raise fields.fail(f"'tags': {err}") from None
    return tuple(sorted(set(tags)))


def check_tag(tag: str) -> str:
    """Return ``tag`` if it can be a checkpoint's tag (:func:`tag_problem`),
    else raise BankError.

    Raises
    ------
    BankError
        Saying what is wrong with it.
    """
    problem = tag_problem(tag)
    if problem is not None:
        raise BankError(problem)
    return tag


def normal_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """``tags`` checked (:func:`check_tag`), sorted and without repeats.

    Raises
    ------
    BankError
        Naming the first tag that cannot be one.
    """
    return tuple(sorted({check_tag(tag) for tag in tags}))


def _remedy(source: Stored) -> str:
    return (f"{RESTORE}, or remove the folder checkpoints/{source.checkpoint}/ to drop "
            "the checkpoint")


def corrupt_record(source: Stored, why: str) -> CorruptObjectError:
    """The error refusing the record stored at ``source``: what to do names
    the checkpoint's folder."""
    return source.corrupt("record", why, _remedy(source))


def _plan(fields: Fields, source: Stored) -> Plan:
    try:
        return Plan.from_json(fields.get("plan", dict),
                              source=f"kept in checkpoint {source.checkpoint}")
    except PlanError as err:
        raise fields.fail(f"its plan: {err}") from err


def _graph(fields: Fields) -> ResourceGraph:
    try:
        return ResourceGraph.from_json(fields.get("resource_graph", dict))
    except PlanError as err:  # a cycle too
        raise fields.fail(f"its resource graph: {err}") from err


def new_record(
    checkpoint_id: str,
    *,
    plan: Plan,
    resource_graph: ResourceGraph,
    dag_fingerprint: str,
    owner: str,
    copied_from: CopiedFrom | None = None,
    created_at: str | None = None,
    tags: Iterable[str] = (),
) -> CheckpointRecord:
    """The record of a checkpoint ``owner``'s operation is about to fill.

    It starts ``protecting`` (``copying`` for a copy's target, one with
    ``copied_from``), its history holding that operation's start.

    Raises
    ------
    BankError
        If ``checkpoint_id`` is not one key segment, the plan has no name,
        or a tag cannot be one (:func:`check_tag`).
    """
    stamp = now_iso() if created_at is None else created_at
    operation = creating_operation(copied_from)
    if not plan.name:
        raise BankError(f"a checkpoint's plan needs a non-empty 'name'; got {plan.name!r}")
    return CheckpointRecord(
        id=check_checkpoint_id(checkpoint_id), plan=plan, plan_name=plan.name,
        resource_graph=resource_graph, dag_fingerprint=dag_fingerprint,
        status=COPYING if copied_from is not None else PROTECTING, owner=owner,
        created_at=stamp, updated_at=stamp, copied_from=copied_from,
        operations=(LeaseEvent("start", operation, owner, at=stamp),),
        tags=normal_tags(tags),
    )


def creating_operation(copied_from: CopiedFrom | None) -> str:
    """The operation that creates a checkpoint: a copy's target or a protect."""
    return "copy" if copied_from is not None else "protect"


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
