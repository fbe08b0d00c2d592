"""The options of one run, the same for every executor."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from protectflow.errors import ExecutorError
from protectflow.executors._journal import Journal, LinkJournal
from protectflow.executors.report import Event, Recorded
from protectflow.plugins.base import HookCheckpoint

__all__ = ["Journal", "LinkJournal", "RunOptions"]


def _limits(value: Mapping[str, int] | None) -> dict[str, int]:
    limits = dict(value or {})
    for name, n in limits.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ExecutorError(
                f"limit {name}={n!r} is not a positive whole number; "
                "give it as TYPE_OR_POOL=N with N >= 1"
            )
    return limits


def _listeners(value: Iterable[Callable[[Event], Any]]) -> tuple[Callable[[Event], Any], ...]:
    return tuple(value)


def _pools(value: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    return {name: tuple(members) for name, members in (value or {}).items()}


@attrs.frozen
class RunOptions:
    """How to run a HookDAG, whatever the executor.

    Parameters
    ----------
    keep_going
        Run every hook not downstream of a failed one, instead of stopping
        (fail fast: no new hook starts, running hooks finish).
    retries, retry_delay, timeout
        Override every Operation's ``retries``, ``retry_delay`` (seconds,
        doubled per attempt) and ``timeout`` (seconds per attempt; 0 for
        none). ``None`` keeps each Operation's own.
    limits
        The most hooks running at once per resource type or pool, over the
        DAG's own ``limits``.
    pools
        Pool name -> the resource types and ``TYPE#ID`` keys it holds.
    listeners
        Callables given every :class:`~protectflow.executors.report.Event`,
        on the scheduling thread.
    cancel
        Set it (from any thread) to cancel the run: no new hook starts,
        running hooks get ``grace`` seconds to finish.
    registry
        ``"module:function"`` returning the plugin Registry, resolved where
        each hook runs; ``None`` for the installed plugins.
    checkpoint, context
        Given to every hook as they are (they must pickle for dask).
    target_checkpoint
        A copy's destination, given to every hook as the keyword argument
        ``target_checkpoint`` when set.
    journal
        A :class:`Journal` recording every hook's state changes (a bank
        journal: :class:`protectflow.bank.catalog.journal.BankJournal`); ``None``
        for none. Chains (an executor's ``chain``) need a
        :class:`LinkJournal`, or none.
    completed
        Node id -> :class:`~protectflow.executors.report.Recorded`: hooks an
        earlier run of the same DAG finished, taken as succeeded without
        running (a resumed run).
    """

    keep_going: bool = False
    retries: int | None = None
    retry_delay: float | None = None
    timeout: float | None = None
    limits: dict[str, int] = attrs.field(factory=dict, converter=_limits)
    pools: dict[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_pools)
    listeners: tuple[Callable[[Event], Any], ...] = attrs.field(default=(),
                                                                 converter=_listeners)
    cancel: threading.Event | None = None
    grace: float = 10.0
    registry: str | None = None
    checkpoint: HookCheckpoint | None = None
    context: Any = None
    target_checkpoint: HookCheckpoint | None = None
    journal: Journal | None = None
    completed: Mapping[str, Recorded] = attrs.field(factory=dict)
