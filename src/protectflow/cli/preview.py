"""``restore --dry-run`` and ``protect --dry-run``: what would be written or
read (:mod:`protectflow.operations.preview`), printed or as JSON; nothing is
written."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.cli.outcome import stats_line
from protectflow.cli.output import print_json
from protectflow.cli.results import VERSION
from protectflow.compiler import Plan
from protectflow.operations.preview import Preview, preview_protect, preview_restore
from protectflow.report.stats import human_size

__all__ = ["dry_run_protect", "dry_run_restore"]


def dry_run_restore(args: argparse.Namespace, store: CheckpointStore, checkpoint: Checkpoint,
                    parameters: Mapping[str, Mapping[str, Any]]) -> int:
    """Print what ``restore`` with these flags would write; 0."""
    found = preview_restore(checkpoint, parameters=parameters, resources=args.resources,
                            dependencies=args.dependencies)
    if args.json:
        _json("restore", checkpoint.id, store.bank.url, found)
        return 0
    print(f"dry run: the restore of checkpoint {checkpoint.id} would write (nothing is "
          "written):")
    for p in found:
        files = p.files
        where = f" into {p.destination}" if p.destination else ""
        print(f"  {p.resource}: {len(files)} file(s), "
              f"{human_size(sum(i.size or 0 for i in files))}{where}")
        if p.note:
            print(f"    {p.note}")
        if args.verbose:
            for item in p.items:
                print(f"    {item.path}")
    return 0


def dry_run_protect(args: argparse.Namespace, plan: Plan, bank: Bank | None,
                    parameters: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Print what ``protect`` would read; 0."""
    found = preview_protect(plan, bank=bank, parameters=parameters)
    if args.json:
        _json("protect", None, bank.url if bank is not None else None, found)
        return 0
    print(f"dry run: the protect of {plan.name} would read (nothing is written, no "
          "checkpoint made):")
    for p in found:
        if p.stats is None:
            print(f"  {p.resource}: — ({p.note})")
            continue
        print(f"  {p.resource}: {stats_line(p.stats).split(';')[0]}; would read "
              f"{human_size(p.stats.bytes_read)}")
    return 0


def _json(operation: str, checkpoint: str | None, bank: str | None,
          found: list[Preview]) -> None:
    print_json({"format": "protectflow.dry-run", "version": VERSION, "operation": operation,
                "checkpoint": checkpoint, "bank": bank,
                "resources": [p.to_json() for p in found]}, sort_keys=False)
