"""``protectflow protect``, ``restore``, ``verify``, ``copy``, ``delete`` and
``resume``: each is one call into :mod:`protectflow.operations`, with the
executor, live progress and report files the flags ask for."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

from protectflow import operations
from protectflow.bank import Bank
from protectflow.cli.options import (
    BANK_HELP,
    Subparsers,
    add_bank_args,
    add_executor_args,
    bank_from_args,
    executor_from_args,
    load_parameters,
)
from protectflow.cli.output import print_statuses, print_summary, progress, write_report_files
from protectflow.compiler import load_plan
from protectflow.errors import RunFailed
from protectflow.operations import OperationResult
from protectflow.plugins import get_registry

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers) -> None:
    """Add the operation commands to ``sub``."""
    p = sub.add_parser("protect", help="protect a plan's resources into a new checkpoint")
    p.add_argument("plan", metavar="PLAN")
    add_bank_args(p, BANK_HELP + " (default: the plan's, then $PROTECTFLOW_BANK, then a "
                  "folder in your data directory)")
    p.add_argument("--no-fsync", dest="fsync", action="store_false",
                   help="write a local bank without fsync: faster, as safe if the process "
                   "dies, but a power loss may take the checkpoint with it")
    add_executor_args(p)
    p.set_defaults(func=protect_command)

    for name, helptext in (("restore", "restore a checkpoint's resources"),
                           ("verify", "check that a checkpoint's data is whole")):
        p = _checkpoint_parser(sub, name, helptext)
        p.add_argument("--parameters", metavar="FILE",
                       help="YAML or JSON parameters keyed by TYPE or TYPE#ID")
        if name == "restore":
            p.add_argument("--target", metavar="DIR", help="restore into this folder (sets "
                           "the 'target' parameter of every plugin that takes one)")
            p.add_argument("--force", action="store_true",
                           help="restore into a folder that is not empty")
        else:
            depth = p.add_mutually_exclusive_group()
            depth.add_argument("--read-data", dest="read_data", action="store_true",
                               default=True, help="the full check (the default): every "
                               "object authenticated, then the plugins read every chunk")
            depth.add_argument("--metadata-only", dest="read_data", action="store_false",
                               help="authenticate every object and find every chunk, "
                               "reading none (like `restic check`); runs no plugin")
        add_executor_args(p)
        p.set_defaults(func=restore_or_verify_command, operation=name)

    p = _checkpoint_parser(sub, "copy", "copy a checkpoint into another bank")
    p.add_argument("--to", required=True, metavar="URL", help="the bank to copy into")
    p.add_argument("--to-password-file", metavar="FILE",
                   help="as --password-file, for the bank copied into")
    add_executor_args(p)
    p.set_defaults(func=copy_command)

    p = _checkpoint_parser(sub, "delete", "delete a checkpoint's data (its record stays)")
    add_executor_args(p)
    p.set_defaults(func=delete_command)

    p = _checkpoint_parser(sub, "resume", "continue a checkpoint's interrupted or failed "
                           "operation from its journal (any executor)")
    p.add_argument("--plan", metavar="PLAN", help="the plan a protect was started with, to "
                   "check that it did not change (default: the plan saved in the checkpoint)")
    add_executor_args(p)
    p.set_defaults(func=resume_command)


def _checkpoint_parser(sub: Subparsers, name: str, helptext: str) -> argparse.ArgumentParser:
    """A command on one checkpoint: its ID and ``--bank`` (its own options and
    the executor's follow)."""
    p = sub.add_parser(name, help=helptext)
    p.add_argument("checkpoint", metavar="ID")
    add_bank_args(p)
    return p


def _run(args: argparse.Namespace, call: Callable[..., OperationResult], *call_args: Any,
         bank: Bank | None = None, **kwargs: Any) -> OperationResult:
    """Run ``call`` (an operation) on ``bank`` (by default the one the flags
    name) with the executor and live progress the flags ask for, and write
    the ``--report`` and ``--trace`` files."""
    executor, options = executor_from_args(args)
    bank = bank if bank is not None else bank_from_args(args)
    with progress(f"{call.__name__} ({executor.name})") as listener:
        if listener is not None:
            options["listeners"] = [listener]
        result = call(*call_args, bank=bank, executor=executor, **kwargs, **options)
    write_report_files(result.report, args)
    return result


def _finish(result: OperationResult, what: str) -> int:
    """Print the summary and the statuses; a failed operation raises.

    Raises
    ------
    RunFailed
        When the operation failed (exit code 1).
    """
    print_summary(result.report)
    print_statuses(result.resources)
    for note in result.notes:  # not failures: what the user should know all the same
        print(f"protectflow: note: {note}", file=sys.stderr)
    if not result.ok:
        raise RunFailed(f"{what} failed; `protectflow checkpoints show "
                        f"{result.checkpoint.id}` tells which resources and why", result.report)
    return 0


def protect_command(args: argparse.Namespace) -> int:
    """``protectflow protect PLAN``."""
    plan = load_plan(args.plan)  # its bank is the default one
    bank = bank_from_args(args, args.bank if args.bank is not None else plan.bank,
                          fsync=args.fsync)
    result = _run(args, operations.protect, plan, bank=bank)
    print(f"checkpoint {result.checkpoint.id}: {result.checkpoint.status}")
    return _finish(result, f"protect of {args.plan}")


def restore_or_verify_command(args: argparse.Namespace) -> int:
    """``protectflow restore ID`` and ``protectflow verify ID``."""
    if args.operation == "verify" and not args.read_data:
        return check_command(args)
    parameters = load_parameters(args.parameters)
    if getattr(args, "target", None):
        parameters = _with_target(args, parameters)
    call = operations.restore if args.operation == "restore" else operations.verify
    result = _run(args, call, args.checkpoint, parameters=parameters)
    _print_problems(result.problems)
    if result.new_resources:
        print("new resources:")
        for key, value in sorted(result.new_resources.items()):
            print(f"  {key} -> {value}")
    return _finish(result, f"{args.operation} of checkpoint {args.checkpoint}")


def check_command(args: argparse.Namespace) -> int:
    """``protectflow verify ID --metadata-only``: every problem printed; 1 if any."""
    found = operations.check(args.checkpoint, bank=bank_from_args(args))
    print(f"checkpoint {args.checkpoint}: {found.objects} object(s) authenticated, "
          f"{found.chunks} chunk(s) found")
    _print_problems(found.problems)
    if found.problems:
        print(f"metadata check failed: {len(found.problems)} problem(s)")
        return 1
    print("metadata check passed (no chunk read: run without --metadata-only to read them)")
    return 0


def _print_problems(problems: tuple[str, ...]) -> None:
    for problem in problems:
        print(f"problem: {problem}")


def _with_target(args: argparse.Namespace,
                 parameters: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Give ``--target`` (and ``--force``) to every type whose restore schema
    takes a ``target``."""
    checkpoint = operations.open_store(bank_from_args(args)).get(args.checkpoint)
    registry = get_registry()
    types = {r["type"] for r in checkpoint.resource_graph["resources"]}
    out = {k: dict(v) for k, v in parameters.items()}
    for rtype in sorted(types):
        name = registry.plugin_name_for(rtype)
        if name is None:
            continue
        props = registry.plugin(name).get_restore_schema(rtype).get("properties", {})
        if "target" in props:
            out.setdefault(rtype, {}).setdefault("target", args.target)
            if args.force and "force" in props:
                out[rtype].setdefault("force", True)
    return out


def copy_command(args: argparse.Namespace) -> int:
    """``protectflow copy ID --to URL``."""
    to = Bank(args.to, password_file=args.to_password_file)
    result = _run(args, operations.copy, args.checkpoint, to=to)
    if result.target is not None:
        print(f"copied to {args.to} as checkpoint {result.target.id}")
    return _finish(result, f"copy of checkpoint {args.checkpoint}")


def delete_command(args: argparse.Namespace) -> int:
    """``protectflow delete ID``."""
    result = _run(args, operations.delete, args.checkpoint)
    print(f"checkpoint {args.checkpoint}: {result.checkpoint.reload().status}")
    return _finish(result, f"delete of checkpoint {args.checkpoint}")


def resume_command(args: argparse.Namespace) -> int:
    """``protectflow resume ID``."""
    result = _run(args, operations.resume, args.checkpoint, plan=args.plan)
    resumed = sum(r.resumed for r in result.report.hooks.values())
    print(f"resumed the {result.operation} of checkpoint {args.checkpoint}: {resumed} hook(s) "
          f"taken from the journal, {len(result.report.hooks) - resumed} run")
    print(f"checkpoint {args.checkpoint}: {result.checkpoint.reload().status}")
    return _finish(result, f"resumed {result.operation} of checkpoint {args.checkpoint}")
