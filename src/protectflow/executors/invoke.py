"""Calling one hook: a module-level, picklable function and the values it
takes and returns.

:func:`invoke_hook` runs wherever the executor sends it (the scheduling
thread, a pool thread, a dask worker in another process). It takes the
node's Operation from the run's :class:`~protectflow.executors.instances.Instances`
of *that* process (one per resource per run, its plugin resolved by name
there), so only names and plain data travel: the node, its parameters, the
caller's ``checkpoint`` and ``context``, and the ``new_resources`` the node's
ancestors wrote. The hook is called by keyword through
:func:`protectflow.plugins.contract.call_hook`, the one place hooks are
called. It never raises: a failure comes back as a value (dask's
``(key, result, failed)``).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from protectflow.bank.catalog.journal import JournalEntry
from protectflow.dag.model import HookNode
from protectflow.dag.outcomes import ErrorInfo
from protectflow.executors._journal import LinkJournal
from protectflow.executors.instances import Instances
from protectflow.plugins.base import HookCheckpoint
from protectflow.plugins.contract import (
    NEW_RESOURCES_OPERATIONS,
    OperationSettings,
    StatusRecorder,
    StatusUpdate,
    call_hook,
    hook_extras,
)
from protectflow.states import FAILED, STARTED, SUCCEEDED, TIMED_OUT

__all__ = ["SKIPPED", "ErrorInfo", "HookCall", "HookResult", "OperationLog", "ended_entry",
           "failed_result", "invoke_chain", "invoke_hook", "started_entry"]

_DEFAULT_SETTINGS = OperationSettings()

#: The state of a chained hook that was not started: the run was stopping.
SKIPPED = "skipped"

_PROCESS = f"{socket.gethostname()}:{os.getpid()}"
_here = threading.local()  # this thread's worker name


class OperationLog:
    """The per-hook log a hook gets as ``kwargs["operation_log"]``.

    Small and picklable: its messages travel back with the hook's result and
    end up in the hook's entry of the report.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[float, str, str]] = []

    def log(self, level: str, message: str) -> None:
        self.messages.append((time.time(), level, str(message)))

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)


# HookCall and HookResult are named tuples rather than frozen attrs classes:
# as immutable and picklable, and one of each is made per hook attempt, where
# a frozen attrs class's __init__ (one object.__setattr__ per field) cost a
# sixth of the serial executor's whole per-hook overhead.


class HookCall(NamedTuple):
    """Everything one attempt of one hook needs, all of it picklable."""

    #: The node's index in the DAG's nodes.
    node_index: int
    node: HookNode
    operation: str
    parameters: dict[str, Any]
    attempt: int
    registry: str | None = None
    checkpoint: HookCheckpoint | None = None
    context: Any = None
    #: What the node's ancestors wrote into ``new_resources`` (restore and
    #: verify only); the hook gets a copy of it, never this object.
    view: dict[str, Any] | None = None
    target_checkpoint: HookCheckpoint | None = None
    #: Seconds per attempt, overriding the Operation's ``timeout``; ``None``
    #: keeps the Operation's, ``0`` means none.
    timeout: float | None = None
    #: Where a chain's hooks record their success before the next one starts
    #: (the run's journal, when it can be written from a worker; head only).
    journal: LinkJournal | None = None
    #: Hooks to run after this one, each once the one before it succeeded
    #: (a chain: see ``run_loop``); their ``view`` is left for the runner.
    then: tuple[HookCall, ...] = ()
    #: The loop's order of the hook: where an executor queues calls, a
    #: smaller rank should start first (the most critical hook is 0).
    rank: int = 0


class HookResult(NamedTuple):
    """The outcome of one attempt: ``state`` is succeeded, failed or timed_out."""

    node_index: int
    attempt: int
    state: str
    start: float
    end: float
    worker: str
    output: Any = None
    writes: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    log: tuple[tuple[float, str, str], ...] = ()
    #: The Operation's ``retries`` and ``retry_delay``, read where it ran, so
    #: that the scheduler never needs the plugins.
    retries: int = 0
    retry_delay: float = 0.1
    #: The worker recorded this success in the run's journal before it
    #: started the next hook of its chain: it is durable already.
    journaled: bool = False
    #: What the hook reported through its ``restore``, ``verify`` or
    #: ``checkpoint_copy`` object (``update_resource_status``), in order.
    status_updates: tuple[StatusUpdate, ...] = ()


