"""The operation commands of the CLI: protect, restore, verify, copy, delete
and checkpoints. Each is one call into :mod:`protectflow.operations`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from protectflow.errors import PlanError

__all__ = ["add_operation_parsers"]


def add_operation_parsers(
    sub: Any, executor_args: Any, bank_help: str = "the bank URL or folder"
) -> None:
    """Add the operation subcommands to ``sub``; ``executor_args(parser)``
    adds the executor options that ``run`` takes too."""
    p = sub.add_parser("protect", help="protect a plan's resources into a new checkpoint")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--bank", help=bank_help + " (default: the plan's, then $PROTECTFLOW_BANK, "
                   "then a folder in your data directory)")
    p.add_argument("--no-fsync", dest="fsync", action="store_false",
                   help="write a local bank without fsync: faster, as safe if the process "
                   "dies, but a power loss may take the checkpoint with it")
    executor_args(p)
    p.set_defaults(func=_protect)

    for name, helptext in (("restore", "restore a checkpoint's resources"),
                           ("verify", "check that a checkpoint's data is whole")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("checkpoint", metavar="ID")
        p.add_argument("--bank", help=bank_help)
        p.add_argument("--parameters", metavar="FILE",
                       help="YAML or JSON parameters keyed by TYPE or TYPE#ID")
        if name == "restore":
            p.add_argument("--target", metavar="DIR", help="restore into this folder (sets "
                           "the 'target' parameter of every plugin that takes one)")
            p.add_argument("--force", action="store_true",
                           help="restore into a folder that is not empty")
        executor_args(p)
        p.set_defaults(func=_restore_or_verify, operation=name)

    p = sub.add_parser("copy", help="copy a checkpoint into another bank")
    p.add_argument("checkpoint", metavar="ID")
    p.add_argument("--to", required=True, metavar="URL", help="the bank to copy into")
    p.add_argument("--bank", help=bank_help)
    executor_args(p)
    p.set_defaults(func=_copy)

    p = sub.add_parser("delete", help="delete a checkpoint's data (its record stays)")
    p.add_argument("checkpoint", metavar="ID")
    p.add_argument("--bank", help=bank_help)
    executor_args(p)
    p.set_defaults(func=_delete)

    p = sub.add_parser("resume", help="continue a checkpoint's interrupted or failed "
                       "operation from its journal (any executor)")
    p.add_argument("checkpoint", metavar="ID")
    p.add_argument("--bank", help=bank_help)
    p.add_argument("--plan", metavar="PLAN", help="the plan a protect was started with, to "
                   "check that it did not change (default: the plan saved in the checkpoint)")
    executor_args(p)
    p.set_defaults(func=_resume)

    p = sub.add_parser("checkpoints", help="list, show or clean up checkpoints")
    p.add_argument("--bank", help=bank_help)
    csub = p.add_subparsers(dest="action", metavar="ACTION")
    c = csub.add_parser("list", help="newest first")
    c.add_argument("--plan", help="only this plan's checkpoints")
    c.add_argument("--limit", type=int, default=20)
    c.add_argument("--marker", help="the last id of the previous page")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("show", help="a checkpoint's record and per-resource status")
    c.add_argument("checkpoint", metavar="ID")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("gc", help="resolve checkpoints whose operation died")
    c.add_argument("--delete", action="store_true", help="remove them instead of marking error")
    # `checkpoints list --bank X` as well as `checkpoints --bank X list`
    for c in csub.choices.values():
        c.add_argument("--bank", default=argparse.SUPPRESS, help=bank_help)
    p.set_defaults(func=_checkpoints, action=None)


def _run(args: argparse.Namespace, call: Any, *call_args: Any, **kwargs: Any) -> Any:
    """Run ``call`` (an operation) with the executor and live progress the
    flags ask for, and write the ``--report`` and ``--trace`` files."""
    from protectflow._cli_run import executor_from_args, progress, write_report_files

    executor, options = executor_from_args(args)
    with progress(f"{call.__name__} ({executor.name})") as listener:
        if listener is not None:
            options["listeners"] = [listener]
        result = call(*call_args, bank=args.bank, executor=executor, **kwargs, **options)
    write_report_files(result.report, args)
    return result


def _finish(result: Any, what: str) -> int:
    from protectflow._cli_run import print_summary
    from protectflow.errors import RunFailed

    print_summary(result.report)
    _print_statuses(result.resources)
    if not result.ok:
        raise RunFailed(f"{what} failed; `protectflow checkpoints show "
                        f"{result.checkpoint.id}` tells which resources and why", result.report)
    return 0


def _protect(args: argparse.Namespace) -> int:
    from protectflow import operations

    result = _run(args, operations.protect, args.plan, fsync=args.fsync)
    print(f"checkpoint {result.checkpoint.id}: {result.checkpoint.status}")
    return _finish(result, f"protect of {args.plan}")


def load_parameters(path: str | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise PlanError(f"cannot read parameters {path!r}: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise PlanError(f"parameters {path!r} must map TYPE or TYPE#ID to an object of "
                        "parameters, e.g. {'OS::Cinder::Volume': {'main_seconds': 1}}")
    return data


def _restore_or_verify(args: argparse.Namespace) -> int:
    from protectflow import operations

    parameters = load_parameters(args.parameters)
    if getattr(args, "target", None):
        parameters = _with_target(args, parameters)
    call = operations.restore if args.operation == "restore" else operations.verify
    result = _run(args, call, args.checkpoint, parameters=parameters)
    if result.new_resources:
        print("new resources:")
        for key, value in sorted(result.new_resources.items()):
            print(f"  {key} -> {value}")
    return _finish(result, f"{args.operation} of checkpoint {args.checkpoint}")


def _with_target(args: argparse.Namespace, parameters: dict[str, Any]) -> dict[str, Any]:
    """Give ``--target`` (and ``--force``) to every type whose restore schema
    takes a ``target``."""
    from protectflow import operations
    from protectflow.plugins import get_registry

    checkpoint = operations.open_store(args.bank).get(args.checkpoint)
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


def _copy(args: argparse.Namespace) -> int:
    from protectflow import operations

    result = _run(args, operations.copy, args.checkpoint, to=args.to)
    if result.target is not None:
        print(f"copied to {args.to} as checkpoint {result.target.id}")
    return _finish(result, f"copy of checkpoint {args.checkpoint}")


def _delete(args: argparse.Namespace) -> int:
    from protectflow import operations

    result = _run(args, operations.delete, args.checkpoint)
    print(f"checkpoint {args.checkpoint}: {result.checkpoint.reload().status}")
    return _finish(result, f"delete of checkpoint {args.checkpoint}")


def _resume(args: argparse.Namespace) -> int:
    from protectflow import operations

    result = _run(args, operations.resume, args.checkpoint, plan=args.plan)
    resumed = sum(r.resumed for r in result.report.hooks.values())
    print(f"resumed the {result.operation} of checkpoint {args.checkpoint}: {resumed} hook(s) "
          f"taken from the journal, {len(result.report.hooks) - resumed} run")
    print(f"checkpoint {args.checkpoint}: {result.checkpoint.reload().status}")
    return _finish(result, f"resumed {result.operation} of checkpoint {args.checkpoint}")


def _checkpoints(args: argparse.Namespace) -> int:
    from protectflow import operations

    store = operations.open_store(args.bank)
    if args.action == "show":
        checkpoint = store.get(args.checkpoint)
        if args.json:
            print(json.dumps(checkpoint.to_json(), indent=1, sort_keys=True))
            return 0
        _show(checkpoint)
        return 0
    if args.action == "gc":
        changed = store.gc(delete=args.delete)
        verb = "removed" if args.delete else "marked error"
        print(f"{len(changed)} checkpoint(s) {verb}" + "".join(f"\n  {c}" for c in changed))
        return 0
    limit = getattr(args, "limit", 20)
    page = store.list(plan=getattr(args, "plan", None), limit=limit,
                      marker=getattr(args, "marker", None))
    rows = [_row(c) for c in page]
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"checkpoints in {store.bank.url}")
    table.add_column("id", no_wrap=True, min_width=32)
    for column in ("plan", "status", "created_at (UTC)", "owner"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("id", "plan", "status", "created_at", "owner")))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    if len(rows) == limit:
        print(f"next page: protectflow checkpoints list --marker {rows[-1]['id']}")
    return 0


def _row(checkpoint: Any) -> dict[str, Any]:
    """A listing row; a checkpoint whose record is corrupt is listed as such
    (``checkpoints show ID`` says what is wrong), not a reason to list nothing."""
    from protectflow.errors import BankError

    try:
        record = checkpoint.record
    except BankError:
        return {"id": checkpoint.id, "plan": None, "status": "corrupt", "created_at": "",
                "owner": ""}
    return {"id": checkpoint.id, "plan": record.get("plan_name"), "status": checkpoint.status,
            "created_at": checkpoint.created_at[:19].replace("T", " "), "owner": checkpoint.owner}


def _show(checkpoint: Any) -> None:
    record = checkpoint.record
    print(f"checkpoint {checkpoint.id}")
    for field in ("plan_name", "status", "status_reason", "next_steps", "created_at",
                  "updated_at", "owner", "dag_fingerprint"):
        if record.get(field) is not None:
            print(f"  {field:<16} {record[field]}")
    if record.get("copied_from"):
        print(f"  {'copied_from':<16} {record['copied_from']}")
    lease = checkpoint.lease
    if lease is not None:
        print(f"  {'busy':<16} {lease.describe()}")
    if record.get("status") in ("protecting", "error") and not record.get("next_steps"):
        from protectflow._recovery import next_steps

        print(f"  {'next_steps':<16} " + ("if its operation died: " if lease else "")
              + next_steps(checkpoint.id))
    _print_statuses(checkpoint.resources)
    runs = checkpoint.list_runs()
    if runs:
        print("runs:")
        for run in runs:
            print(f"  {run.id}  {run.operation:<8} {run.status:<8} {run.owner}")


def _print_statuses(resources: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not resources:
        return
    table = Table()
    for column in ("resource", "status", "reason"):
        table.add_column(column)
    for key, value in sorted(resources.items()):
        table.add_row(key, value["status"], value.get("reason") or "")
    Console(width=None if sys.stdout.isatty() else 160).print(table)
