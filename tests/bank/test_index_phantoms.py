"""Files dropped into ``index/`` by someone who can write the bank: never a
phantom checkpoint in a listing, and ``reindex`` and ``gc`` remove them and say
so, leaving every real checkpoint's entries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.dag import Plan
from tests.bank.bank_helpers import NO_GRAPH

#: What an attacker drops, relative to the bank (a real marker is copied too).
PLANTED = (
    "index/by-date/2026/01/01/notes.txt",
    "index/by-date/2026/01/01/120000000000-" + "d" * 32,
    "index/by-date/junk",
    "index/by-plan/p/2026/01/01/120000000000-" + "e" * 32,
    "index/in-progress/" + "f" * 32,
)


@pytest.fixture
def planted(tmp_path: Path) -> tuple[CheckpointStore, list[str]]:
    bank = Bank(tmp_path / "bank", fsync=False)
    store = CheckpointStore(bank)
    ids = []
    for _ in range(2):
        cp = store.create(Plan("p", ()), NO_GRAPH, "f", "me")
        cp.transition("available")
        cp.release()
        ids.append(cp.id)
    root = Path(bank.url)
    real_marker = next((root / "index" / "by-date").rglob(f"*-{ids[0]}"))
    for rel in PLANTED:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith("index/by-date/2026"):
            shutil.copy(real_marker, path)  # an authentic marker, under a name of no checkpoint
        else:
            path.write_bytes(b"anything at all")
    return store, ids


def _remaining(store: CheckpointStore) -> set[str]:
    root = Path(store.bank.url)
    return {str(p.relative_to(root)) for p in (root / "index").rglob("*") if p.is_file()}


def test_a_listing_shows_no_phantom(planted: tuple[CheckpointStore, list[str]]) -> None:
    store, ids = planted
    assert sorted(c.id for c in store.list()) == sorted(ids)
    assert sorted(c.id for c in store.list(plan="p")) == sorted(ids)
    assert [c.id for c in store.list(limit=1)] == [store.list()[0].id]


def test_the_cli_lists_no_phantom_checkpoint(planted: tuple[CheckpointStore, list[str]],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = planted
    assert cli.main(["checkpoints", "list", "--bank", store.bank.url]) == 0
    out = capsys.readouterr().out.replace(store.bank.url, "BANK")
    assert "corrupt" not in out
    assert all(i in out for i in ids) and "d" * 32 not in out


def test_reindex_removes_them_and_says_so(planted: tuple[CheckpointStore, list[str]],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = planted
    before = _remaining(store)
    assert cli.main(["checkpoints", "reindex", "--bank", store.bank.url]) == 0
    out = capsys.readouterr().out
    assert f"{len(PLANTED)} index entr(ies) removed: they named no checkpoint" in out
    assert all(rel in out for rel in PLANTED)
    assert _remaining(store) == before - set(PLANTED)
    assert sorted(c.id for c in store.list()) == sorted(ids)


def test_gc_removes_them_and_says_so(planted: tuple[CheckpointStore, list[str]],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = planted
    assert cli.main(["checkpoints", "gc", "--bank", store.bank.url]) == 0
    out = capsys.readouterr().out
    assert f"{len(PLANTED)} index entr(ies) removed" in out
    assert not set(PLANTED) & _remaining(store)
    assert sorted(c.id for c in store.list(plan="p")) == sorted(ids)


def test_an_entry_of_a_real_checkpoint_under_another_time_is_stray(tmp_path: Path) -> None:
    store = CheckpointStore(Bank(tmp_path / "bank", fsync=False))
    cp = store.create(Plan("p", ()), NO_GRAPH, "f", "me")
    cp.transition("available")
    cp.release()
    root = Path(store.bank.url)
    real = next((root / "index" / "by-date").rglob(f"*-{cp.id}"))
    moved = root / "index" / "by-date" / "1999" / "01" / "01" / f"000000000000-{cp.id}"
    moved.parent.mkdir(parents=True)
    shutil.copy(real, moved)
    assert [c.id for c in store.list()] == [cp.id]  # shown once
    assert store.prune_index() == [f"index/by-date/1999/01/01/000000000000-{cp.id}"]
    assert real.exists()


def test_a_checkpoint_whose_record_is_damaged_keeps_its_entries(
        planted: tuple[CheckpointStore, list[str]]) -> None:
    """Damage is shown, not hidden: reindex and gc remove only what names no
    checkpoint, never the entries of a real one whose record does not read."""
    store, ids = planted
    record = Path(store.bank.url) / "checkpoints" / ids[0] / "record"
    data = bytearray(record.read_bytes())
    data[len(data) // 2] ^= 1
    record.write_bytes(bytes(data))
    assert sorted(store.prune_index()) == sorted(PLANTED)
    assert store.prune_index(thorough=False) == []
    assert sorted(c.id for c in store.list()) == sorted(ids)
