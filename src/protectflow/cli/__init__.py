"""The ``protectflow`` command: a thin shell over the library.

Each command group lives in a module of its own (:mod:`.graph`: compile,
validate, plugins; :mod:`.run`; :mod:`.operations`: protect, restore, verify,
copy, delete, resume; :mod:`.checkpoints`; :mod:`.report`; :mod:`.protectables`; :mod:`.key`;
:mod:`.shell`: completion; :mod:`.manpage`: man), and each command is a call into the library's
public API.

Exit codes, the same on every command and executor:

- 0: success (and ``protectflow`` alone, which lists the commands);
- 1: an operation ran and failed (or Graphviz could not draw);
- 2: bad input -- a plan, a DAG file, a parameter, an option, a bank that is
  not there, a preflight problem -- and nothing was written;
- 130: interrupted by Ctrl-C, SIGTERM or SIGHUP (the checkpoint and the
  command that resumes it are printed);
- 141: the reader of the output went away (``| head``), as for a command
  killed by SIGPIPE; nothing else is printed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from protectflow import __version__
from protectflow.cli import (
    checkpoints,
    completion,
    graph,
    inside,
    key,
    manpage,
    operations,
    protectables,
    report,
    retention,
    run,
    scheduler,
    shell,
)
from protectflow.cli.config import load_config
from protectflow.cli.outcome import INTERRUPTED, exit_code, interrupted_error
from protectflow.errors import OperationInterrupted, ProtectflowError, ProtectflowWarning
from protectflow.signals import terminate_as_interrupt

__all__ = ["build_parser", "main"]

#: The exit code after the reader of stdout went away (128 + SIGPIPE).
CLOSED_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors look like every other error:
    ``protectflow: error: ...`` first, then the command's usage (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"protectflow: error: {_did_you_mean(message)}\n{self.format_usage()}"
                     f"`{self.prog} -h` tells more\n")


def _did_you_mean(message: str) -> str:
    """argparse's ``invalid choice`` message, with the choices closest to
    what was typed (``protectflow restor``: did you mean 'restore'?)."""
    found = re.match(r"argument [^:]+: invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if found is None:
        return message
    choices = re.findall(r"'([^']*)'", found.group(2))
    close = difflib.get_close_matches(found.group(1), choices, n=2, cutoff=0.6)
    return f"{message}; did you mean {' or '.join(repr(c) for c in close)}?" if close else message


def _command_parser(parser: argparse.ArgumentParser,
                    args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command ``args`` ran (``checkpoints show``...): the
    one whose usage an option it does not know is shown with."""
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser


def _add_verbosity(p: argparse.ArgumentParser, *, top: bool) -> None:
    """``-q`` and ``-v``: on the top parser with their defaults, on each
    command without (so that ``protectflow -v protect`` and ``protectflow
    protect -v`` both count)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true",
                       default=False if top else argparse.SUPPRESS,
                       help="print nothing but errors (no progress, no summary)")
    group.add_argument("-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS,
                       help="print more: every resource's status")


def _every_parser(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser``'s commands, and their actions, depth first."""
    found = []
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_every_parser(child)]
    return found


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = _Parser(
        prog="protectflow",
        description="Protect, restore, verify, copy and delete a graph of resources.",
        epilog="exit codes: 0 success, 1 the operation failed, 2 bad input (nothing "
        "written), 130 interrupted. `protectflow COMMAND -h` tells more.",
    )
    parser.add_argument("--version", action="version", version=f"protectflow {__version__}")
    _add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (graph, run, operations, checkpoints, inside, retention, scheduler, report,
                  protectables, key, shell, manpage):
        group.add_parsers(sub)
    for child in _every_parser(parser):
        _add_verbosity(child, top=False)
    completion.add_completers(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module).

    A Ctrl-C at any moment -- while the parser is built and the plugins'
    entry points load, as much as during a command -- ends it with 130 and
    one line, never a traceback.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:  # outside the command's own handling: start-up, parsing
        print("protectflow: interrupted", file=sys.stderr)
        return INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    started = time.monotonic()  # the summaries give the whole command's wall time
    parser = build_parser()
    completion.answer(parser)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said with the usage of the command given, not the top level's
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.started = started
    args.parser = parser  # `protectflow man` writes the page of the whole parser
    if args.command is None:
        parser.print_help()  # the command list: asking for nothing is asking what there is
        return 0
    try:
        args.config = load_config()
        with terminate_as_interrupt(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        return _closed_pipe()
    except ProtectflowError as err:
        print(f"protectflow: error: {err}", file=sys.stderr)
        return exit_code(err)
    except OperationInterrupted as err:
        return interrupted_error(args, err)
    except KeyboardInterrupt:
        print("protectflow: interrupted", file=sys.stderr)
        return INTERRUPTED
    return code


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: TextIO | None = None, line: str | None = None,
                  **_: Any) -> None:
    """protectflow's own warnings as one line on stderr; others as Python shows them."""
    if issubclass(category, ProtectflowWarning):
        print(f"protectflow: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _closed_pipe() -> int:
    """The reader of stdout went away: stop quietly. stdout now points at
    /dev/null, so that the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return CLOSED_PIPE
