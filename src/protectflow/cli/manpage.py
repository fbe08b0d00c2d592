"""``protectflow man``: the manual page, generated from the command's own
parser by argparse-manpage, so that it never disagrees with ``-h``.

The same page is kept as ``man/protectflow.1`` in the source tree and
installed with the package under ``share/man/man1`` (``man protectflow``
once the environment's ``share/man`` is on MANPATH, as a virtual
environment's is with ``man -M .venv/share/man protectflow``); a test
checks that the file is what ``protectflow man`` prints.
"""

from __future__ import annotations

import argparse
import functools

from argparse_manpage.manpage import Manpage

from protectflow import __version__
from protectflow.cli.options import Subparsers

__all__ = ["add_parsers", "manual_page"]

#: The width the page's usage lines are wrapped at, whatever the terminal's.
WIDTH = 80


def add_parsers(sub: Subparsers) -> None:
    """Add ``man`` to ``sub``."""
    p = sub.add_parser("man", help="print the manual page (roff): protectflow man | man -l -")
    p.set_defaults(func=man_command)


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _parsers(child)
    return found


def manual_page(parser: argparse.ArgumentParser) -> str:
    """The manual page of ``parser`` and its commands, in roff, the same on
    every machine (usage wrapped at :data:`WIDTH` columns, the version as
    its date)."""
    for each in _parsers(parser):
        each.formatter_class = functools.partial(argparse.HelpFormatter, width=WIDTH)
    page = Manpage(parser, _data={"date": __version__, "project_name": "protectflow",
                                  "version": __version__, "manual_title": "protectflow manual"})
    return str(page).rstrip("\n") + "\n"


def man_command(args: argparse.Namespace) -> int:
    """``protectflow man``."""
    print(manual_page(args.parser), end="")
    return 0
