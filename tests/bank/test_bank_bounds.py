"""Reads that could hang or explode: every object is bounded by what its kind
may hold. A zstd frame sealed with the right key (a key holder's bomb) that
claims or yields more is refused naming the object, with no MemoryError; a
FIFO, a device, a symlink or a huge file planted at an object's path in a
local bank is refused naming the path, without waiting or reading it all."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.objects._limits import MAX_CHUNK, max_plain_size
from protectflow.dag import Plan
from protectflow.errors import BankError, ChunkError, CorruptObjectError
from tests.bank.bank_helpers import NO_GRAPH, make_bank
from tests.needs import root
from tests.scripts import ROOT

#: A zstd frame of no content that claims 1 TiB in its header (16 bytes):
#: magic, a single-segment descriptor with an 8-byte content size, the size,
#: and one empty last raw block.
TIB_CLAIM = (b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + (1 << 40).to_bytes(8, "little")
             + b"\x01\x00\x00")


def seal_frame(bank: Bank, key: str, frame: bytes, kind: bytes = b"j") -> None:
    """As a holder of the bank's key: store ``frame`` under ``key`` as a
    zstd-compressed payload that authenticates."""
    encryption_key = bank.ensure_keyring().__reduce__()[1][0]  # type: ignore[index]
    header = b"PFE2" + kind + b"z"
    nonce = os.urandom(12)
    sealed = AESGCM(encryption_key).encrypt(nonce, frame, header + key.encode())
    bank.backend.write(key, (header + nonce + sealed,))


def unsized_zeros(size: int) -> bytes:
    """A frame of ``size`` zero bytes that does not declare its size."""
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=False)
    chunk = bytes(1 << 20)
    obj = compressor.compressobj()
    parts = [obj.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + obj.flush()


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    b = make_bank("local", tmp_path)
    b.update_object("hello", "world")
    return b


def test_a_frame_claiming_a_tebibyte_is_refused_naming_the_object(bank: Bank) -> None:
    seal_frame(bank, "checkpoints/x/record", TIB_CLAIM)
    with pytest.raises(CorruptObjectError, match=r"'checkpoints/x/record'.*claims 1099511627776"):
        bank.get_object("checkpoints/x/record")


def test_a_frame_expanding_past_its_kind_is_refused_with_bounded_memory(bank: Bank) -> None:
    # 200 MiB of zeros, not declared, in about 64 KiB: a record may hold 64 MiB.
    frame = unsized_zeros(200 << 20)
    assert len(frame) < 64 << 10
    seal_frame(bank, "checkpoints/x/record", frame)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CorruptObjectError, match=r"'checkpoints/x/record'.*expands past"):
        bank.get_object("checkpoints/x/record")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 2 * max_plain_size("checkpoints/x/record") >> 10


def test_a_bomb_in_a_marker_area_stops_at_its_small_bound(bank: Bank) -> None:
    seal_frame(bank, "index/by-date/x", unsized_zeros(4 << 20), kind=b"b")
    with pytest.raises(CorruptObjectError, match="expands past the 65536 bytes"):
        bank.get_object("index/by-date/x")


def test_an_honest_compressed_object_still_reads(bank: Bank) -> None:
    seal_frame(bank, "checkpoints/x/data/m", zstandard.ZstdCompressor().compress(b"[1,2]"))
    assert bank.get_object("checkpoints/x/data/m") == [1, 2]
    seal_frame(bank, "checkpoints/x/data/u", unsized_zeros(2 << 20), kind=b"b")
    assert bank.get_object("checkpoints/x/data/u") == bytes(2 << 20)


def test_no_memory_error_under_a_memory_limit(bank: Bank, tmp_path: Path) -> None:
    """The 1 TiB claim in a process held to 1 GiB of address space: a clear
    error, never a MemoryError traceback."""
    seal_frame(bank, "chunks/ab/abcd", TIB_CLAIM, kind=b"b")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from protectflow.bank import Bank\n"
        "from protectflow.errors import CorruptObjectError\n"
        f"b = Bank({bank.url!r})\n"
        "try:\n"
        "    b.get_object('chunks/ab/abcd')\n"
        "except CorruptObjectError as err:\n"
        "    print('refused:', err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert "refused: bank object 'chunks/ab/abcd'" in out.stdout
    assert "MemoryError" not in out.stderr


def test_the_chunk_bound_covers_every_plugin_chunk() -> None:
    from protectflow.plugins.builtin.fs import MAX_CHUNK_SIZE

    assert MAX_CHUNK_SIZE + MAX_CHUNK_SIZE // 4 <= MAX_CHUNK  # a pack overshoots by a file


# -- things planted at an object's path -----------------------------------------------
def _checkpoint(bank: Bank) -> str:
    cp = CheckpointStore(bank).create(Plan("p", ()), NO_GRAPH, "f", "me")
    cp.transition("available")
    cp.release()
    return cp.id


@pytest.mark.timeout(30)
def test_a_fifo_at_a_record_hangs_nothing(bank: Bank) -> None:
    cp = _checkpoint(bank)
    path = Path(bank.url) / "checkpoints" / cp / "record"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(CorruptObjectError, match=rf"{path}: it is a FIFO, not a regular file"):
        bank.get_object(f"checkpoints/{cp}/record")


@pytest.mark.timeout(30)
def test_a_huge_sparse_file_at_a_chunk_is_refused_unread(bank: Bank) -> None:
    key = "chunks/ab/" + "ab" * 32
    path = Path(bank.url, *key.split("/"))
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        f.truncate(1 << 40)  # sparse: reading it would take hours and a TiB
    with pytest.raises(CorruptObjectError, match=rf"{path}: it holds 1099511627776 bytes"):
        bank.get_object(key)
    from protectflow.bank.objects._backend import ReadBuffers

    with pytest.raises(CorruptObjectError, match="1099511627776 bytes"):
        bank.get_bytes_into(key, ReadBuffers())


@pytest.mark.timeout(30)
def test_a_symlink_to_dev_zero_at_an_object_is_refused(bank: Bank) -> None:
    path = Path(bank.url) / "hello"
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(CorruptObjectError, match="it is a symbolic link"):
        bank.get_object("hello")


@root("making a device node")
@pytest.mark.timeout(30)
def test_a_device_at_a_chunk_is_refused(bank: Bank) -> None:
    from protectflow.bank.chunks.store import ChunkStore, chunk_key

    store = ChunkStore(bank, "x@y")
    digest = store.chunk_id(b"data")
    store.add(digest, b"data")
    path = Path(bank.url, *chunk_key(digest).split("/"))
    path.unlink()
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    with pytest.raises(ChunkError, match="it is a device, not a regular file"):
        store.read(digest)


@pytest.mark.timeout(60)
def test_the_cli_shows_a_bombed_record_as_damaged(bank: Bank,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from protectflow import cli

    cp = _checkpoint(bank)
    seal_frame(bank, f"checkpoints/{cp}/record", unsized_zeros(100 << 20))
    code = cli.main(["checkpoints", "show", cp, "--bank", bank.url])
    err = capsys.readouterr().err
    assert code != 0
    assert f"checkpoints/{cp}/record" in err
    assert "Traceback" not in err and "MemoryError" not in err


def test_bank_error_is_the_base(bank: Bank) -> None:
    assert issubclass(CorruptObjectError, BankError)


# -- the key file, planted -------------------------------------------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize("plant", ["fifo", "huge", "zero-link"])
def test_a_key_file_that_is_no_key_hangs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str],
                                                 plant: str) -> None:
    from protectflow import cli
    from protectflow.bank.objects import _keystore

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    bank = Bank(tmp_path / "bank")
    bank.update_object("x", "y")
    config = _keystore.read_config(bank.backend, bank.url)
    assert config is not None
    key_file = Path(_keystore.key_file(config.id))
    key_file.unlink()
    if plant == "fifo":
        os.mkfifo(key_file, 0o600)
    elif plant == "huge":
        with open(key_file, "wb") as f:
            f.truncate(1 << 40)
        key_file.chmod(0o600)
    else:
        key_file.symlink_to("/dev/zero")
    _keystore.forget_unlocked()
    assert cli.main(["checkpoints", "list", "--bank", bank.url]) == 2
    err = capsys.readouterr().err
    assert str(key_file) in err and "Traceback" not in err
