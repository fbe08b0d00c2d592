"""``protectflow checkpoints list | show | gc | repair | reindex``: what a bank
holds; ``show ID --resource TYPE#ID`` what a checkpoint keeps about one resource."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from protectflow import operations, results
from protectflow.bank import Checkpoint, CheckpointStore
from protectflow.cli.options import Subparsers, add_bank_args, bank_from_args
from protectflow.cli.output import print_json, print_statuses, stdout_console
from protectflow.errors import BankError
from protectflow.plugins.queries import saved_info
from protectflow.states import ERROR, PROTECTING

__all__ = ["add_parsers"]

#: How a listing shows a checkpoint whose record cannot be read (no stored status).
CORRUPT = "corrupt"
#: The columns of a listing, in order.
COLUMNS = ("id", "plan", "status", "created_at", "owner", "verified")


def add_parsers(sub: Subparsers) -> None:
    """Add ``checkpoints`` and its actions to ``sub``."""
    p = sub.add_parser("checkpoints", help="list, show or clean up checkpoints")
    add_bank_args(p)
    csub = p.add_subparsers(dest="action", metavar="ACTION")
    c = csub.add_parser("list", help="newest first")
    c.add_argument("--plan", help="only this plan's checkpoints")
    c.add_argument("--limit", type=int, default=20)
    c.add_argument("--marker", help="the last id of the previous page")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("show", help="a checkpoint's record and per-resource status")
    c.add_argument("checkpoint", metavar="ID")
    c.add_argument("--resource", metavar="TYPE#ID",
                   help="print what the checkpoint keeps about this resource (its saved info)")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("gc", help="resolve checkpoints whose operation died")
    c.add_argument("--delete", action="store_true",
                   help="remove them, and the data only they use, instead of marking error")
    c = csub.add_parser("repair", help="re-create the chunk refs a checkpoint's manifests "
                        "call for (those verify reports missing)")
    c.add_argument("checkpoint", metavar="ID")
    csub.add_parser("reindex", help="rebuild the checkpoint index from the records")
    # `checkpoints list --bank X` as well as `checkpoints --bank X list`
    for c in csub.choices.values():
        add_bank_args(c, suppress=True)
    p.set_defaults(func=checkpoints_command, action=None)


def checkpoints_command(args: argparse.Namespace) -> int:
    """``protectflow checkpoints [list | show ID | gc]`` (list by default)."""
    store = operations.open_store(bank_from_args(args))
    if args.action == "show":
        checkpoint = store.get(args.checkpoint)
        if args.resource is not None:
            _show_saved_info(checkpoint, args.resource, as_json=args.json)
        elif args.json:
            print_json(results.checkpoint_show(checkpoint), sort_keys=False)
        else:
            _show(checkpoint)
        return 0
    if args.action == "gc":
        done = operations.gc(store, delete=args.delete)
        verb = "removed" if args.delete else "resolved"
        print(f"{len(done.changed)} checkpoint(s) {verb}"
              + "".join(f"\n  {c}" for c in done.changed))
        print(f"{done.freed_chunks} chunk(s) freed, {len(done.corrupt_leases)} corrupt "
              f"lease(s) and {done.temp_files} stale temporary file(s) removed")
        return 0
    if args.action == "repair":
        fixed = operations.repair(store, store.resolve(args.checkpoint))
        print(f"checkpoint {fixed.checkpoint}: {len(fixed.refs_made)} ref(s) re-created")
        for problem in fixed.problems:
            print(f"  problem: {problem}")
        return 0 if fixed.ok else 1
    if args.action == "reindex":
        print(f"{operations.reindex(store)} index entr(ies) written")
        return 0
    return _list(store, args)


def _list(store: CheckpointStore, args: argparse.Namespace) -> int:
    # Without an action (`checkpoints`), list's own options are not set.
    limit = getattr(args, "limit", 20)
    page = store.list(plan=getattr(args, "plan", None), limit=limit,
                      marker=getattr(args, "marker", None))
    rows = [_row(c) for c in page]
    if getattr(args, "json", False):
        print_json(rows, sort_keys=False)
        return 0
    table = Table(title=f"checkpoints in {store.bank.url}")
    table.add_column("id", no_wrap=True, min_width=32)
    for column in ("plan", "status", "created_at (UTC)", "owner", "verified"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in COLUMNS))
    stdout_console().print(table)
    if len(rows) == limit:
        print(f"next page: protectflow checkpoints list --marker {rows[-1]['id']}")
    return 0


def _row(checkpoint: Checkpoint) -> dict[str, Any]:
    """A listing row; a checkpoint whose record is corrupt is listed as such
    (``checkpoints show ID`` says what is wrong), not a reason to list nothing."""
    try:
        record = checkpoint.record
    except BankError:
        return {"id": checkpoint.id, "plan": None, "status": CORRUPT, "created_at": "",
                "owner": "", "verified": ""}
    return {"id": checkpoint.id, "plan": record.get("plan_name"), "status": checkpoint.status,
            "created_at": checkpoint.created_at[:19].replace("T", " "), "owner": checkpoint.owner,
            "verified": verified(record.get("verification"))}


def verified(entry: dict[str, Any] | None) -> str:
    """How the last verify went, in a few words: ``ok 2024-...``, ``FAILED
    2024-... (3 problems)`` or ``never``."""
    if not entry:
        return "never"
    when = str(entry.get("at", ""))[:19].replace("T", " ")
    if entry.get("ok"):
        return f"ok {when}"
    return f"FAILED {when} ({entry.get('problems', 0)} problem(s))"


def _show(checkpoint: Checkpoint) -> None:
    record = checkpoint.record
    print(f"checkpoint {checkpoint.id}")
    for field in ("plan_name", "status", "status_reason", "next_steps", "created_at",
                  "updated_at", "owner", "dag_fingerprint"):
        if record.get(field) is not None:
            print(f"  {field:<16} {record[field]}")
    if record.get("copied_from"):
        print(f"  {'copied_from':<16} {record['copied_from']}")
    check = record.get("verification")
    print(f"  {'verified':<16} {verified(check)}")
    if check and not check.get("ok") and check.get("summary"):
        print(f"  {'verify_problem':<16} {check['summary']}")
    lease = checkpoint.lease
    if lease is not None:
        print(f"  {'busy':<16} {lease.describe()}")
    if record.get("status") in (PROTECTING, ERROR) and not record.get("next_steps"):
        print(f"  {'next_steps':<16} " + ("if its operation died: " if lease else "")
              + operations.next_steps(checkpoint.id))
    print_statuses(checkpoint.resources)
    runs = checkpoint.list_runs()
    if runs:
        print("runs:")
        for run in runs:
            print(f"  {run.id}  {run.operation:<8} {run.status:<8} {run.owner}")
            # What the run's hooks reported (Karbor's update_resource_status).
            for key, update in sorted(run.status_updates.items()):
                why = f"  ({update['reason']})" if update.get("reason") else ""
                print(f"      {key}  {update['status']}{why}")


def _show_saved_info(checkpoint: Checkpoint, resource: str, *, as_json: bool) -> None:
    """``checkpoints show ID --resource TYPE#ID``: the resource's saved info."""
    saved = saved_info(checkpoint, resource)
    if as_json:
        print_json(results.saved_info_result(checkpoint, saved), sort_keys=False)
        return
    print(f"{saved.resource.key} in checkpoint {checkpoint.id} (plugin {saved.plugin})")
    if saved.info is None:
        print("  no saved info: the plugin keeps none it describes")
        return
    print(json.dumps(saved.info, indent=2, sort_keys=True, default=str))
