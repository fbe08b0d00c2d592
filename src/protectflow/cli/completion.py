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
"""

from __future__ import annotations

import argparse
import os

__all__ = ["SHELLS", "answer", "completion_script"]

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
