"""The manual page: generated from the parser, the copy in the source tree
up to date, installed with the package, and read by man (or groff)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.cli.manpage import manual_page
from tests import needs

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "man" / "protectflow.1"


def test_the_page_in_the_tree_is_the_one_the_parser_makes(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["man"]) == 0
    printed = capsys.readouterr().out
    assert printed == manual_page(cli.build_parser())
    assert PAGE.read_text(encoding="utf-8") == printed, (
        "man/protectflow.1 is out of date: protectflow man > man/protectflow.1")


def test_the_page_names_every_command_and_its_options() -> None:
    page = manual_page(cli.build_parser())
    assert page.startswith('.TH PROTECTFLOW "1" ')
    for command in ("protect", "restore", "checkpoints show", "report", "key change\\-password"):
        assert f".SH COMMAND \\fI\\,'protectflow {command}'\\/\\fR" in page, command
    assert "\\-\\-target" in page and "\\-\\-executor" in page


def test_pyproject_installs_the_page_under_share_man() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"share/man/man1" = ["man/protectflow.1"]' in text


@needs.tool("groff", "groff-base")
def test_man_renders_the_page() -> None:
    if shutil.which("man"):
        done = subprocess.run(["man", "-l", str(PAGE)], capture_output=True, text=True,
                              env={"MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80",
                                   "PATH": "/usr/bin:/bin"}, check=False)
    else:
        done = subprocess.run(["groff", "-man", "-Tutf8", str(PAGE)], capture_output=True,
                              text=True, check=False)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # justified: spaces vary
    assert "PROTECTFLOW(1)" in text and "protectflow restore" in text
    assert "--target DIR restore into this folder" in text
