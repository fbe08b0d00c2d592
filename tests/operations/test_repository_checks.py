"""A repository that checks and heals itself (issue 12, item 2), on real folders.

Refs against manifests (a lost ref is reported, repaired, and never lets a
delete take a chunk still named), bad chunks replaced by the next protect,
and the outcome of a verify kept in the record for ``show`` and ``list``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank
from protectflow.compiler import Plan, parse_plan


def tree_plan(tmp_path: Path, name: str = "tree") -> Plan:
    """A plan protecting one folder of a few files (chunked and packed)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "big.bin").write_bytes(os.urandom(600_000))
    (src / "small.txt").write_text("small file\n")
    (src / "other.txt").write_text("another small file\n")
    return parse_plan(f"""\
name: {name}
resources:
  - type: protectflow::fs::Directory
    id: src
    extra_info: {{path: {src}}}
""", source=str(tmp_path / "plan.yaml"))


def bank_files(bank: Bank, top: str) -> list[Path]:
    return sorted(p for p in (Path(bank.url) / top).rglob("*")
                  if p.is_file() and not p.name.startswith(".pftmp-"))


def refs_of(bank: Bank, checkpoint_id: str) -> list[Path]:
    return [p for p in bank_files(bank, "refs") if p.name.startswith(checkpoint_id + "@")]


def restored(tmp_path: Path, bank: Bank, checkpoint_id: str, where: str) -> dict[str, bytes]:
    target = tmp_path / where
    result = operations.restore(checkpoint_id, bank=bank, executor="serial",
                                parameters={"protectflow::fs::Directory": {"target": str(target)}})
    assert result.ok
    return {p.name: p.read_bytes() for p in (target / "src").iterdir()}


def test_lost_refs_are_reported_and_a_delete_of_a_sharing_checkpoint_keeps_the_chunks(
        tmp_path: Path) -> None:
    plan = tree_plan(tmp_path)
    bank = Bank(tmp_path / "bank")
    first = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    second = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    expected = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    lost = refs_of(bank, first)
    assert lost
    for ref in lost:
        ref.unlink()
    found = operations.check(first, bank=bank)
    assert not found.ok
    assert sum("has no ref" in p for p in found.problems) == len(lost)
    assert not operations.verify(first, bank=bank, executor="serial").ok
    # the data-loss case: deleting the checkpoint that still had refs
    assert operations.delete(second, bank=bank, executor="serial").ok
    assert restored(tmp_path, bank, first, "out") == expected
    # the delete gave the still-named chunks their refs back
    assert len(refs_of(bank, first)) == len(lost)
    assert operations.check(first, bank=bank, read_data=True).ok


def test_repair_recreates_the_refs_the_manifests_call_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(tree_plan(tmp_path), bank=bank, executor="serial").checkpoint.id
    lost = refs_of(bank, cid)
    for ref in lost:
        ref.unlink()
    assert cli.main(["checkpoints", "repair", cid, "--bank", bank.url]) == 0
    assert f"{len(lost)} ref(s) re-created" in capsys.readouterr().out
    assert sorted(refs_of(bank, cid)) == sorted(lost)
    assert operations.check(cid, bank=bank).ok
    # a named chunk that is gone cannot be repaired: said, exit 1
    bank_files(bank, "chunks")[0].unlink()
    assert cli.main(["checkpoints", "repair", cid, "--bank", bank.url]) == 1
    assert "is missing from bank" in capsys.readouterr().out


def test_a_rotten_chunk_is_marked_bad_and_replaced_by_the_next_protect(tmp_path: Path) -> None:
    plan = tree_plan(tmp_path)
    bank = Bank(tmp_path / "bank")
    old = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    for chunk in bank_files(bank, "chunks"):  # every chunk rots
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x40
        chunk.write_bytes(bytes(data))
    result = operations.verify(old, bank=bank, executor="serial")
    assert not result.ok
    assert len(bank_files(bank, "bad/chunks")) == len(bank_files(bank, "chunks"))
    # the tree is unchanged: without the bad list this protect would dedup onto rot
    new = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    assert operations.check(new, bank=bank, read_data=True).ok
    assert operations.check(old, bank=bank, read_data=True).ok  # it names the same chunks
    assert not bank_files(bank, "bad/chunks")


def test_a_failed_verify_shows_in_show_and_list(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(tree_plan(tmp_path), bank=bank, executor="serial").checkpoint.id
    assert cli.main(["checkpoints", "show", cid, "--bank", bank.url]) == 0
    assert "never" in capsys.readouterr().out
    assert operations.verify(cid, bank=bank, executor="serial").ok
    verified = operations.open_store(bank).get(cid).record.verification
    assert verified is not None and verified.ok is True and verified.problems == 0
    bank_files(bank, "chunks")[0].unlink()
    assert not operations.verify(cid, bank=bank, executor="serial").ok
    check = operations.open_store(bank).get(cid).record.verification
    assert check is not None and check.ok is False and check.problems >= 1
    assert "missing" in (check.summary or "")
    assert cli.main(["checkpoints", "show", cid, "--bank", bank.url]) == 0
    shown = capsys.readouterr().out
    assert "FAILED" in shown and "missing" in shown
    assert cli.main(["checkpoints", "list", "--bank", bank.url]) == 0
    assert "FAILED" in capsys.readouterr().out
