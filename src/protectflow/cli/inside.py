"""``protectflow ls``, ``find``, ``diff`` and ``stats``: what is inside
checkpoints, as restic's commands of those names show it (one call each into
:mod:`protectflow.operations.inside`).

- ``ls ID [TYPE#ID [PATH]]``: a checkpoint's resources and their items --
  files for a tree (``-l``: mode, size, mtime), tables and row counts for a
  database, the saved info of a plugin that lists nothing;
- ``find PATTERN...``: items whose name (or path, for a pattern with ``/``)
  matches, across checkpoints newest first (``--checkpoint``, ``--plan``);
- ``diff ID1 ID2``: ``+`` added, ``-`` removed, ``M`` changed items and
  resources, with sizes, and a totals line;
- ``stats [ID]``: a checkpoint's or the bank's size, as restored
  (``--mode restore-size``) or as stored after dedup and compression
  (``--mode raw-data``).

Each takes ``--json`` (one document on stdout) and the bank options of every
reading command.
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
import time
from datetime import datetime, timezone
from typing import Any

from protectflow.bank import CheckpointStore
from protectflow.cli.banks import plan_file, read_store, resolve_checkpoint
from protectflow.cli.options import Subparsers, add_bank_args
from protectflow.cli.output import print_json
from protectflow.cli.results import VERSION, iso_times
from protectflow.operations import inside
from protectflow.plugins.contents import INFO, Item
from protectflow.report.stats import human_size

__all__ = ["add_parsers"]

_PLAN_HELP = "a plan file (its bank is the checkpoint's) or, for find, a plan's name"


def add_parsers(sub: Subparsers) -> None:
    """Add ``ls``, ``find``, ``diff`` and ``stats`` to ``sub``."""
    p = sub.add_parser("ls", help="list what a checkpoint holds: its resources' files, "
                       "tables or saved info")
    p.add_argument("checkpoint", metavar="ID", help="a checkpoint id, or its first characters")
    p.add_argument("resource", metavar="TYPE#ID", nargs="?",
                   help="only this resource (default: every one)")
    p.add_argument("path", metavar="PATH", nargs="?",
                   help="only this path of the resource and what is under it")
    _common(p)
    p.add_argument("-l", "--long", action="store_true",
                   help="mode, size and modification time of each item")
    p.set_defaults(func=ls_command)

    p = sub.add_parser("find", help="find files (or tables) by name across checkpoints, "
                       "newest first")
    p.add_argument("patterns", metavar="PATTERN", nargs="+",
                   help="a glob: without '/' it matches a name at any depth, with '/' "
                   "the path from the resource's root")
    p.add_argument("--checkpoint", dest="checkpoints", metavar="ID", action="append",
                   default=[], help="only this checkpoint (repeatable)")
    _common(p, plan_help="only this plan's checkpoints: its name, or its file (whose bank "
            "is then searched)")
    p.add_argument("-l", "--long", action="store_true",
                   help="mode, size and modification time of each item")
    p.set_defaults(func=find_command)

    p = sub.add_parser("diff", help="what changed between two checkpoints: files and "
                       "resources added (+), removed (-), changed (M)")
    p.add_argument("checkpoint", metavar="ID1", help="the older checkpoint")
    p.add_argument("second", metavar="ID2", help="the newer checkpoint")
    _common(p)
    p.set_defaults(func=diff_command)

    p = sub.add_parser("stats", help="how much a checkpoint or the whole bank holds")
    p.add_argument("checkpoint", metavar="ID", nargs="?",
                   help="one checkpoint (default: every checkpoint of the bank)")
    p.add_argument("--mode", choices=inside.STATS_MODES, default=inside.RESTORE_SIZE,
                   help="restore-size (the default): the files and bytes a restore "
                   "writes; raw-data: the bytes stored in the bank, after dedup and "
                   "compression")
    _common(p)
    p.set_defaults(func=stats_command)


def _common(p: argparse.ArgumentParser, plan_help: str = _PLAN_HELP) -> None:
    add_bank_args(p)
    p.add_argument("--plan", metavar="PLAN", help=plan_help)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")


# -- ls --------------------------------------------------------------------------------
def ls_command(args: argparse.Namespace) -> int:
    """``protectflow ls ID [TYPE#ID [PATH]]``."""
    store = resolve_checkpoint(args)
    checkpoint = store.get(args.checkpoint)
    found = inside.listing(checkpoint, args.resource, args.path)
    if args.json:
        print_json({"format": "protectflow.ls", "version": VERSION, "bank": store.bank.url,
                    "checkpoint": checkpoint.id, "resources": [
                        {"resource": f.resource.key, "items": [_item_json(i) for i in f.items]}
                        for f in found]}, sort_keys=False)
        return 0
    record = checkpoint.record
    out = [f"checkpoint {checkpoint.id} of {record.plan_name}, {_when(record.created_at)}"]
    for entry in found:
        out.append(entry.resource.key)
        out += [f"  {line}" for item in entry.items for line in _lines(item, long=args.long)]
    sys.stdout.write("\n".join(out) + "\n")  # one write: 100,000 lines are many prints
    return 0


def _item_json(item: Item) -> dict[str, Any]:
    data = item.to_json()
    if item.mtime_ns is not None:
        data["mtime"] = _iso(item.mtime_ns)
    if "info" in data:
        data["info"] = iso_times(data["info"])
    return data


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat().replace("+00:00", "Z")


def _when(created_at: str | None) -> str:
    return (created_at or "?")[:19].replace("T", " ") + " UTC"


_TYPE_BITS = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK,
              "fifo": stat.S_IFIFO, "chr": stat.S_IFCHR, "blk": stat.S_IFBLK,
              "database": stat.S_IFREG}


