"""``protectflow scheduler PLAN...`` and ``protectflow scheduler status``.

``scheduler PLAN...`` is a foreground process for systemd or a container:
it runs the plans' ``schedules:`` against their bank until it is stopped,
printing one line per run. Exit codes, for a service manager:

- 0: stopped by SIGTERM (or SIGHUP): idle, at once; during a run, after
  interrupting it as Ctrl-C does (the run is logged ``interrupted``, its
  checkpoint left resumable, and it is due again at the next start);
- 2: bad input -- a plan that is not valid, has no schedule, schedules a
  forget without ``retention:``, or plans on different banks; restarting
  will not help (systemd: ``RestartPreventExitStatus=2``);
- 75 (``EX_TEMPFAIL``): another scheduler runs this bank's schedules; try
  again later (``Restart=on-failure`` makes this one a standby that takes
  over when the other's lease ends);
- 1: the scheduler itself failed (the bank refused its log, or its lease was
  taken over);
- 130: Ctrl-C.

``scheduler status`` lists the runs the bank's log holds, newest first,
and who holds the scheduler lease.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.catalog.lease import LeaseKeeper
from protectflow.cli.banks import read_store
from protectflow.cli.options import Subparsers, add_bank_args, bank_from_args, count, settings
from protectflow.cli.output import print_json
from protectflow.compiler import load_plan
from protectflow.errors import PlanError, ProtectflowError, SchedulerBusyError, Terminated
from protectflow.scheduler import RunLog, Scheduler
from protectflow.scheduler.log import LEASE
from protectflow.signals import DEFAULT_SIGNALS

__all__ = ["BUSY", "add_parsers"]

#: The exit code when another scheduler holds the bank (sysexits' EX_TEMPFAIL).
BUSY = 75
#: The exit code of a scheduler that failed.
FAILED = 1


def add_parsers(sub: Subparsers) -> None:
    """Add ``scheduler`` to ``sub``."""
    p = sub.add_parser(
        "scheduler", help="run the plans' schedules in the foreground (`scheduler status`: "
        "the runs so far)",
        description="`protectflow scheduler PLAN...` runs the schedules: of the plans until "
        "SIGTERM; `protectflow scheduler status` lists the runs. Exit codes: 0 stopped by "
        "SIGTERM, 2 bad input, 75 another scheduler holds the bank, 1 the scheduler failed.")
    p.add_argument("plans", nargs="+", metavar="PLAN",
                   help="plan files with schedules: (all on one bank); or `status`")
    add_bank_args(p)
    p.add_argument("--limit", type=count(1), default=20, metavar="N",
                   help="status: the newest N runs (default 20)")
    p.add_argument("--json", action="store_true", help="status: as JSON")
    p.set_defaults(func=scheduler_command)


def scheduler_command(args: argparse.Namespace) -> int:
    """``protectflow scheduler PLAN...`` or ``protectflow scheduler status``."""
    if args.plans == ["status"] and not os.path.isfile("status"):
        return _status(read_store(args), args)
    plans = [load_plan(path) for path in args.plans]
    banks = {plan.bank for plan in plans if plan.bank}
    if len(banks) > 1 and getattr(args, "bank", None) is None:
        raise PlanError("the plans name different banks; run one scheduler per bank:",
                        sorted(str(b) for b in banks))
    store = CheckpointStore(bank_from_args(args, settings(args, next(iter(banks), None)).bank))
    scheduler = Scheduler(store, plans, say=_say)

    def terminate(signum: int, _frame: FrameType | None) -> None:
        # Stop the loop, and interrupt what runs as Ctrl-C does: an operation's
        # run loop may take the interrupt and end cancelled, the stop remains.
        scheduler.stop.set()
        raise Terminated(signum)

    previous = {s: signal.signal(s, terminate) for s in DEFAULT_SIGNALS}
    try:
        scheduler.run()
    except SchedulerBusyError as err:
        print(f"protectflow: error: {err}", file=sys.stderr)
        return BUSY
    except ProtectflowError as err:  # the bank refused the log, the lease was lost
        print(f"protectflow: error: {err}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        if not scheduler.stop.is_set():
            raise  # Ctrl-C: 130, as every command
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if scheduler.stop.is_set():
        _say("stopped by a termination signal")
    return 0


def _say(line: str) -> None:
    print(f"protectflow scheduler: {line}", flush=True)


def _status(store: CheckpointStore, args: argparse.Namespace) -> int:
    log = RunLog(store.bank)
    runs = log.runs(limit=args.limit)
    holder = _holder(store.bank)
    if args.json:
        print_json({"format": "protectflow.scheduler", "version": 1, "bank": store.bank.url,
                    "scheduler": holder, "runs": [r.to_json() for r in runs],
                    "schedules": [s.to_json() for s in log.states()]}, sort_keys=False)
        return 0
    print(f"scheduler of {store.bank.url}: {holder or 'not running'}")
    for run in runs:
        when = run.started_at[:19].replace("T", " ")
        where = f" {run.checkpoint}" if run.checkpoint else ""
        why = f"  {run.message}" if run.message else ""
        print(f"  {when}  {run.plan:<16} {run.operation:<8} {run.status:<11}{where}{why}")
    if not runs:
        print("  no run yet")
    return 0


def _holder(bank: Bank) -> str | None:
    lease = LeaseKeeper(bank, LEASE, "the scheduler").current()
    return None if lease is None else lease.describe()
