"""The options the commands share: the executor and its limits, retries and
report files that every running command takes, the bank and where its
password comes from, parameter files, and where each setting comes from
(flag, plan, environment, config file: :func:`protectflow.cli.config.resolve_settings`).

Numbers are checked as they are parsed (``--workers 0`` is a usage error,
exit code 2), so every command refuses them the same way."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import attrs

from protectflow.bank import Bank
from protectflow.cli.config import Config, Settings, resolve_settings
from protectflow.compiler.documents import parse_document
from protectflow.dag import OPERATIONS
from protectflow.errors import ExecutorError, PlanError
from protectflow.executors import Executor, get_executor
from protectflow.executors.options import RunOptions
from protectflow.operations.prepared import RunSettings

__all__ = ["BANK_HELP", "Subparsers", "add_bank_args", "add_executor_args", "bank_from_args",
           "count", "executor_from_args", "load_parameters", "parse_limits", "seconds",
           "serial_workers", "settings"]

BANK_HELP = ("the bank: a folder, an fsspec URL or a [banks] name of the config file "
             "(default: $PROTECTFLOW_BANK, the config file's, then a folder in your data "
             "directory)")
PASSWORD_FILE_HELP = ("a file holding the bank's password (one trailing newline dropped; a "
                      "regular file of at most 4 KiB); it comes before "
                      "$PROTECTFLOW_PASSWORD, and is needed only where the bank has no key "
                      "file on this machine (default: after $PROTECTFLOW_PASSWORD, "
                      "$PROTECTFLOW_PASSWORD_FILE, then the config file's password_file)")

#: The bank's password itself (see ``PASSWORD_FILE_HELP`` for where it ranks).
PASSWORD_ENV = "PROTECTFLOW_PASSWORD"

# argparse names the type of add_subparsers()' result only privately; the
# command modules add their parsers to one.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}: give a whole "
                                             f"number >= {minimum}")
        return value
    parse.__name__ = f"whole number >= {minimum}"  # argparse names the type in its errors
    return parse


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds > 0")
    return value


def add_bank_args(p: argparse.ArgumentParser, bank_help: str = BANK_HELP, *,
                  suppress: bool = False) -> None:
    """``--bank`` and ``--password-file``; with ``suppress``, an option not
    given leaves the value a parent parser set (``checkpoints --bank X list``)."""
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--bank", default=default, help=bank_help)
    p.add_argument("--password-file", metavar="FILE", default=default, help=PASSWORD_FILE_HELP)


def bank_from_args(args: argparse.Namespace, url: str | os.PathLike[str] | None = None, *,
                   fsync: bool = True) -> Bank:
    """The bank ``url`` (by default the one the settings name: ``--bank``, the
    environment, the config file), unlocked with the password file the
    settings name.

    Raises
    ------
    BankError, ConfigError
        For a malformed bank URL or a bad setting.
    """
    chosen = settings(args)
    return Bank(url if url is not None else chosen.bank, fsync=fsync,
                password_file=chosen.password_file)


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs hooks."""
    p.add_argument("--executor", help="serial, threads or dask (default: $PROTECTFLOW_EXECUTOR, "
                   "the config file's, then threads)")
    p.add_argument("--workers", type=count(1), metavar="N",
                   help="threads, or dask worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running dask scheduler (implies --executor dask)")
    p.add_argument("--keep-going", action="store_true",
                   help="run every hook not downstream of a failed one")
    p.add_argument("--limit", action="append", default=[], metavar="TYPE=N",
                   help="at most N hooks at once of a resource type or pool (repeatable)")
    p.add_argument("--retries", type=count(0), metavar="N", help="retries per hook")
    p.add_argument("--timeout", type=seconds, metavar="S", help="seconds per hook attempt")
    p.add_argument("--report", metavar="FILE", help="write the run report (JSON) here")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace here")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON (see the README for its fields)")


def settings(args: argparse.Namespace, plan_bank: str | None = None) -> Settings:
    """The bank, executor and workers this command runs with: its flags, the
    plan's bank, the environment, the config file (``args.config``), the defaults.

    Raises
    ------
    ConfigError, BankError
        As :func:`protectflow.cli.config.resolve_settings`.
    """
    config: Config = getattr(args, "config", None) or Config()
    executor = getattr(args, "executor", None)
    if executor is None and getattr(args, "scheduler", None) is not None:
        executor = "dask"  # a scheduler address means dask
    chosen = resolve_settings(config, bank=getattr(args, "bank", None), plan_bank=plan_bank,
                              executor=executor, workers=getattr(args, "workers", None),
                              password_file=getattr(args, "password_file", None))
    if chosen.origins["password_file"] != "flag" and os.environ.get(PASSWORD_ENV):
        # The README's order: --password-file, then $PROTECTFLOW_PASSWORD, then
        # $PROTECTFLOW_PASSWORD_FILE (or the config file's): a bank given no
        # password file reads them in that order itself.
        chosen = attrs.evolve(chosen, password_file=None)
    return chosen


