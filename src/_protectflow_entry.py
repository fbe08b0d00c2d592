"""The ``protectflow`` command's entry point: :func:`protectflow.cli.main`,
with a Ctrl-C during its import (a second or so of loading the command and
its dependencies) ending in 130 and one line, not a traceback.

A module of its own beside the package, not in it: importing anything of
``protectflow`` runs the package's ``__init__``, which is itself part of
what a Ctrl-C at start-up may interrupt. It imports nothing but the
standard library before that.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["main"]

#: The exit code of an interrupted command (as protectflow.cli.outcome's).
_INTERRUPTED = 130


def main() -> int:
    """Import the command line and run it; returns the exit code."""
    try:
        # Imported by name, here and not at the top: the import itself is
        # what a Ctrl-C may interrupt, and this module must stay light.
        cli = importlib.import_module("protectflow.cli")
    except KeyboardInterrupt:
        print("protectflow: interrupted", file=sys.stderr)
        return _INTERRUPTED
    code: int = cli.main()
    return code