def invoke_hook(call: HookCall, instances: Instances) -> HookResult:
    """Run one attempt of ``call``'s hook on the run's Operation for its
    resource (from ``instances``); never raises an ``Exception``.

    The hook is called through :func:`~protectflow.plugins.contract.call_hook`,
    by keyword, with the operation's extras. A hook with a timeout runs in a
    helper daemon thread: when it overstays, the result says ``timed_out``
    and the thread is left behind (Python cannot stop a thread), still
    running until the hook returns by itself.
    """
    worker: str = getattr(_here, "worker", None) or _worker()
    log = OperationLog()
    start = time.time()
    settings = _DEFAULT_SETTINGS
    recorder: StatusRecorder | None = None
    try:
        node = call.node
        op, settings = instances.get_with_settings(node.plugin, call.operation, node.resource)
        timeout = settings.timeout if call.timeout is None else call.timeout
        new = dict(call.view or {}) if call.operation in NEW_RESOURCES_OPERATIONS else None
        extras, recorder = hook_extras(call.operation, operation_log=log, attempt=call.attempt,
                                       new_resources=new,
                                       target_checkpoint=call.target_checkpoint)
        if not timeout:  # called here and now: nothing to wrap
            output = call_hook(op, node.hook, checkpoint=call.checkpoint,
                               resource=node.resource, context=call.context,
                               parameters=call.parameters, **extras)
            done = True
        else:
            hook = functools.partial(call_hook, op, node.hook, checkpoint=call.checkpoint,
                                     resource=node.resource, context=call.context,
                                     parameters=call.parameters, **extras)
            done, output = _call_hook(hook, timeout)
        if not done:
            return HookResult(
                call.node_index, call.attempt, TIMED_OUT, start, time.time(), worker,
                error=ErrorInfo("TimeoutError", f"{node.id} ran over its {timeout} s timeout"),
                log=tuple(log.messages), retries=settings.retries,
                retry_delay=settings.retry_delay, status_updates=_updates(recorder),
            )
    except (Exception, SystemExit) as err:
        return HookResult(
            call.node_index, call.attempt, FAILED, start, time.time(), worker,
            error=ErrorInfo.from_exception(err), log=tuple(log.messages),
            retries=settings.retries, retry_delay=settings.retry_delay,
            status_updates=_updates(recorder),
        )
    end = time.time()
    # (a dict, the usual output, needs no look at the Mapping ABC)
    if output is not None and type(output) is not dict and not isinstance(output, Mapping):
        log.warning(f"the hook returned a {type(output).__name__}, not a mapping: ignored")
        output = None
    # Positional, in HookResult's field order: made once per hook attempt.
    return HookResult(
        call.node_index, call.attempt, SUCCEEDED, start, end, worker,
        dict(output) if output is not None else None,  # output
        _writes(call.view, new) if new else None,  # writes
        None,  # error
        tuple(log.messages) if log.messages else (),  # log
        settings.retries, settings.retry_delay,
        False,  # journaled
        () if recorder is None else tuple(recorder.updates),  # status_updates
    )


def _worker() -> str:
    """``host:pid/thread``, where hooks run on this thread (kept for the next)."""
    name = _here.worker = f"{_PROCESS}/{threading.current_thread().name}"
    return name


def _updates(recorder: StatusRecorder | None) -> tuple[StatusUpdate, ...]:
    # A copy: a timed-out hook's thread may still be adding to the list.
    return () if recorder is None else tuple(recorder.updates)


def _call_hook(hook: Callable[[], Any], timeout: float | None) -> tuple[bool, Any]:
    """``(True, output)``, or ``(False, None)`` when ``timeout`` ran out first;
    the hook's own exception propagates."""
    if not timeout:
        return True, hook()
    done, box = _run_with_timeout(hook, timeout)
    if not done:
        return False, None
    if "error" in box:
        raise box["error"]
    return True, box.get("output")


