"""operations.check: the metadata check, and the same with every chunk read."""

from __future__ import annotations

from pathlib import Path

from protectflow import operations
from protectflow.bank import Bank
from tests.plugins.plugin_helpers import make_shop


def test_check_at_both_depths(tmp_path: Path) -> None:
    plan = make_shop.make_shop(str(tmp_path / "shop"))
    bank = Bank(tmp_path / "bank")
    cid = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    light = operations.check(cid, bank=bank)
    assert light.ok and light.objects > 0 and light.chunks > 0 and light.bytes_read == 0
    full = operations.check(cid, bank=bank, read_data=True)
    assert full.ok and full.chunks == light.chunks and full.bytes_read > 0
    # a chunk whose bytes were swapped for another chunk's: only reading finds it
    first, second = sorted(p for p in (tmp_path / "bank" / "chunks").rglob("*") if p.is_file())[:2]
    first.write_bytes(second.read_bytes())
    assert operations.check(cid, bank=bank).ok
    problems = operations.check(cid, bank=bank, read_data=True).problems
    assert len(problems) == 1 and first.name in problems[0]
