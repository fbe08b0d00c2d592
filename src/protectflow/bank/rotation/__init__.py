"""``protectflow key rotate``: a new master key for a bank, every object
moved to it, the old key gone.

What it defends: a change of password re-wraps the same master key, so an
old password that leaked, with a copy of the old password entry someone
kept, still opens everything -- and so does a key file or an exported key
that leaked, or the derived keys a dask run sent over plain TCP. A rotation
makes a new random master key, re-encrypts every object under it and renames
every chunk (chunk names are keyed hashes of their bytes), then removes the
old key file and every old password entry: nothing in the bank opens with
the old key any more, whatever copy of it was kept. (A copy of the *bank*
made before the rotation still opens with the old key: a rotation changes
the bank, not its copies.)

How, in the order it happens (a "step" is what ``kill-rotate-after-steps``
of :mod:`protectflow._faults` counts):

1. unlock the bank with its current key; take the rotation's lease
   (``rotating/lease``, see :mod:`._state`); write the clear ``rotation`` mark
   (:mod:`protectflow.bank.objects._rotating`), from which on every other
   command refuses the bank; refuse, and take the mark back, if any
   checkpoint is busy. A process that unlocked the bank earlier takes no
   checkpoint lease from now on (:class:`~protectflow.bank.catalog.lease.LeaseKeeper`
   looks for the mark after taking one): no operation runs across a rotation;
2. make the new key and keep it where the end installs it (:mod:`._keys`);
   seal the rotation's state, holding the old key, under the new key. Step;
3. move every chunk: read under the old key, named by the new key's hash of
   its bytes, sealed beside the old one; each batch synced, then recorded
   in the chunk map. A step per batch, and one when all are done;
4. move every other object in place, manifests renamed to the chunks' new
   names (every ``chunks`` list and ``pack`` string in a checkpoint's data,
   the convention :mod:`protectflow.bank.chunks.refs` documents: no plugin
   is asked), refs moved to the new names. A step per batch, and one at the end;
5. authenticate the config under the new key. Step;
6. delete the chunks under their old names. Step;
7. install the new key: the new key file over the old, the new password
   entry into ``keys/`` and every old one removed. Step;
8. remove the rotation's own objects, its state last, then the mark.

Killed anywhere, ``protectflow key rotate`` run again finds the mark and
finishes: with the new key it finds (the next key file, or the new password
opening the new entry) it opens the state, takes the old key from it, and
goes on from the last step recorded; every move leaves an object already
under the new key alone. A rotation killed before its state was sealed
is started afresh; one killed after the state was removed only has its
mark removed. Any other command on the bank meanwhile refuses, saying to run
``key rotate``.

Passwords: a bank with password entries gets one new entry for the new key,
by a new password (``PROTECTFLOW_NEW_PASSWORD``, or typed twice), or, with
``keep_password``, by the password it opened with; other passwords it had
are removed (add them again with ``key add-password``). Every entry cannot be
re-wrapped under its own password: that would need every password.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from protectflow import _faults
from protectflow._util import now_iso
from protectflow.bank.catalog.checkpoint import CHECKPOINTS, Checkpoint
from protectflow.bank.catalog.lease import Lease, LeaseKeeper
from protectflow.bank.objects import _keystore, _passwords
from protectflow.bank.objects._keystore import BankConfig, Unlocked
from protectflow.bank.objects._rotating import (
    RotationMark,
    read_mark,
    remove_mark,
    write_mark,
)
from protectflow.bank.objects.crypto import MASTER_KEY_LEN, Keyring
from protectflow.bank.objects.keys import config_of
from protectflow.bank.objects.store import Bank
from protectflow.bank.rotation import _keys
from protectflow.bank.rotation._state import LEASE, ROTATING, STATE, RotationState, load_map
from protectflow.bank.rotation._work import Mover, Renewer, describe_unreadable
from protectflow.errors import BankError

__all__ = ["RotationResult", "rotate_key"]


@attrs.frozen
class RotationResult:
    """What ``protectflow key rotate`` did."""

    bank: str
    old_fingerprint: str
    new_fingerprint: str
    #: Whether it finished a rotation an earlier run had started.
    resumed: bool
    #: Chunks renamed under the new key, by this run and any before it.
    chunks: int
    #: Objects this run moved to the new key (chunks included).
    moved: int
    #: The key file now holding the new key, if the bank has one here.
    key_file: str | None
    #: The bank's password entries now (the new key's).
    passwords: tuple[str, ...]
    #: Old password entries removed.
    removed_passwords: int
    #: Objects that opened under neither key (damaged before), left as they were.
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"passwords": list(self.passwords),
                                                    "problems": list(self.problems)}


@attrs.frozen
class _Run:
    """A rotation ready to move objects: its keys, state and lease."""

    old: Keyring
    new: Keyring
    new_master: bytes = attrs.field(repr=False)
    state: RotationState
    keeper: LeaseKeeper
    lease: Lease
    resumed: bool


def rotate_key(bank: Bank, *, owner: str, ttl: float = 60.0,
               new_password: Callable[[], str] | None = None, keep_password: bool = False,
               workers: int = 4) -> RotationResult:
    """Give ``bank`` a new master key, or finish a rotation that was killed
    (see the module for how, and what it defends against).

    Parameters
    ----------
    bank : Bank
        The bank; its key (file or password) must be at hand.
    owner : str
        Who rotates (``user@host:pid``), for the lease and messages.
    ttl : float
        Seconds the rotation's lease lasts; renewed every third of it.
    new_password : callable, optional
        Gives the password the new key is wrapped by when the bank has
        password entries; asked only then.
    keep_password : bool
        Wrap the new key by the password the bank opened with instead.
    workers : int
        Threads reading, re-encrypting and writing objects.

    Raises
    ------
    BankLockedError
        If the bank's key (or, mid-rotation, its new key) is not at hand.
    BankError
        If a checkpoint is busy, another rotation runs, a password is
        missing, or the bank refuses a write.
    """
    config = config_of(bank)
    mark = read_mark(bank.backend, bank.url)
    if mark is None:
        run = _start(bank, config, _unlock(bank, config), owner=owner, ttl=ttl,
                     ask=new_password, keep=keep_password)
    else:
        found = _resume(bank, config, mark, owner=owner, ttl=ttl, ask=new_password,
                        keep=keep_password)
        if isinstance(found, RotationResult):
            return found
        run = found
    return _finish(bank, config, run, ttl=ttl, workers=workers)


def _unlock(bank: Bank, config: BankConfig) -> Unlocked:
    """The bank's current key (a mark or not: the rotation's own business)."""
    unlocked = _keystore.find_master(bank.backend, bank.url, config,
                                     password_file=bank.password_file)
    _keystore.check_master(config, unlocked.master, bank.url)
    return unlocked


def _lease(bank: Bank, old: Keyring, owner: str, ttl: float) -> tuple[LeaseKeeper, Lease]:
    keeper = LeaseKeeper(bank.with_keyring(old), LEASE, f"the key rotation of bank {bank.url}",
                         guard=False)
    return keeper, keeper.acquire("rotate", owner, ttl=ttl, reclaim_dead=True)


def _start(bank: Bank, config: BankConfig, unlocked: Unlocked, *, owner: str, ttl: float,
           ask: _keys.AskPassword | None, keep: bool, again: RotationMark | None = None,
           ) -> _Run:
    """Steps 1 and 2: from a bank under one key to a rotation under way;
    ``again``: the mark of one that died before step 2 ended, started afresh."""
    old = Keyring.from_master(unlocked.master)
    password = _keys.new_password_for(bank, unlocked, ask=ask, keep=keep)  # before any write
    keeper, lease = _lease(bank, old, owner, ttl)
    try:
        if again is not None:  # what the dead one kept of its new key protects nothing
            _keys.discard_new_key(bank, config)
        mark = RotationMark(owner, again.started_at if again else now_iso(), old.fingerprint)
        if not write_mark(bank.backend, mark, replace=again is not None):
            raise BankError(f"another key rotation of bank {bank.url} started just now: "
                            "let it finish")
        try:
            _refuse_busy(bank.with_keyring(old))
            return _prepare(bank, config, unlocked, old, password, keeper, lease)
        except BaseException:
            with contextlib.suppress(OSError):
                remove_mark(bank.backend)
            raise
    except BaseException:
        keeper.release(lease)
        raise


def _refuse_busy(bank: Bank) -> None:
    for name, is_dir in sorted(bank.backend.listdir(CHECKPOINTS.rstrip("/"))):
        if not is_dir:
            continue
        try:
            checkpoint = Checkpoint(bank, name)
        except BankError:
            continue  # not a checkpoint's folder
        lease = checkpoint.lease
        if lease is not None:
            raise BankError(f"cannot rotate the key of bank {bank.url}: checkpoint {name} is "
                            f"busy ({lease.describe()}); run `protectflow key rotate` again "
                            "when it is done (`protectflow checkpoints gc` resolves one "
                            "whose process died)")


def _prepare(bank: Bank, config: BankConfig, unlocked: Unlocked, old: Keyring,
             password: str | None, keeper: LeaseKeeper, lease: Lease) -> _Run:
    """Step 2: the new key, kept; the state sealed under it."""
    master = os.urandom(MASTER_KEY_LEN)
    new = Keyring.from_master(master)
    entries = _keys.store_new_key(bank, config, master, key_file=unlocked.password is None,
                                  password=password)
    state = RotationState(unlocked.master, now_iso(), unlocked.password is None, entries)
    state.save(bank.with_keyring(new))
    return _Run(old, new, master, state, keeper, lease, resumed=False)


def _resume(bank: Bank, config: BankConfig, mark: RotationMark, *, owner: str, ttl: float,
            ask: _keys.AskPassword | None, keep: bool) -> _Run | RotationResult:
    """A rotation found under way: the run that finishes it, or (when only
    its mark was left) what it had done."""
    try:
        raw = bank.backend.read(STATE)
    except FileNotFoundError:
        raw = None
    if raw is None:
        unlocked = _unlock(bank, config)
        key = Keyring.from_master(unlocked.master)
        if key.fingerprint != mark.old_fingerprint:  # it had finished, but for its mark
            _remove_own_objects(bank)  # (or the mark is not a rotation's: the same remedy)
            remove_mark(bank.backend)
            return _result(bank, config, key.fingerprint, key, resumed=True, chunks=0,
                           moved=0, removed=0)
        # It died before sealing anything under a new key: start afresh.
        return _start(bank, config, unlocked, owner=owner, ttl=ttl, ask=ask, keep=keep,
                      again=mark)
    master = _keys.find_new_key(bank, config, raw, passwords=lambda: _given_passwords(bank, ask))
    new = Keyring.from_master(master)
    state = RotationState.from_json(bank.with_keyring(new).get_object(STATE), bank.url)
    old = Keyring.from_master(state.old_master)
    keeper, lease = _lease(bank, old, owner, ttl)
    write_mark(bank.backend, attrs.evolve(mark, owner=owner), replace=True)
    return _Run(old, new, master, state, keeper, lease, resumed=True)


def _given_passwords(bank: Bank, ask: _keys.AskPassword | None) -> Iterator[str]:
    """The passwords a resumed rotation tries on the new entries, each only
    if the one before did not open: the one given for the bank, then the
    new one (asked for, if it can be)."""
    given = _passwords.env_password(bank.password_file)
    if given is not None:
        yield given
    if ask is not None:
        with contextlib.suppress(BankError):  # none to be had: the error says what to do
            yield ask()


def _finish(bank: Bank, config: BankConfig, run: _Run, *, ttl: float,
            workers: int) -> RotationResult:
    """Steps 3 to 8 (or those left)."""
    renewer = Renewer(run.keeper, run.lease, ttl)
    steps = [0]

    def step() -> None:
        steps[0] += 1
        _faults.rotation_step(steps[0])
        renewer.check()

    step()  # the rotation's start (or resumption) is durable
    mover = Mover(bank, run.old, run.new, step=step, workers=workers)
    new_bank = bank.with_keyring(run.new)
    state = run.state
    try:
        if state.chunks_done:
            names = load_map(new_bank)[0]
        else:
            names = mover.chunks()
            state = attrs.evolve(state, chunks_done=True)
            state.save(new_bank)
            step()
        if not state.objects_done:
            mover.objects(names)
            state = attrs.evolve(state, objects_done=True)
            state.save(new_bank)
            step()
        if not _keystore.matches(config, run.new_master):
            config = _keystore.rekey_config(bank.backend, bank.url, config, run.new)
            step()
        mover.drop_old_chunks(names)
        step()
        removed = _keys.install_new_key(bank, config, key_file=state.key_file,
                                        entries=state.entries)
        step()
    finally:
        renewer.stop()
    _remove_own_objects(bank)
    remove_mark(bank.backend)
    return _result(bank, config, run.old.fingerprint, run.new, resumed=run.resumed,
                   chunks=len(names), moved=mover.moved, removed=removed,
                   problems=describe_unreadable(mover.unreadable, bank.url))


def _remove_own_objects(bank: Bank) -> None:
    """Step 8: the rotation's map, entries and lease, then its state, then
    its folders (temporary files a killed write left in them too: nobody but
    a rotation writes there)."""
    backend = bank.backend
    files: list[str] = []
    folders: list[str] = []
    pending = [ROTATING.rstrip("/")]
    while pending:
        folder = pending.pop()
        folders.append(folder)
        for name, is_dir in backend.listdir(folder):
            (pending if is_dir else files).append(f"{folder}/{name}")
    for key in files:
        if key != STATE:
            backend.delete(key)
    backend.delete(STATE)
    for folder in reversed(folders):  # the deepest first
        backend.prune(folder)


def _result(bank: Bank, config: BankConfig, old_fingerprint: str, new: Keyring, *,
            resumed: bool, chunks: int, moved: int, removed: int,
            problems: tuple[str, ...] = ()) -> RotationResult:
    _keystore.forget_unlocked()
    bank.forget_keys()
    key_file = _keys.installed_key_file(config.id)
    return RotationResult(bank=bank.url, old_fingerprint=old_fingerprint,
                          new_fingerprint=new.fingerprint, resumed=resumed, chunks=chunks,
                          moved=moved, key_file=key_file,
                          passwords=tuple(_passwords.password_entries(bank.backend)),
                          removed_passwords=removed, problems=problems)
