"""Shell completion for the ``protectflow`` command, from argcomplete.

argcomplete completes from the command's own argparse parser, so the
completion follows every new command and option without a hand-written
script. Two halves:

- :func:`completion_script` is the shell code a user loads once
  (``protectflow completion bash > ~/.local/share/bash-completion/completions/protectflow``,
  or ``source <(protectflow completion bash)``); on each Tab it runs
  ``protectflow`` with ``_ARGCOMPLETE`` set in its environment;
- :func:`answer` is called by the command before it parses its arguments:
  when ``_ARGCOMPLETE`` is set it prints the candidates and exits, otherwise
  it returns at once without importing anything.

Beyond the parser's own words, :func:`add_completers` offers the executors'
names after ``--executor`` and the checkpoint ids of the bank the command
would use for an ``ID``: one listing of a local bank's checkpoints folder
(ids are object names, not secrets), never a password asked or a key read,
and nothing for a remote bank (a Tab must not wait on the network).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from protectflow._urls import is_local
from protectflow.bank import Bank, CheckpointStore
from protectflow.cli.banks import plan_file
from protectflow.cli.config import load_config
from protectflow.cli.options import settings
from protectflow.errors import ProtectflowError
from protectflow.executors.base import available_executors

__all__ = ["SHELLS", "add_completers", "answer", "checkpoint_ids", "completion_script",
           "executor_names"]

#: The shells argcomplete writes a script for (tcsh and powershell too, untested).
SHELLS = ("bash", "zsh", "fish")


def completion_script(shell: str, prog: str = "protectflow") -> str:
    """The shell code that registers completion of ``prog`` in ``shell``.

    Parameters
    ----------
    shell : {'bash', 'zsh', 'fish'}
        The user's shell.
    prog : str
        The command to complete.

    Returns
    -------
    str
        A script to ``source`` (bash, zsh) or to put in fish's completions folder.

    Raises
    ------
    ValueError
        For a shell not in :data:`SHELLS`.
    """
    if shell not in SHELLS:
        raise ValueError(f"no completion for the shell {shell!r}; use one of {', '.join(SHELLS)}")
    from argcomplete.shell_integration import shellcode  # only this command needs it

    script: str = shellcode([prog], shell=shell)
    return script


def answer(parser: argparse.ArgumentParser) -> None:
    """When the shell asks for completions, print them and exit; else return.

    Call it with the command's whole parser before ``parse_args``.

    Raises
    ------
    SystemExit
        After printing the completions, when ``_ARGCOMPLETE`` is set.
    """
    if "_ARGCOMPLETE" not in os.environ:
        return  # the common case costs no import
    import argcomplete

    argcomplete.autocomplete(parser)


def executor_names(prefix: str = "", **_: Any) -> list[str]:
    """The executors' names starting with ``prefix`` (an argcomplete completer)."""
    return [name for name in available_executors() if name.startswith(prefix)]


def checkpoint_ids(prefix: str = "", parsed_args: argparse.Namespace | None = None,
                   **_: Any) -> list[str]:
    """The ids starting with ``prefix`` in the bank the command would use
    (its ``--bank`` or ``--plan`` if typed already, else the environment's,
    the config file's, the default); none for a remote bank or on any
    trouble (an argcomplete completer: it must never fail or ask)."""
    args = parsed_args if parsed_args is not None else argparse.Namespace()
    try:
        args.config = load_config()
        plan = plan_file(getattr(args, "plan", None))
        url = settings(args, plan.bank if plan is not None else None).bank
        if not is_local(url) or not Bank(url).exists():
            return []
        return [i for i in CheckpointStore(Bank(url)).ids() if i.startswith(prefix)]
    except (ProtectflowError, OSError, ValueError):
        return []


def add_completers(parser: argparse.ArgumentParser) -> None:
    """Give every ``ID`` argument and ``--executor`` option of ``parser``'s
    commands their completer."""
    for action in parser._actions:  # argparse has no public walk of its actions
        if action.dest in ("checkpoint", "second", "checkpoints"):  # ID, diff's ID2, --checkpoint
            action.completer = checkpoint_ids  # type: ignore[attr-defined]
        elif action.dest == "executor":
            action.completer = executor_names  # type: ignore[attr-defined]
        elif isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                add_completers(child)
