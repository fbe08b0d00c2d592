"""Group commit on a local bank: ``create_object(durable=False)`` then ``sync``."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from protectflow.bank import Bank
from protectflow.bank.objects import _backend

#: Not something to install: syncfs(2) is Linux's.
NO_SYNCFS = ("this system has no syncfs(2) (Linux has): durable=False objects are "
             "fsync-ed one by one here")


@pytest.mark.parametrize("fsync", [True, False])
def test_objects_created_without_a_sync_read_back_and_list(tmp_path: Path, fsync: bool) -> None:
    bank = Bank(tmp_path / "bank", fsync=fsync)
    assert bank.create_object("refs/aa/x/owner", b"", durable=False)
    assert not bank.create_object("refs/aa/x/owner", b"", durable=False)
    assert bank.create_object("refs/aa/y/owner", b"", durable=False)
    assert bank.create_object("chunks/aa/x", b"data" * 100, durable=False)
    bank.sync()
    assert bank.get_object("refs/aa/x/owner") == b""
    assert bank.get_object("chunks/aa/x") == b"data" * 100
    assert bank.list_objects() == ["chunks/aa/x", "refs/aa/x/owner", "refs/aa/y/owner"]
    assert not [n for n in os.listdir(tmp_path / "bank") if n.startswith(".pftmp-")]


def test_tiny_objects_share_an_inode_that_outlives_its_template(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    if _backend._syncfs() is None:
        pytest.skip(NO_SYNCFS)
    for i in range(3):
        bank.create_object(f"refs/aa/{i}/owner", b"", durable=False)
    inodes = {os.stat(tmp_path / "bank" / "refs" / "aa" / str(i) / "owner").st_ino
              for i in range(3)}
    assert len(inodes) == 1
    bank.sync()  # drops the template
    bank.delete_object("refs/aa/0/owner")  # a delete unlinks one name only
    assert bank.get_object("refs/aa/1/owner") == b""
    bank.update_object("refs/aa/1/owner", b"other")  # a write replaces, never edits in place
    assert bank.get_object("refs/aa/2/owner") == b""
    bank.create_object("refs/aa/3/owner", b"", durable=False)  # a fresh template
    assert bank.get_object("refs/aa/3/owner") == b""


def test_a_full_link_count_starts_a_new_template(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bank = Bank(tmp_path / "bank")
    if _backend._syncfs() is None:
        pytest.skip(NO_SYNCFS)
    bank.create_object("refs/aa/0/owner", b"", durable=False)
    real_link = os.link
    calls = []

    def link(src: str, dst: str) -> None:
        calls.append(src)
        if len(calls) == 1:
            raise OSError(errno.EMLINK, "Too many links")
        real_link(src, dst)

    monkeypatch.setattr(_backend.os, "link", link)
    assert bank.create_object("refs/aa/1/owner", b"", durable=False)
    assert calls[0] != calls[1] and not os.path.exists(calls[0])
    assert bank.get_object("refs/aa/1/owner") == b""


def test_sync_on_memory_bank_is_a_no_op() -> None:
    bank = Bank("memory://group-commit")
    assert bank.create_object("a/b", b"x", durable=False)
    bank.sync()
    assert bank.get_object("a/b") == b"x"
