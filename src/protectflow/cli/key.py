"""``protectflow key show | add-password | change-password | rotate | export
FILE | import FILE``: a bank's key fingerprint, its passwords, a new key, and
its key carried to another machine (a thin shell over
:mod:`protectflow.bank.objects.keys` and :mod:`protectflow.bank.rotation`).

The new password of ``add-password``, ``change-password`` and ``rotate``
comes from ``$PROTECTFLOW_NEW_PASSWORD`` (one trailing newline dropped, as
for ``$PROTECTFLOW_PASSWORD``), else a prompt (typed twice) on a terminal;
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
from protectflow.bank.objects._passwords import password_text
from protectflow.bank.rotation import RotationResult, rotate_key
from protectflow.cli.options import BANK_HELP, Subparsers, add_bank_args, bank_from_args
from protectflow.errors import BankError
from protectflow.operations.lease import default_owner, lease_ttl

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
    p = actions.add_parser("rotate", help="a new master key: every object re-encrypted, "
                           "every chunk renamed, the old key and passwords removed; run it "
                           "again to finish one that was interrupted")
    p.add_argument("--keep-password", action="store_true",
                   help="wrap the new key by the password the bank opened with (default: "
                   "ask for a new one when the bank has passwords)")
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("export", help="write the bank's key to a new file (keep it safe)")
    p.add_argument("file", metavar="FILE")
    p = actions.add_parser("import", help="install a key exported on another machine")
    p.add_argument("file", metavar="FILE")
    for action in actions.choices.values():
        add_bank_args(action, BANK_HELP + " (default: $PROTECTFLOW_BANK, then a folder in "
                      "your data directory)")
    parser.set_defaults(func=key_command)


def _new_password() -> str:
    if NEW_PASSWORD_ENV in os.environ:
        return password_text(os.environ[NEW_PASSWORD_ENV], f"${NEW_PASSWORD_ENV}")
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
        # The new password is asked for once the bank is open: the current one first.
        entry = (bank_keys.change_password if change else bank_keys.add_password)(
            bank, _new_password)
        print(f"password entry {entry} {'replaces the old one' if change else 'added'}")
    elif action == "rotate":
        result = rotate_key(bank, owner=default_owner(), ttl=lease_ttl(),
                            new_password=_new_password, keep_password=args.keep_password)
        _print_rotation(result, as_json=args.json)
        return 1 if result.problems else 0
    elif action == "export":
        fingerprint = bank_keys.export_key(bank, args.file)
        print(f"key {fingerprint} written to {args.file}: it opens the bank, keep it safe")
    else:
        info = bank_keys.import_key(bank, args.file)
        print(f"key {info.fingerprint} installed at {info.key_file}")
    return 0


def _print_rotation(result: RotationResult, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json(), indent=1))
        return
    if result.old_fingerprint == result.new_fingerprint:
        print(f"no key rotation was left to finish in bank {result.bank}: its mark is "
              f"removed; the key is {result.new_fingerprint}, as it was")
        return
    what = "finished the interrupted key rotation" if result.resumed else "rotated the key"
    print(f"{what} of bank {result.bank}: {result.old_fingerprint} -> "
          f"{result.new_fingerprint}; {result.chunks} chunks renamed, {result.moved} objects "
          "re-encrypted by this run")
    if result.key_file:
        print(f"the new key is in {result.key_file}; an exported copy of the old one opens "
              "nothing now: `protectflow key export` the new one")
    if result.passwords or result.removed_passwords:
        print(f"{len(result.passwords)} password entry for the new key; "
              f"{result.removed_passwords} old entries removed")
    for problem in result.problems:
        print(f"protectflow: problem: {problem}", file=sys.stderr)