def invoke_chain(
    call: HookCall, report: Callable[[HookResult], None], halted: Callable[[], bool], *,
    instances: Instances,
) -> list[HookResult]:
    """Run ``call``, then each of ``call.then`` while the one before succeeded,
    on the run's Operations in ``instances``.

    ``report`` gets each result as it comes. Once ``halted()`` is true, the
    next hook is not started but reported ``skipped``, and the chain ends;
    that holds for the first hook too, so a task that waited in a worker's
    queue while the run stopped starts nothing.
    Each chained hook has one predecessor, the hook before it: its view is
    that one's plus that one's writes, as the loop's ``Views`` would make it.
    """
    if halted():
        now = time.time()
        skipped = HookResult(call.node_index, call.attempt, SKIPPED, now, now,
                             f"{_PROCESS}/{threading.current_thread().name}")
        report(skipped)
        return [skipped]
    journal = call.journal
    results: list[HookResult] = []
    links = iter(call.then)
    while True:
        last = invoke_hook(call, instances)
        link = next(links, None) if last.state == SUCCEEDED else None
        if link is not None and not halted():
            failure = None if journal is None else _journal_link(journal, call, last, link)
            if failure is None:
                # Reported once durable, so the loop may release its dependents at once.
                last = last._replace(journaled=journal is not None)
                results.append(last)
                report(last)
                view = call.view
                if view is not None and last.writes:
                    view = {**view, **last.writes}
                call = link._replace(view=view)
                continue
            last = last._replace(log=(*last.log, failure))
        results.append(last)
        report(last)
        if link is not None:
            report(HookResult(link.node_index, link.attempt, SKIPPED, last.end, last.end,
                              last.worker))
        return results


def _journal_link(journal: LinkJournal, call: HookCall, last: HookResult,
                  link: HookCall) -> tuple[float, str, str] | None:
    """Make ``last``'s success durable before ``link`` starts, as the loop does
    for hooks it starts itself. When the journal cannot, the log line that
    says so: the chain then stops there, the loop records the success in its
    own journal and starts ``link`` itself once that is durable (and fails
    the run if that write fails too)."""
    entries = [ended_entry(call.node.id, last), started_entry(link.node.id, link.attempt)]
    try:
        journal.record_link(f"{last.node_index:09d}-{last.attempt}", entries)
    except Exception as err:
        return (time.time(), "warning",
                f"could not record this success in the run journal where it ran ({err!r}); "
                f"{link.node.id} waits for the run's own journal instead")
    return None


def started_entry(node: str, attempt: int) -> JournalEntry:
    """The journal entry of attempt ``attempt`` of ``node``, starting now."""
    return JournalEntry(node, STARTED, attempt, time.time())


def ended_entry(node: str, result: HookResult, *, retrying: bool = False) -> JournalEntry:
    """The journal entry of ``result``, the attempt of ``node`` that ended:
    its output and writes for a success, else its error and whether it will
    be ``retrying``; and the resource statuses it reported, if any."""
    if result.state == SUCCEEDED:
        return JournalEntry(node, SUCCEEDED, result.attempt, result.end, result.worker,
                            output=result.output, new_resources=result.writes,
                            status_updates=result.status_updates)
    return JournalEntry(node, result.state, result.attempt, result.end, result.worker,
                        error=result.error, retrying=retrying, status_updates=result.status_updates)


def _run_with_timeout(hook: Callable[[], Any], timeout: float) -> tuple[bool, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["output"] = hook()
        except BaseException as err:  # carried back to the calling thread
            box["error"] = err

    thread = threading.Thread(target=target, name="protectflow-hook", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), box


def _writes(view: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the hook added to or changed in its copy of ``new_resources``."""
    if not new:
        return None
    base = view or {}
    missing = object()
    writes = {k: v for k, v in new.items() if base.get(k, missing) is not v}
    return writes or None


def failed_result(call: HookCall, err: BaseException, worker: str = "") -> HookResult:
    """The result of an attempt the executor itself lost (a dead worker, a
    call that would not pickle): failed, with ``err``."""
    now = time.time()
    return HookResult(call.node_index, call.attempt, FAILED, now, now, worker or _PROCESS + "/-",
                      error=ErrorInfo.from_exception(err))
