"""What an operation command says when it ends, and its exit code.

- success (0): one or two lines -- what ran, counts, time, the checkpoint
  and the bank -- and the per-resource table only with ``-v``; nothing
  with ``-q``;
- failure (1): the counts, the first failures, the resources that failed
  (those not run as a count, unless ``-v``), and the command that shows why;
- interrupted (130), by Ctrl-C or SIGTERM: the checkpoint, its status, and
  the exact command that resumes it, with the ``--bank`` it is in.

An error ends a command with the code of its kind (:func:`exit_code`, the one
table of them): 1 when the operation ran and failed, 2 for bad input -- a
plan, a parameter, an option, a bank that is not there, locked, busy or
damaged -- when nothing was written.

With ``--json`` the result document (:func:`protectflow.cli.results.operation_result`)
is printed on stdout whatever the outcome, and the exit code is the same.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from protectflow.cli import results
from protectflow.cli.banks import command
from protectflow.cli.output import (
    hook_counts,
    print_failures,
    print_json,
    print_statuses,
    say,
    timing,
)
from protectflow.dag.outcomes import ResourceStats
from protectflow.errors import (
    BankFullError,
    LocalPluginError,
    OperationInterrupted,
    ProtectflowError,
    RenderError,
    RunFailed,
)
from protectflow.operations import OperationResult
from protectflow.operations.outcomes import total_stats
from protectflow.report.stats import human_size
from protectflow.states import CANCELLED

__all__ = ["INTERRUPTED", "exit_code", "finish", "interrupted", "interrupted_error",
           "next_command", "stats_line"]

#: The exit code of an interrupted command (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: The exit code of an error that is not the input's fault: the operation ran
#: and failed (a hook, the bank's storage full, Graphviz).
EXIT_FAILED = 1
#: The exit code of every other error: bad input, nothing written.
EXIT_BAD_INPUT = 2
#: The kinds of error that exit :data:`EXIT_FAILED`.
_FAILED_KINDS: tuple[type[ProtectflowError], ...] = (
    RunFailed, BankFullError, LocalPluginError, RenderError)


def exit_code(err: ProtectflowError) -> int:
    """The exit code of a command that ``err`` ended: :data:`EXIT_FAILED` for
    a failure of the operation itself, :data:`EXIT_BAD_INPUT` for everything
    else (a bank that is missing, locked, busy or damaged included)."""
    return EXIT_FAILED if isinstance(err, _FAILED_KINDS) else EXIT_BAD_INPUT
#: The operations a `resume` continues; the others are run again.
_RESUMABLE = ("protect", "restore", "verify")


def next_command(args: argparse.Namespace, operation: str, checkpoint_id: str,
                 bank: str) -> str:
    """The command that continues ``operation`` on the checkpoint: ``resume``,
    or the same command again for copy and delete."""
    if operation in _RESUMABLE:
        # A resume takes a restore's or verify's parameters from the operator
        # again (never from the bank alone): the command gives them back.
        given: list[str] = []
        if operation != "protect":
            if getattr(args, "target", None):
                given += ["--target", os.path.abspath(args.target)]
            if getattr(args, "force", False):
                given.append("--force")
            if getattr(args, "parameters", None):
                given += ["--parameters", os.path.abspath(args.parameters)]
        resume = command("resume", checkpoint_id, bank=bank)
        return f"{resume} {shlex.join(given)}" if given else resume
    extra = ["--to", args.to] if operation == "copy" else []
    return command(operation, checkpoint_id, *extra, bank=bank)


def interrupted(args: argparse.Namespace, operation: str, checkpoint_id: str, bank: str,
                status: str | None = None) -> int:
    """Say that the operation was interrupted and how to continue it, on stderr."""
    state = f"; the checkpoint is {status}" if status else ""
    verb = "resume it" if operation in _RESUMABLE else "run it again"
    say(f"protectflow: interrupted: the {operation} of checkpoint {checkpoint_id} in "
        f"{bank} stopped{state}\n{verb} with: "
        f"{next_command(args, operation, checkpoint_id, bank)}")
    return INTERRUPTED


def interrupted_error(args: argparse.Namespace, err: OperationInterrupted) -> int:
    """:func:`interrupted` for an interrupt that ended the operation outside its run."""
    return interrupted(args, err.operation, err.checkpoint_id, err.bank)


def finish(args: argparse.Namespace, result: OperationResult, what: str) -> int:
    """Print the outcome of ``result`` as the flags ask; returns the exit code.

    Raises
    ------
    RunFailed
        When the operation failed (exit code 1), naming the command that shows why.
    """
    checkpoint = result.checkpoint  # its record as the operation left it: not read again
    bank = checkpoint.bank.url
    report = result.report
    for note in result.notes:  # not failures: what the user should know all the same
        print(f"protectflow: note: {note}", file=sys.stderr)
    if args.json:
        print_json(results.operation_result(result), sort_keys=False)
    if report.state == CANCELLED:
        return interrupted(args, result.operation, checkpoint.id, bank, checkpoint.status)
    if result.ok:
        if not args.json and not args.quiet:
            _summary(args, result, what, checkpoint.status)
            _warnings(result)
        return 0
    if not args.json:
        print(f"{what} failed: {hook_counts(report)}, {timing(args, report)}")
        print_failures(report)
        print_statuses(result.resources, everything=args.verbose > 0)
    raise RunFailed(f"{what} failed; `{command('checkpoints', 'show', checkpoint.id, bank=bank)}`"
                    " tells which resources and why", report)


def stats_line(stats: ResourceStats) -> str:
    """restic's summary of a protect: ``Files: 5 new, 2 changed, 100
    unmodified (1.2 MiB); 300 KiB read, 120 KiB added to the bank``."""
    return (f"Files: {stats.files_new} new, {stats.files_changed} changed, "
            f"{stats.files_unmodified} unmodified ({human_size(stats.size)}); "
            f"{human_size(stats.bytes_read)} read, {human_size(stats.bytes_added)} added to "
            "the bank")


def _warnings(result: OperationResult) -> None:
    """A success's warnings (a file changed while read, a damaged chunk stored
    again), one line per resource on stderr: the checkpoint is good, and the
    user should know all the same."""
    for key, status in sorted(result.resources.items()):
        if status.reason:
            print(f"protectflow: warning: {key}: {status.reason}", file=sys.stderr)


def _summary(args: argparse.Namespace, result: OperationResult, what: str, status: str) -> None:
    """The lines of a success: what ran, the checkpoint and the bank."""
    report = result.report
    resumed = sum(r.resumed for r in report.hooks.values())
    taken = f", {resumed} taken from the journal" if resumed else ""
    print(f"{what} succeeded: {len(result.resources)} resources, {len(report.hooks)} hooks"
          f"{taken}, {timing(args, report)}")
    total = total_stats(result.resources)
    if result.operation == "protect":
        print(stats_line(total) if total is not None
              else "Files: — (the plugins of these resources report no stats)")
    print(f"checkpoint {result.checkpoint.id}: {status}, in the bank {result.checkpoint.bank.url}")
    if result.target is not None:
        print(f"copied as checkpoint {result.target.id}, in the bank {result.target.bank.url}")
    new = result.new_resources
    if new and (args.verbose or len(new) <= 10):
        print("new resources:")
        for key, value in sorted(new.items()):
            print(f"  {key} -> {value}")
    elif new:
        print(f"{len(new)} new resources (-v lists them; --json gives them all)")
    if args.verbose:
        print_statuses(result.resources)
    sys.stdout.flush()
