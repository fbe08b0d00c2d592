"""``protectflow key show | add-password | change-password | export FILE |
import FILE``: a bank's key fingerprint, its passwords, and its key carried
to another machine (a thin shell over :mod:`protectflow.bank.objects.keys`).

The new password of ``add-password`` and ``change-password`` comes from
``$PROTECTFLOW_NEW_PASSWORD``, else a prompt (typed twice) on a terminal;
the current one, where the bank needs it, from ``--password-file``, else
``$PROTECTFLOW_PASSWORD`` (or ``$PROTECTFLOW_PASSWORD_FILE``), else a prompt.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from protectflow.bank.objects import keys as bank_keys
from protectflow.cli.options import BANK_HELP, Subparsers, add_bank_args, bank_from_args
from protectflow.errors import BankError

__all__ = ["add_parsers", "key_command"]

NEW_PASSWORD_ENV = "PROTECTFLOW_NEW_PASSWORD"


def add_parsers(sub: Subparsers) -> None:
    """Add ``key`` and its actions to ``sub``; the handler is :func:`key_command`."""
    parser = sub.add_parser(
        "key", help="show a bank's key, add or change its password, export or import it")
    actions = parser.add_subparsers(dest="key_action", required=True, metavar="ACTION")
    p = actions.add_parser("show", help="the bank's id, key fingerprint and where the key is")
    p.add_argument("--json", action="store_true")
    actions.add_parser("add-password", help="wrap the key by a password into the bank")
    actions.add_parser("change-password", help="replace the password the bank opens with")
    p = actions.add_parser("export", help="write the bank's key to a new file (keep it safe)")
    p.add_argument("file", metavar="FILE")
    p = actions.add_parser("import", help="install a key exported on another machine")
    p.add_argument("file", metavar="FILE")
    for action in actions.choices.values():
        add_bank_args(action, BANK_HELP + " (default: $PROTECTFLOW_BANK, then a folder in "
                      "your data directory)")
    parser.set_defaults(func=key_command)


def _new_password() -> str:
    password = os.environ.get(NEW_PASSWORD_ENV)
    if password:
        return password
    if sys.stdin is None or not sys.stdin.isatty():
        raise BankError(f"no new password: set ${NEW_PASSWORD_ENV}, or run on a terminal")
    first = getpass.getpass("new password: ")
    if first != getpass.getpass("new password again: "):
        raise BankError("the two passwords differ; nothing was changed")
    return first


def key_command(args: argparse.Namespace) -> int:
    """Run ``protectflow key ACTION``; returns the exit code.

    Raises
    ------
    BankError
        If the bank cannot be opened, the key found or the file written.
    """
    bank = bank_from_args(args)
    action = args.key_action
    if action == "show":
        info = bank_keys.show_fingerprint(bank)
        if args.json:
            print(json.dumps(info.to_json(), indent=1))
        else:
            print(f"bank         {info.bank}\nid           {info.bank_id}\n"
                  f"fingerprint  {info.fingerprint}\n"
                  f"key file     {info.key_file or '(none on this machine)'}\n"
                  f"passwords    {len(info.passwords)}")
    elif action in ("add-password", "change-password"):
        change = action == "change-password"
        entry = (bank_keys.change_password if change else bank_keys.add_password)(
            bank, _new_password())
        print(f"password entry {entry} {'replaces the old one' if change else 'added'}")
    elif action == "export":
        fingerprint = bank_keys.export_key(bank, args.file)
        print(f"key {fingerprint} written to {args.file}: it opens the bank, keep it safe")
    else:
        info = bank_keys.import_key(bank, args.file)
        print(f"key {info.fingerprint} installed at {info.key_file}")
    return 0