def _mode(item: Item) -> str:
    if item.mode is None or item.type not in _TYPE_BITS:
        return "-" * 10
    return stat.filemode(_TYPE_BITS[item.type] | item.mode)


def _name(item: Item) -> str:
    name = item.path + ("/" if item.type == "dir" and item.path != "." else "")
    if item.type == "symlink" and item.target is not None:
        name += f" -> {item.target}"
    if item.type == "table":
        name += f" (table, {item.rows} rows)"
    return name


def _lines(item: Item, *, long: bool) -> list[str]:
    """How ``ls`` shows ``item``: its name, or with ``long`` its mode, size
    and mtime first; a plugin's saved info as indented JSON."""
    if item.type == INFO:
        if item.info is None:
            return ["(no saved info: its plugin lists nothing and describes nothing)"]
        text = json.dumps(iso_times(item.info), indent=2, sort_keys=True, default=str)
        return ["saved info:", *("  " + line for line in text.splitlines())]
    if not long:
        return [_name(item)]
    size = human_size(item.size) if item.size is not None else "-"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(
        item.mtime_ns // 1_000_000_000)) if item.mtime_ns is not None else "-"
    return [f"{_mode(item)} {size:>10}  {when:<23}  {_name(item)}"]


# -- find ------------------------------------------------------------------------------
def find_command(args: argparse.Namespace) -> int:
    """``protectflow find PATTERN...``."""
    store = read_store(args)
    given = plan_file(args.plan)  # a plan file: its bank, and its name as the filter
    plan = given.name if given is not None else args.plan
    skipped: list[str] = []
    found = list(inside.find(store, args.patterns, checkpoints=args.checkpoints, plan=plan,
                             skipped=skipped))
    if args.json:
        print_json({"format": "protectflow.find", "version": VERSION, "bank": store.bank.url,
                    "patterns": args.patterns, "found": [
                        {"checkpoint": f.checkpoint, "created_at": f.created_at,
                         "plan": f.plan, "resource": f.resource, **_item_json(f.item)}
                        for f in found], "skipped": skipped}, sort_keys=False)
        return 0
    shown = None
    for f in found:
        if f.checkpoint != shown:
            print(f"found in checkpoint {f.checkpoint} of {f.plan}, {_when(f.created_at)}")
            shown = f.checkpoint
        print(f"  {f.resource}  {_lines(f.item, long=args.long)[0]}")
    if not found:
        print(f"nothing matches {' or '.join(args.patterns)} in {store.bank.url}")
    for why in skipped:
        print(f"protectflow: note: skipped {why}")
    return 0


# -- diff ------------------------------------------------------------------------------
def diff_command(args: argparse.Namespace) -> int:
    """``protectflow diff ID1 ID2``."""
    store = resolve_checkpoint(args)
    first = store.get(args.checkpoint)
    second = store.get(store.resolve(args.second))
    result = inside.diff(first, second)
    if args.json:
        print_json(_diff_json(store, result), sort_keys=False)
        return 0
    print(f"comparing checkpoint {first.id} and {second.id}")
    for change in result.changes:
        what = "(the whole resource)" if change.path is None else change.path
        print(f"{change.kind}    {change.resource}  {what}{_sizes(change)}")
    print(_totals(result))
    return 0


def _sizes(change: inside.Change) -> str:
    old, new = change.old, change.new
    if change.path is None:
        return ""
    if change.kind == "M" and old is not None and new is not None and old.size != new.size:
        return f"  {human_size(old.size or 0)} -> {human_size(new.size or 0)}"
    item = new if new is not None else old
    if item is not None and item.size is not None:
        return f"  {human_size(item.size)}"
    return ""


def _totals(result: inside.Diff) -> str:
    resources = (f"; resources: {result.count('+', resources=True)} added, "
                 f"{result.count('-', resources=True)} removed"
                 if result.count("+", resources=True) or result.count("-", resources=True)
                 else "")
    return (f"Files: {result.count('+')} added, {result.count('-')} removed, "
            f"{result.count('M')} changed{resources}; added {human_size(result.bytes('+'))}, "
            f"removed {human_size(result.bytes('-'))}")


def _diff_json(store: CheckpointStore, result: inside.Diff) -> dict[str, Any]:
    return {
        "format": "protectflow.diff", "version": VERSION, "bank": store.bank.url,
        "first": result.first, "second": result.second,
        "changes": [{"kind": c.kind, "resource": c.resource, "path": c.path,
                     "old": None if c.old is None else _item_json(c.old),
                     "new": None if c.new is None else _item_json(c.new)}
                    for c in result.changes],
        "totals": {"added": result.count("+"), "removed": result.count("-"),
                   "changed": result.count("M"),
                   "resources_added": result.count("+", resources=True),
                   "resources_removed": result.count("-", resources=True),
                   "bytes_added": result.bytes("+"), "bytes_removed": result.bytes("-")},
    }


# -- stats -----------------------------------------------------------------------------
def stats_command(args: argparse.Namespace) -> int:
    """``protectflow stats [ID] [--mode restore-size|raw-data]``."""
    store = resolve_checkpoint(args) if args.checkpoint is not None else read_store(args)
    report = inside.stats(store, args.checkpoint, mode=args.mode)
    if args.json:
        print_json({"format": "protectflow.stats", "version": VERSION, "bank": store.bank.url,
                    "checkpoint": args.checkpoint, **report.to_json()}, sort_keys=False)
        return 0
    what = f"checkpoint {args.checkpoint}" if args.checkpoint else (
        f"{report.checkpoints} checkpoint(s)")
    print(f"stats of {what} in {store.bank.url}, mode {report.mode}")
    if report.mode == inside.RAW_DATA:
        print(f"  total size:        {human_size(report.size)} ({report.size} bytes)")
        print(f"  total chunks:      {report.chunks}")
    else:
        print(f"  total file count:  {report.files}")
        print(f"  total size:        {human_size(report.size)} ({report.size} bytes)")
        if report.unknown:
            print(f"  {report.unknown} resource(s) list no files (their plugins keep other "
                  "data): not counted")
    return 0

