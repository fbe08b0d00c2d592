"""The chunk store's reference protocol under concurrent deletes and protects."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from protectflow.bank import Bank, Checkpoint
from protectflow.dag.model import Resource
from protectflow.errors import ChunkError
from protectflow.plugins.builtin import fs
from protectflow.plugins.builtin._chunks import ChunkStore, chunk_key, sha256
from protectflow.states import AVAILABLE, DELETING
from tests import waits
from tests.plugins.plugin_helpers import count_objects, new_checkpoint

CHUNK = 4096


def directory(path: Path) -> Resource:
    return Resource(fs.DIRECTORY, "files", extra_info={"path": str(path)})


def test_protect_waits_for_a_deleter_and_stores_the_chunk_again(tmp_path: Path) -> None:
    """The interleaving the marker exists for: the deleter listed no refs,
    the protect then adds its ref and finds the chunk -- about to be deleted."""
    bank = Bank(tmp_path / "bank", fsync=False)
    data = b"payload"
    digest = sha256(data)
    ChunkStore(bank, "old").add(digest, data)
    deleter = ChunkStore(bank, "old")
    bank.delete_object(deleter._ref_key(digest))
    added = threading.Event()
    with deleter._marker(digest):
        assert not deleter._has_refs(digest)  # step (b): nobody references it

        def protect() -> None:
            ChunkStore(bank, "new").add(digest, data)
            added.set()

        thread = threading.Thread(target=protect)
        thread.start()
        time.sleep(0.1)
        assert not added.is_set()  # waits while the marker stands
        bank.delete_object(chunk_key(digest))  # step (c)
    thread.join(waits.LIMIT)
    assert added.is_set() and bank.has_object(chunk_key(digest))


def test_stale_marker_does_not_block_forever(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    digest = sha256(b"x")
    bank.create_object(f"locks/chunks/{digest[:2]}/{digest}", {"at": time.time() - 3600})
    assert ChunkStore(bank, "p", stale_after=600).add(digest, b"x")
    assert ChunkStore(bank, "p").release(digest)  # breaks the dead marker too


def _make_tree(root: Path, files: int, seed: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"f{i}").write_bytes(bytes([seed, i % 256]) * (CHUNK // 2) * 3)


def _delete(bank_url: str, checkpoint_id: str, path: str, start: Any) -> None:
    start.wait()
    bank = Bank(bank_url, fsync=False)
    fs.delete_resource(Checkpoint(bank, checkpoint_id), directory(Path(path)))


def _protect(bank_url: str, checkpoint_id: str, path: str, params: dict[str, int],
             start: Any) -> None:
    start.wait()
    bank = Bank(bank_url, fsync=False)
    fs.protect_tree(Checkpoint(bank, checkpoint_id), directory(Path(path)),
                    {**params, "workers": 8})


def _race(*jobs: tuple[object, ...]) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(jobs))  # crossed once every child has started up
    procs = [ctx.Process(target=fn, args=(*args, start)) for fn, *args in jobs]  # type: ignore[misc]
    for p in procs:
        p.start()
    for p in procs:
        p.join(waits.LIMIT)
        assert p.exitcode == 0


@pytest.mark.slow  # processes racing
@pytest.mark.parametrize("round_", range(2))
def test_concurrent_deletes_lose_nothing_still_referenced(tmp_path: Path, round_: int) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    tree = tmp_path / "src"
    _make_tree(tree, 150, 1)
    params = {"chunk_size": CHUNK}
    a, b, c = (new_checkpoint(bank) for _ in range(3))
    fs.protect_tree(a, directory(tree), params)
    fs.protect_tree(b, directory(tree), params)
    for i in range(0, 150, 2):  # c shares half the files with a and b
        (tree / f"f{i}").write_bytes(os.urandom(CHUNK * 2))
    fs.protect_tree(c, directory(tree), params)
    for doomed in (a, b):  # as a delete does before its hooks run
        doomed.transition(AVAILABLE)
        doomed.transition(DELETING)
    _race((_delete, bank.url, a.id, str(tree)), (_delete, bank.url, b.id, str(tree)))
    assert fs.verify_resource(c, directory(tree), {})["chunks"] > 0
    needed = set(fs.manifest_chunks(fs.read_manifest(
        c.get_resource_bank_section(directory(tree)), directory(tree))))
    assert {k.rsplit("/", 1)[1] for k in bank.list_objects("chunks/")} == needed
    assert count_objects(bank, "locks/") == 0


@pytest.mark.slow  # processes racing
@pytest.mark.parametrize(("params", "chunks"), [
    ({"chunk_size": CHUNK}, 200),  # one per file (each file: three equal pieces)
    ({"chunk_size": 65536, "pack_size": 50_000}, 40),  # packs of five files
])
def test_delete_racing_a_protect_of_the_same_data(
        tmp_path: Path, params: dict[str, int], chunks: int) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    tree = tmp_path / "src"
    _make_tree(tree, 200, 2)
    old, new = new_checkpoint(bank), new_checkpoint(bank)
    fs.protect_tree(old, directory(tree), params)
    bank.delete_object(fs.latest_key(directory(tree)))  # make the protect read every file
    _race((_delete, bank.url, old.id, str(tree)),
          (_protect, bank.url, new.id, str(tree), params))
    assert fs.verify_resource(new, directory(tree), {})["chunks"] == chunks


def test_a_reader_gives_each_thread_its_own_buffers(tmp_path: Path) -> None:
    """Many threads reading through one reader each get their own chunk's
    bytes (the buffers are per thread), and a damaged chunk is reported and
    marked bad as a plain read does."""
    bank = Bank(tmp_path / "bank", fsync=False)
    store = ChunkStore(bank, "owner")
    chunks = {}
    for i in range(16):
        data = os.urandom(4096 + i * 70_000)
        chunks[store.chunk_id(data)] = data
        store.add(store.chunk_id(data), data)
    read = store.reader()
    wrong: list[str] = []

    def check(digest: str) -> None:
        for _ in range(20):
            if bytes(read(digest)) != chunks[digest]:
                wrong.append(digest)

    threads = [threading.Thread(target=check, args=(d,)) for d in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
    bad = next(iter(chunks))
    sealed = bytearray(bank.backend.read(chunk_key(bad)))
    sealed[40] ^= 0x01
    bank.backend.write(chunk_key(bad), (bytes(sealed),))
    with pytest.raises(ChunkError, match=f"chunk {bad} .* is corrupt"):
        read(bad)
    assert store.known_bad(bad)
    bank.delete_object(chunk_key(bad))
    with pytest.raises(ChunkError, match=f"chunk {bad} is missing"):
        read(bad)