def executor_from_args(args: argparse.Namespace,
                       chosen: Settings | None = None) -> tuple[Executor, RunSettings]:
    """The executor and the run options the executor flags ask for.

    Raises
    ------
    ExecutorError
        For an unknown executor, a bad ``--limit`` or ``--scheduler`` with
        another executor than dask.
    """
    chosen = chosen or settings(args)
    executor_options: dict[str, Any] = {}
    workers = serial_workers(chosen, quiet=bool(getattr(args, "quiet", False)))
    if workers is not None:
        executor_options["workers"] = workers
    if args.scheduler is not None:
        if chosen.executor != "dask":
            raise ExecutorError(f"--scheduler is for the dask executor, not {chosen.executor}: "
                                "drop --executor, or give --executor dask")
        executor_options["scheduler"] = args.scheduler
    executor = get_executor(chosen.executor, **executor_options)
    run = RunOptions(keep_going=args.keep_going, retries=args.retries, timeout=args.timeout,
                     limits=parse_limits(args.limit) if args.limit else {})
    return executor, RunSettings(run)


def serial_workers(chosen: Settings, *, quiet: bool = False) -> int | None:
    """The workers to make the executor with. The serial executor runs one
    hook at a time, whichever way it was chosen: ``--workers`` with it is a
    usage error naming both; workers from the environment or the config file
    are meant for the other executors, and are ignored with a note.

    Raises
    ------
    ExecutorError
        For ``--workers`` with the serial executor.
    """
    if chosen.workers is None or chosen.executor != "serial":
        return chosen.workers
    executor = ("--executor serial" if chosen.origins["executor"] == "flag"
                else f"the serial executor (from {chosen.origins['executor']})")
    if chosen.origins["workers"] == "flag":
        raise ExecutorError(f"--workers {chosen.workers} conflicts with {executor}, which runs "
                            "one hook at a time: drop --workers, or give --executor threads")
    if not quiet:
        print(f"protectflow: note: workers = {chosen.workers} (from "
              f"{chosen.origins['workers']}) is ignored: {executor} runs one hook at a time",
              file=sys.stderr)
    return None


def parse_limits(items: Sequence[str]) -> dict[str, int]:
    """``TYPE_OR_POOL=N`` items as a mapping.

    Raises
    ------
    ExecutorError
        For an item that is not ``NAME=N`` with N >= 1.
    """
    limits: dict[str, int] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise ExecutorError(
                f"bad --limit {item!r}: give it as TYPE_OR_POOL=N with N >= 1, "
                "e.g. --limit OS::Cinder::Volume=2"
            )
        limits[name] = int(value)
    return limits


def load_parameters(path: str | None, operation: str | None = None
                    ) -> dict[str, dict[str, Any]]:
    """The parameters in a YAML or JSON file, keyed by TYPE or TYPE#ID; none
    without a file.

    A file may also give each operation its own, keyed by operation name
    (``restore: {TYPE: {...}}``, ``verify: {...}``): then ``operation``'s
    are returned (none if it has no section), so one file serves
    ``validate --operation all``.

    Raises
    ------
    PlanError
        When the file cannot be read, is malformed (duplicate keys, alias
        bombs, deep nesting: see :func:`parse_document`) or is not such a
        mapping.
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"cannot read parameters {path!r}: {err}") from err
    data = parse_document(text, path, what="parameters")
    if isinstance(data, dict) and data and set(data) <= set(OPERATIONS):
        _check_parameters(path, list(data.values()))
        section: dict[str, dict[str, Any]] = data.get(operation, {}) if operation else {}
        return section
    _check_parameters(path, [data])
    mapping: dict[str, dict[str, Any]] = data
    return mapping


def _check_parameters(path: str, mappings: list[Any]) -> None:
    for data in mappings:
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise PlanError(f"parameters {path!r} must map TYPE or TYPE#ID to an object of "
                            "parameters, e.g. {'OS::Cinder::Volume': {'main_seconds': 1}}, or "
                            "an operation (restore, verify...) to such a mapping")
