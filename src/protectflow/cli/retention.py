"""``protectflow forget`` and ``protectflow prune``: retention as restic's.

``forget`` takes restic's rules (``--keep-last N``, ``--keep-daily N``...,
``--keep-within 1y2m``, ``--keep-tag T``) and Karbor's (``--max-backups N``,
``--retention-duration DAYS``) over each plan's own ``retention:``, and
applies them plan by plan (every plan of the bank, or those ``--plan``
names); ``--dry-run`` shows what would go and, for each checkpoint kept,
which rules keep it; ``--prune`` then frees what nothing left needs.
``prune`` alone does the latter. ``--purge-after 30d`` (or the config
file's ``purge_after``) removes the tombstones of checkpoints deleted
longer ago than that.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from protectflow.bank import CheckpointStore
from protectflow.cli.banks import plan_file, read_store
from protectflow.cli.options import Subparsers, add_bank_args, count
from protectflow.cli.output import print_json
from protectflow.operations.forget import ForgetReport, PlanForget, PruneReport, forget, prune
from protectflow.operations.lease import default_owner
from protectflow.retention import RetentionPolicy, parse_interval, parse_span
from protectflow.retention.durations import Span
from protectflow.retention.policy import tag_set

__all__ = ["add_parsers"]

_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_SPANS = ("within", "within_hourly", "within_daily", "within_weekly", "within_monthly",
          "within_yearly")


def _typed(parse: Any, what: str) -> Any:
    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    read.__name__ = what
    return read


def _days(text: str) -> Span:
    return Span(days=int(text)) if text.isdigit() and int(text) > 0 else parse_span(text)


def _purge_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--purge-after", type=_typed(parse_interval, "duration"),
                   metavar="DURATION",
                   help="remove the tombstones of checkpoints deleted longer ago than this "
                   "(30d, 12h; default: the config file's purge_after, else keep them)")


def add_parsers(sub: Subparsers) -> None:
    """Add ``forget`` and ``prune`` to ``sub``."""
    p = sub.add_parser("forget", help="remove the checkpoints a retention policy does not "
                       "keep (restic's --keep-* rules, Karbor's max_backups)")
    p.add_argument("--plan", dest="plans", action="append", default=[], metavar="PLAN",
                   help="only this plan: its name, or its file (its bank, and its "
                   "retention:); repeat for more (default: every plan of the bank)")
    rules = p.add_argument_group("rules (over the plan's own retention:)")
    for name in _COUNTS:
        rules.add_argument(f"--keep-{name}", dest=name, type=count(-1), default=0,
                           metavar="N", help="keep the newest N checkpoints" if name == "last"
                           else f"keep the newest checkpoint of each of the last N "
                           f"{_unit(name)} (-1: of every one)")
    for name in _SPANS:
        words = name.replace("_", "-")
        rules.add_argument(f"--keep-{words}", dest=name, type=_typed(parse_span, "span"),
                           metavar="SPAN", help="keep those newer than the newest less SPAN "
                           "(1y2m3d4h)" if name == "within" else
                           f"keep the newest checkpoint of each {_unit(name.split('_')[1])} "
                           "newer than the newest less SPAN")
    rules.add_argument("--keep-tag", dest="keep_tags", action="append", default=[],
                       type=_typed(tag_set, "tags"), metavar="TAG[,TAG]",
                       help="keep every checkpoint with this tag (T1,T2: with both)")
    rules.add_argument("--max-backups", type=count(1), metavar="N",
                       help="Karbor's: keep at most the newest N")
    rules.add_argument("--retention-duration", type=_typed(_days, "days"), metavar="DAYS",
                       help="Karbor's: keep only those younger than DAYS (or a span, 1y2m)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="show what would be removed, and why each kept one stays; "
                   "change nothing")
    p.add_argument("--prune", action="store_true",
                   help="then free the data no remaining checkpoint needs (as `prune`)")
    _purge_arg(p)
    p.add_argument("--json", action="store_true", help="the decision and what was done, as JSON")
    add_bank_args(p)
    p.set_defaults(func=forget_command)

    p = sub.add_parser("prune", help="free the data no checkpoint needs; finish failed "
                       "deletes; remove old tombstones")
    add_bank_args(p)
    p.add_argument("--plan", metavar="PLAN", help="a plan file: prune its bank")
    _purge_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=prune_command)


def _unit(name: str) -> str:
    return {"hourly": "hours", "daily": "days", "weekly": "weeks", "monthly": "months",
            "yearly": "years"}.get(name, name)


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    spans = {name: getattr(args, name) for name in _SPANS}
    return RetentionPolicy(**{name: getattr(args, name) for name in _COUNTS}, **spans,
                           keep_tags=tuple(args.keep_tags), max_backups=args.max_backups,
                           retention_duration=args.retention_duration)


def _purge_after(args: argparse.Namespace) -> float | None:
    if args.purge_after is not None:
        return float(args.purge_after)
    config = getattr(args, "config", None)
    text = getattr(config, "purge_after", None)
    return None if text is None else parse_interval(text)


def forget_command(args: argparse.Namespace) -> int:
    """``protectflow forget``."""
    files = {name: plan_file(name) for name in args.plans}
    args.plan = next((n for n, f in files.items() if f is not None), None)
    store = read_store(args)
    names = [f.name if f is not None else n for n, f in files.items()] or None
    own = {f.name: f.retention for f in files.values() if f is not None and f.retention}
    report = forget(store, _policy(args), plans=names, plan_policies=own,
                    dry_run=args.dry_run, prune_after=True if args.prune else None,
                    purge_after=_purge_after(args), owner=default_owner())
    if args.json:
        print_json(_forget_json(report), sort_keys=False)
    elif not args.quiet:
        _print_forget(report, verbose=args.verbose)
    return 0 if report.ok else 1


def prune_command(args: argparse.Namespace) -> int:
    """``protectflow prune``."""
    store = read_store(args)
    report = prune(store, purge_after=_purge_after(args), owner=default_owner())
    if args.json:
        print_json({"format": "protectflow.prune", "version": 1, "bank": store.bank.url,
                    **_prune_json(report)}, sort_keys=False)
    elif not args.quiet:
        _print_prune(report, store)
    return 0


def _prune_json(report: PruneReport) -> dict[str, Any]:
    return {"freed_chunks": report.freed_chunks, "dropped_refs": report.dropped_refs,
            "finished_deletes": list(report.finished_deletes), "purged": list(report.purged),
            "resolved": list(report.resolved)}


def _plan_json(plan: PlanForget) -> dict[str, Any]:
    decision = plan.decision
    return {
        "plan": plan.plan, "policy": plan.policy.to_json(),
        "keep": [{"id": k.id, "created_at": plan.created[k.id], "reasons": list(k.reasons)}
                 for k in decision.keep],
        "remove": [{"id": i, "created_at": plan.created[i], "why": why}
                   for i, why in decision.remove],
        "untouched": list(decision.untouched),
        "removed": list(plan.removed),
        "failed": [{"id": i, "why": why} for i, why in plan.failed],
    }


def _forget_json(report: ForgetReport) -> dict[str, Any]:
    return {"format": "protectflow.forget", "version": 1, "bank": report.bank,
            "dry_run": report.dry_run, "plans": [_plan_json(p) for p in report.plans],
            "prune": None if report.prune is None else _prune_json(report.prune),
            "seconds": {"decide": round(report.decide_seconds, 3),
                        "delete": round(report.delete_seconds, 3),
                        "prune": round(report.prune_seconds, 3)}}


def _print_forget(report: ForgetReport, *, verbose: int) -> None:
    for plan in report.plans:
        decision = plan.decision
        print(f"plan {plan.plan}: {plan.policy.describe()}")
        print(f"keep {len(decision.keep)} checkpoint(s):")
        for kept in decision.keep:
            print(f"  {kept.id}  {plan.created[kept.id][:19].replace('T', ' ')}  "
                  f"{', '.join(kept.reasons)}")
        verb = "would remove" if report.dry_run else "remove"
        print(f"{verb} {len(decision.remove)} checkpoint(s):")
        for checkpoint_id, why in decision.remove:
            print(f"  {checkpoint_id}  {plan.created[checkpoint_id][:19].replace('T', ' ')}  "
                  f"{why}")
        if verbose and decision.untouched:
            print(f"left alone (in progress, deleted, or failed and newest): "
                  f"{', '.join(decision.untouched)}")
        for checkpoint_id, why in plan.failed:
            print(f"not removed: {checkpoint_id}: {why}", file=sys.stderr)
        print()
    if report.dry_run:
        print("dry run: nothing was removed")
    elif report.prune is not None:
        _print_prune(report.prune, None)


def _print_prune(report: PruneReport, store: CheckpointStore | None) -> None:
    where = f" in {store.bank.url}" if store is not None else ""
    print(f"pruned{where}: {report.freed_chunks} chunk(s) freed, {report.dropped_refs} "
          f"orphan ref(s) dropped, {len(report.finished_deletes)} failed delete(s) finished, "
          f"{len(report.purged)} tombstone(s) purged")



