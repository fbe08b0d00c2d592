"""Which bank a command works on, said the same way everywhere.

A command that reads checkpoints takes its bank from ``--bank``, else from
the ``bank:`` of the plan given with ``--plan``, else from the environment,
the config file or the default (:func:`protectflow.cli.config.resolve_settings`),
and refuses a bank that is not there (exit code 2) rather than show an
empty one. Checkpoint ids may be given by a unique prefix. Every hint the
commands print names the bank it was given, so that following it works.
"""

from __future__ import annotations

import argparse
import os
import shlex

from protectflow.bank import Bank, CheckpointStore, open_existing_bank
from protectflow.cli.config import Settings
from protectflow.cli.options import settings
from protectflow.compiler import Plan, load_plan
from protectflow.errors import BankNotFoundError, CheckpointNotFoundError

__all__ = ["command", "plan_file", "read_store", "resolve_checkpoint"]


def plan_file(value: str | None) -> Plan | None:
    """The plan ``--plan`` names when it is a file; None for no ``--plan``
    or a plan's name.

    Raises
    ------
    PlanError
        When the file is not a valid plan.
    """
    if value is None or not os.path.isfile(value):
        return None
    return load_plan(value)


def read_store(args: argparse.Namespace, *, plan: Plan | None = None) -> CheckpointStore:
    """The checkpoints of the bank this reading command names (see the module);
    ``plan``: the ``--plan`` file, if the command read it already.

    Raises
    ------
    BankError
        For a malformed bank URL, or no bank there.
    MissingDependencyError
        When the bank's file system needs a package that is not installed.
    """
    if plan is None:
        plan = plan_file(getattr(args, "plan", None))
    chosen = settings(args, plan.bank if plan is not None else None)
    try:
        return CheckpointStore(open_existing_bank(chosen.bank,
                                                  password_file=chosen.password_file))
    except BankNotFoundError as err:
        raise BankNotFoundError(f"{err}{_plan_hint(args, chosen)}") from err


def resolve_checkpoint(args: argparse.Namespace, *, plan: Plan | None = None) -> CheckpointStore:
    """:func:`read_store` (``plan`` as its), and ``args.checkpoint`` (an id or
    its unique prefix) replaced by the whole id.

    Raises
    ------
    BankError
        As :func:`read_store`; for an ambiguous prefix (listing the ids it
        starts) or an unknown id (suggesting close ones).
    """
    store = read_store(args, plan=plan)
    try:
        args.checkpoint = store.resolve(args.checkpoint)
    except CheckpointNotFoundError as err:
        raise CheckpointNotFoundError(f"{err}{_plan_hint(args, settings(args))}") from err
    return store


def _plan_hint(args: argparse.Namespace, chosen: Settings) -> str:
    """Where else the checkpoint may be, when neither ``--bank`` nor ``--plan``
    chose the bank: a plan that names its own bank keeps its checkpoints
    there (the exact command to give it, or the bank; empty otherwise)."""
    if chosen.origins["bank"] in ("flag", "plan") or getattr(args, "plan", None):
        return ""
    words = [w for w in (args.command, getattr(args, "action", None)) if w]
    given = getattr(args, "checkpoint", None)
    line = shlex.join(["protectflow", *words, *([given] if given else []), "--plan", "PLAN"])
    return (f"\nthe bank came from {_origin(chosen)}; a checkpoint of a plan that names its "
            f"own bank (`bank:`) is in that bank: `{line}` (or `--bank BANK`)")


def _origin(chosen: Settings) -> str:
    origin = chosen.origins["bank"]
    return {"default": "the default", "PROTECTFLOW_BANK": "$PROTECTFLOW_BANK"}.get(origin, origin)


def command(*words: str, bank: Bank | str) -> str:
    """A ``protectflow`` command line naming ``bank``, quoted for a shell."""
    url = bank.url if isinstance(bank, Bank) else bank
    return shlex.join(["protectflow", *words, "--bank", url])
