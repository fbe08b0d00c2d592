"""What some tests need beyond the test extra, and skips that say how to get
it, in the words of README.md's "Run the tests"."""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["DOT", "TEST_EXTRA", "missing_root", "missing_tool", "root", "tool"]

#: Why the drawing tests skip.
DOT = "Graphviz's `dot` is not on PATH: install Graphviz (apt-get install graphviz)"
#: Why a test skips that runs the installed command or a test extra's package.
TEST_EXTRA = "is not installed: install the test extra (pip install -e '.[test]')"


def missing_tool(command: str, package: str) -> str:
    """Why a test skips without ``command``, and the package that brings it."""
    if command == "dot":
        return DOT
    return f"`{command}` is not on PATH: install {package} (apt-get install {package})"


def tool(command: str, package: str) -> pytest.MarkDecorator:
    """Skip unless ``command`` is on PATH."""
    return pytest.mark.skipif(shutil.which(command) is None,
                              reason=missing_tool(command, package))


def missing_root(what: str) -> str:
    """Why a test skips when not run as root: ``what`` needs root."""
    return f"{what} needs root: run the tests as root"


def root(what: str) -> pytest.MarkDecorator:
    """Skip unless the tests run as root."""
    return pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                              reason=missing_root(what))
