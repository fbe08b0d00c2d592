"""A writer killed mid-write leaves the old object or none, never half of one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from protectflow.bank import Bank

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# Streams 1 MiB chunks forever after saying "writing": the parent kills it.
WRITER = """
import sys
from protectflow.bank import Bank
bank = Bank(sys.argv[1])
chunk = b"N" * (1 << 20)
with bank.open_write(sys.argv[2]) as f:
    for i in range(10_000):
        f.write(chunk)
        if i == 8:
            f.flush()
            print("writing", flush=True)
"""


def _kill_writer_midway(bank: Bank, key: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, bank.url, key],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def _temp_files(root: str) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names if ".pftmp-" in name]


def test_killed_streamed_write_keeps_the_old_object(local_bank: Bank) -> None:
    local_bank.update_object("vol/data", b"old contents")
    _kill_writer_midway(local_bank, "vol/data")
    # A stream is sealed whole when it closes: the crash wrote nothing.
    assert _temp_files(local_bank.url) == []
    assert local_bank.get_object("vol/data") == b"old contents"
    assert local_bank.list_objects() == ["vol/data"]
    assert local_bank.list_objects("vol/") == ["vol/data"]
    # A later process writes the key normally.
    local_bank.update_object("vol/data", b"new")
    assert Bank(local_bank.url).get_object("vol/data") == b"new"


def test_killed_first_write_leaves_no_object(local_bank: Bank) -> None:
    local_bank.update_object("other", b"x")
    _kill_writer_midway(local_bank, "vol/fresh")
    assert not local_bank.has_object("vol/fresh")
    assert local_bank.list_objects() == ["other"]
    assert local_bank.list_objects(sort_dir="desc") == ["other"]
