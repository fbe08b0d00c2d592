"""The options the commands share: the executor and its limits, retries and
report files that every running command takes, the bank and where its
password comes from, and parameter files."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any, TypeAlias

import yaml

from protectflow.bank import Bank
from protectflow.errors import ExecutorError, PlanError
from protectflow.executors import Executor, get_executor

__all__ = ["BANK_HELP", "Subparsers", "add_bank_args", "add_executor_args", "bank_from_args",
           "executor_from_args", "load_parameters", "parse_limits"]

BANK_HELP = "the bank URL or folder"
PASSWORD_FILE_HELP = ("a file holding the bank's password (its first line); it comes before "
                      "$PROTECTFLOW_PASSWORD, and is needed only where the bank has no key "
                      "file on this machine")

# argparse names the type of add_subparsers()' result only privately; the
# command modules add their parsers to one.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_bank_args(p: argparse.ArgumentParser, bank_help: str = BANK_HELP, *,
                  suppress: bool = False) -> None:
    """``--bank`` and ``--password-file``; with ``suppress``, an option not
    given leaves the value a parent parser set (``checkpoints --bank X list``)."""
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--bank", default=default, help=bank_help)
    p.add_argument("--password-file", metavar="FILE", default=default, help=PASSWORD_FILE_HELP)


def bank_from_args(args: argparse.Namespace, url: str | os.PathLike[str] | None = None, *,
                   fsync: bool = True) -> Bank:
    """The bank ``url`` (by default ``--bank``; none: the default bank),
    unlocked with ``--password-file`` if given."""
    if url is None:
        url = args.bank
    return Bank(url, fsync=fsync, password_file=args.password_file)


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs hooks."""
    p.add_argument("--executor", default="threads", help="serial, threads or dask")
    p.add_argument("--workers", type=int, metavar="N", help="threads, or dask worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler")
    p.add_argument("--keep-going", action="store_true",
                   help="run every hook not downstream of a failed one")
    p.add_argument("--limit", action="append", default=[], metavar="TYPE=N",
                   help="at most N hooks at once of a resource type or pool (repeatable)")
    p.add_argument("--retries", type=int, metavar="N", help="retries per hook")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per hook attempt")
    p.add_argument("--report", metavar="FILE", help="write the run report (JSON) here")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace here")


def executor_from_args(args: argparse.Namespace) -> tuple[Executor, dict[str, Any]]:
    """The executor and the run options the executor flags ask for.

    Raises
    ------
    ExecutorError
        For an unknown executor, a bad ``--limit`` or ``--scheduler`` without dask.
    """
    executor_options: dict[str, Any] = {}
    if args.workers is not None:
        if args.workers < 1:
            raise ExecutorError(f"bad --workers {args.workers}: give a number >= 1")
        executor_options["workers"] = args.workers
    if args.scheduler is not None:
        if args.executor != "dask":
            raise ExecutorError("--scheduler needs --executor dask")
        executor_options["scheduler"] = args.scheduler
    executor = get_executor(args.executor, **executor_options)
    options: dict[str, Any] = {"keep_going": args.keep_going}
    for name in ("retries", "timeout"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.limit:
        options["limits"] = parse_limits(args.limit)
    return executor, options


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


def load_parameters(path: str | None) -> dict[str, dict[str, Any]]:
    """The parameters in a YAML or JSON file, keyed by TYPE or TYPE#ID; none
    without a file.

    Raises
    ------
    PlanError
        When the file cannot be read or is not such a mapping.
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise PlanError(f"cannot read parameters {path!r}: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise PlanError(f"parameters {path!r} must map TYPE or TYPE#ID to an object of "
                        "parameters, e.g. {'OS::Cinder::Volume': {'main_seconds': 1}}")
    return data
