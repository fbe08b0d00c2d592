"""``protectflow completion SHELL``: the shell code that completes the
command's arguments (:mod:`protectflow.cli.completion`, from argcomplete)."""

from __future__ import annotations

import argparse

from protectflow.cli.completion import SHELLS, completion_script
from protectflow.cli.options import Subparsers

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers) -> None:
    """Add ``completion`` to ``sub``."""
    p = sub.add_parser(
        "completion", help="print the shell code that completes protectflow's arguments",
        description="bash: source <(protectflow completion bash); zsh: the same in ~/.zshrc; "
        "fish: protectflow completion fish > ~/.config/fish/completions/protectflow.fish")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(func=completion_command)


def completion_command(args: argparse.Namespace) -> int:
    """``protectflow completion SHELL``."""
    print(completion_script(args.shell), end="")
    return 0
