"""``protectflow checkpoints list | show | gc | repair | reindex``: what a bank
holds; ``show ID --resource TYPE#ID`` what a checkpoint keeps about one resource.

The bank is found as every reading command finds it (:mod:`.banks`): a bank
that is not there is an error, not an empty listing; ``--plan`` takes a
plan's name (a filter) or a plan file (its bank, and its name as the filter).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from protectflow import operations
from protectflow.bank import Checkpoint, CheckpointStore
from protectflow.bank.catalog.record import Verification
from protectflow.cli import results
from protectflow.cli.banks import command, plan_file, read_store, resolve_checkpoint
from protectflow.cli.options import Subparsers, add_bank_args, count
from protectflow.cli.outcome import stats_line
from protectflow.cli.output import print_json, print_statuses, stdout_console
from protectflow.errors import BankError
from protectflow.operations.lease import default_owner
from protectflow.operations.outcomes import total_stats
from protectflow.plugins.queries import saved_info
from protectflow.report.stats import human_size
from protectflow.states import ERROR, PROTECTING

__all__ = ["add_parsers"]

#: The columns of a listing, in order.
COLUMNS = ("id", "plan", "status", "size", "created_at", "owner", "verification", "tags")
#: What a size or stats cell says when the plugins report none.
NO_STATS = "—"
#: The page size of a listing.
PAGE = 20


def add_parsers(sub: Subparsers) -> None:
    """Add ``checkpoints`` and its actions to ``sub``."""
    p = sub.add_parser("checkpoints", help="list, show or clean up checkpoints")
    add_bank_args(p)
    csub = p.add_subparsers(dest="action", metavar="ACTION")
    c = csub.add_parser("list", help="newest first, a page at a time")
    c.add_argument("--plan", help="only this plan's checkpoints: its name, or its file (whose "
                   "bank is then listed)")
    c.add_argument("--limit", type=count(1), default=PAGE, metavar="N",
                   help=f"checkpoints per page (default {PAGE})")
    c.add_argument("--all", action="store_true", help="every checkpoint, in one page")
    c.add_argument("--marker", help="the next_marker of the previous page")
    c.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG[,TAG]",
                   help="only checkpoints with this tag; T1,T2: with both; repeated: with "
                   "any of them (as restic's --tag)")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("show", help="a checkpoint's record and per-resource status")
    c.add_argument("checkpoint", metavar="ID", help="a checkpoint id, or its first characters")
    c.add_argument("--plan", metavar="PLAN", help="a plan file: its bank is the checkpoint's")
    c.add_argument("--resource", metavar="TYPE#ID",
                   help="print what the checkpoint keeps about this resource (its saved info)")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("tag", help="add or remove a checkpoint's tags")
    c.add_argument("checkpoint", metavar="ID", help="a checkpoint id, or its first characters")
    c.add_argument("--plan", metavar="PLAN", help="a plan file: its bank is the checkpoint's")
    c.add_argument("--add", action="append", default=[], metavar="TAG",
                   help="add this tag (repeat for more)")
    c.add_argument("--remove", action="append", default=[], metavar="TAG",
                   help="remove this tag (repeat for more)")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("gc", help="resolve checkpoints whose operation died")
    c.add_argument("--plan", metavar="PLAN", help="a plan file: clean up its bank")
    c.add_argument("--delete", action="store_true",
                   help="remove them, and the data only they use, instead of marking error")
    c = csub.add_parser("repair", help="re-create the chunk refs a checkpoint's manifests "
                        "call for (those verify reports missing)")
    c.add_argument("checkpoint", metavar="ID", help="a checkpoint id, or its first characters")
    c.add_argument("--plan", metavar="PLAN", help="a plan file: its bank is the checkpoint's")
    c = csub.add_parser("reindex", help="rebuild the checkpoint index from the records")
    c.add_argument("--plan", metavar="PLAN", help="a plan file: reindex its bank")
    # `checkpoints list --bank X` as well as `checkpoints --bank X list`
    for c in csub.choices.values():
        add_bank_args(c, suppress=True)
    p.set_defaults(func=checkpoints_command, action=None)


def checkpoints_command(args: argparse.Namespace) -> int:
    """``protectflow checkpoints [list | show ID | gc]`` (list by default)."""
    if args.action == "tag":
        return _tag(args)
    if args.action == "show":
        store = resolve_checkpoint(args)
        checkpoint = store.get(args.checkpoint)
        if args.resource is not None:
            _show_saved_info(checkpoint, args.resource, as_json=args.json)
        elif args.json:
            print_json(results.checkpoint_show(checkpoint), sort_keys=False)
        else:
            _show(checkpoint)
        return 0
    store = read_store(args)
    if args.action == "gc":
        done = operations.gc(store, delete=args.delete)
        verb = "removed" if args.delete else "resolved"
        print(f"{len(done.changed)} checkpoint(s) in {store.bank.url} {verb}"
              + "".join(f"\n  {c}" for c in done.changed))
        print(f"{done.freed_chunks} chunk(s) freed, {len(done.corrupt_leases)} corrupt "
              f"lease(s) and {done.temp_files} stale temporary file(s) removed")
        _say_stray(done.stray_index)
        return 0
    if args.action == "repair":
        fixed = operations.repair(store, store.resolve(args.checkpoint))
        print(f"checkpoint {fixed.checkpoint}: {len(fixed.refs_made)} ref(s) re-created")
        for problem in fixed.problems:
            print(f"  problem: {problem}")
        return 0 if fixed.ok else 1
    if args.action == "reindex":
        rebuilt = operations.reindex(store)
        print(f"{rebuilt.written} index entr(ies) written in {store.bank.url}")
        _say_stray(rebuilt.dropped)
        return 0
    return _list(store, args)


def _say_stray(keys: tuple[str, ...]) -> None:
    """Name what was removed from the index as naming no checkpoint."""
    if keys:
        print(f"{len(keys)} index entr(ies) removed: they named no checkpoint"
              + "".join(f"\n  {k!a}" for k in keys))


def _list(store: CheckpointStore, args: argparse.Namespace) -> int:
    # Without an action (`checkpoints`), list's own options are not set.
    given = getattr(args, "plan", None)
    plan = plan_file(given)
    name = plan.name if plan is not None else given
    limit = None if getattr(args, "all", False) else getattr(args, "limit", PAGE)
    tags = getattr(args, "tags", [])
    page = results.checkpoint_page(store, plan=name, limit=limit,
                                   marker=getattr(args, "marker", None), tags=tags)
    if getattr(args, "json", False):
        print_json(page, sort_keys=False)
        return 0
    table = Table(title=f"checkpoints in {store.bank.url}" + (f" of {name}" if name else ""))
    table.add_column("id", no_wrap=True, min_width=32)
    for column in ("plan", "status", "size", "created_at (UTC)", "owner", "verified", "tags"):
        table.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for row in page["checkpoints"]:
        table.add_row(*(_cell(row, c) for c in COLUMNS))
    stdout_console().print(table)
    if page["next_marker"] is not None:
        words = ["checkpoints", "list", *(["--plan", given] if given else []),
                 *(w for t in tags for w in ("--tag", t)),
                 *(["--limit", str(limit)] if limit != PAGE else []),
                 "--marker", page["next_marker"]]
        print(f"next page: {command(*words, bank=store.bank)}")
    return 0


def _cell(row: dict[str, Any], column: str) -> str:
    value = row[column]
    if column == "size":  # a dash: its plugins report no stats
        return NO_STATS if value is None else f"{human_size(value)} ({row['files']} files)"
    if column == "created_at" and value:
        return str(value)[:19].replace("T", " ")
    if column == "tags":
        return ",".join(value)
    if column == "verification":  # the row's is a Verification's JSON (results._row)
        check = None if value is None else Verification.from_json(value, BankError)
        return verified(check) if row.get("created_at") else ""
    return "" if value is None else str(value)


def verified(check: Verification | None) -> str:
    """How the last verify went, in a few words: ``ok 2024-...``, ``FAILED
    2024-... (3 problems)`` or ``never``."""
    if check is None:
        return "never"
    when = check.at[:19].replace("T", " ")
    if check.ok:
        return f"ok {when}"
    return f"FAILED {when} ({check.problems} problem(s))"


def _show(checkpoint: Checkpoint) -> None:
    record = checkpoint.record
    print(f"checkpoint {checkpoint.id}, in the bank {checkpoint.bank.url}")
    for field in ("plan_name", "status", "status_reason", "next_steps", "created_at",
                  "updated_at", "owner", "dag_fingerprint"):
        if getattr(record, field) is not None:
            print(f"  {field:<16} {getattr(record, field)}")
    if record.tags:
        print(f"  {'tags':<16} {', '.join(record.tags)}")
    copied = record.copied_from
    if copied is not None:
        print(f"  {'copied_from':<16} bank {copied.bank}, checkpoint {copied.checkpoint}")
    check = record.verification
    print(f"  {'verified':<16} {verified(check)}")
    if check is not None and not check.ok and check.summary:
        print(f"  {'verify_problem':<16} {check.summary}")
    lease = checkpoint.lease
    if lease is not None:
        print(f"  {'busy':<16} {lease.describe()}")
    if record.status in (PROTECTING, ERROR) and not record.next_steps:
        print(f"  {'next_steps':<16} " + ("if its operation died: " if lease else "")
              + operations.next_steps(checkpoint.id, checkpoint.bank.url))
    resources = checkpoint.resources
    total = total_stats(resources)
    if total is not None:
        print(f"  {'size':<16} {human_size(total.size)} in {total.files} files")
        print(f"  {'protect':<16} {stats_line(total)}")
    else:
        print(f"  {'size':<16} {NO_STATS} (its plugins report no stats)")
    print_statuses(resources)
    if total is not None:
        for key, status in resources.items():
            line = NO_STATS if status.stats is None else stats_line(status.stats)
            print(f"    {key}: {line}")
    runs = checkpoint.list_runs()
    if runs:
        print("runs:")
        for run in runs:
            print(f"  {run.id}  {run.operation:<8} {run.status:<8} {run.owner}")
            # What the run's hooks reported (Karbor's update_resource_status).
            for key, update in sorted(run.status_updates.items()):
                why = f"  ({update.reason})" if update.reason else ""
                print(f"      {key}  {update.status}{why}")


def _tag(args: argparse.Namespace) -> int:
    """``checkpoints tag ID --add T --remove T``."""
    if not args.add and not args.remove:
        raise BankError("checkpoints tag: give --add TAG or --remove TAG (or both)")
    store = resolve_checkpoint(args)
    checkpoint = store.get(args.checkpoint)
    tags = checkpoint.retag(default_owner(), add=args.add, remove=args.remove)
    if args.json:
        print_json({"format": "protectflow.tags", "version": 1, "bank": store.bank.url,
                    "checkpoint": checkpoint.id, "tags": list(tags)}, sort_keys=False)
    else:
        print(f"checkpoint {checkpoint.id}: tags {', '.join(tags) or '(none)'}")
    return 0


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
    print(json.dumps(results.iso_times(saved.info), indent=2, sort_keys=True, default=str))
