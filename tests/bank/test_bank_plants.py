"""More attacks by someone who can write a local bank without its key, and by a
racing process: an object swapped back and forth with a FIFO while it is read
hangs no reader; a chunk made a symlink to a secret file of the operator leaks
nothing into a restore; a huge sparse file dropped into the index costs a
listing nothing and gc removes it; forged "bad chunk" marks only make the next
protect store good bytes again."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.chunks.store import ChunkStore, chunk_key
from protectflow.bank.objects import _keystore as keystore
from protectflow.errors import ChunkError, CorruptObjectError
from tests.waits import wait_until

FS = "protectflow::fs::Directory"
SECRET = b"the operator's secret, readable by the operator only\n"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


def _swap_with_fifo(path: str, good: bytes, started: object, stop: object) -> None:
    """The racing process: put a FIFO and the good object in turn at ``path``."""
    spare_fifo, spare_file = path + ".fifo", path + ".file"
    started.set()  # type: ignore[attr-defined]
    while not stop.is_set():  # type: ignore[attr-defined]
        os.mkfifo(spare_fifo)
        os.rename(spare_fifo, path)
        with open(spare_file, "wb") as f:
            f.write(good)
        os.rename(spare_file, path)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_object_swapped_with_a_fifo_while_read_hangs_no_reader(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    store = ChunkStore(bank, "x@y")
    data = os.urandom(100_000)
    digest = store.chunk_id(data)
    store.add(digest, data)
    path = os.path.join(bank.url, *chunk_key(digest).split("/"))
    good = Path(path).read_bytes()
    ctx = multiprocessing.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    racer = ctx.Process(target=_swap_with_fifo, args=(path, good, started, stop))
    racer.start()
    try:
        wait_until(started.is_set, "the racing process")
        outcomes = set()
        for _ in range(300):
            try:
                assert bank.get_object(chunk_key(digest)) == data
                outcomes.add("read")
            except CorruptObjectError as err:
                assert "it is a FIFO, not a regular file" in str(err)
                outcomes.add("refused")
            except Exception as err:  # the name vanished for an instant: said as missing
                assert "no bank object" in str(err), err
                outcomes.add("missing")
        assert outcomes <= {"read", "refused", "missing"}
    finally:
        stop.set()
        racer.join()


def _protect(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.bin").write_bytes(os.urandom(50_000))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"name": "p", "resources": [
        {"type": FS, "id": "data", "extra_info": {"path": str(data)}}],
        "parameters": {FS: {"chunk_size": 16384, "pack_size": 0}}}))
    bank = tmp_path / "bank"
    assert cli.main(["protect", str(plan), "--bank", str(bank), "-q"]) == 0
    keystore.forget_unlocked()
    return plan, CheckpointStore(Bank(bank)).list()[0].id


def test_a_chunk_symlinked_to_a_secret_leaks_nothing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, cp = _protect(tmp_path)
    bank = tmp_path / "bank"
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    chunk = sorted(p for p in (bank / "chunks").rglob("*") if p.is_file())[0]
    chunk.unlink()
    chunk.symlink_to(secret)
    out = tmp_path / "out"
    assert cli.main(["restore", cp, "--bank", str(bank), "--target", str(out)]) == 1
    said = capsys.readouterr()
    # the chunk is refused (a symbolic link, which a bank never makes) and the
    # file it belongs to named as damaged, with the bytes lost
    assert "f.bin: bytes " in said.out + said.err
    assert "corrupt" in said.out + said.err
    assert SECRET not in b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert SECRET.decode() not in said.out + said.err


@pytest.mark.timeout(60)
def test_a_huge_file_dropped_into_the_index_costs_nothing_and_gc_removes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, cp = _protect(tmp_path)
    bank = tmp_path / "bank"
    planted = bank / "index" / "by-date" / "2099" / "01" / "01" / f"000000000000-{'a' * 32}"
    planted.parent.mkdir(parents=True)
    with open(planted, "wb") as f:
        f.truncate(1 << 40)
    assert [c.id for c in CheckpointStore(Bank(bank)).list()] == [cp]
    assert cli.main(["checkpoints", "gc", "--bank", str(bank)]) == 0
    assert "1 index entr(ies) removed" in capsys.readouterr().out
    assert not planted.exists()


def test_forged_bad_marks_only_make_a_protect_store_good_bytes_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan, first = _protect(tmp_path)
    bank = tmp_path / "bank"
    for chunk in [p for p in (bank / "chunks").rglob("*") if p.is_file()]:
        mark = bank / "bad" / "chunks" / chunk.parent.name / chunk.name
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_bytes(b"forged by someone without the key")
    assert cli.main(["protect", str(plan), "--bank", str(bank), "-q"]) == 0
    keystore.forget_unlocked()
    second = CheckpointStore(Bank(bank)).list()[0].id
    for cp in (first, second):
        assert cli.main(["verify", cp, "--bank", str(bank), "--read-data", "-q"]) == 0
    with pytest.raises(ChunkError):  # and a chunk that is really gone is still said so
        ChunkStore(Bank(bank), "x@y").read("0" * 64)


def test_a_store_without_conditional_puts_falls_back_to_check_then_put(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3-compatible store that answers a conditional put with "not
    implemented" still gets its objects, made by a check then a put."""
    bank = Bank(f"memory://pf-{os.urandom(4).hex()}/bank")
    backend = bank.backend
    backend.conditional = True  # type: ignore[union-attr]
    real = backend.fs.pipe_file  # type: ignore[union-attr]

    def pipe_file(path: str, value: bytes, mode: str = "overwrite", **kw: object) -> None:
        if mode == "create":
            raise OSError("An error occurred (NotImplemented) when calling PutObject")
        real(path, value, **kw)

    monkeypatch.setattr(backend.fs, "pipe_file", pipe_file)  # type: ignore[union-attr]
    assert backend.create_exclusive("a", (b"1",))
    assert not backend.create_exclusive("a", (b"2",))
    assert backend.read("a") == b"1"
    assert backend.conditional is False  # type: ignore[union-attr]
