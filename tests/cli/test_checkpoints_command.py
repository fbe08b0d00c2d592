"""``protectflow checkpoints``: listing and showing what a bank holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank
from protectflow.compiler import parse_plan

PLAN = """\
name: one-volume
resources:
  - {type: OS::Cinder::Volume, id: v1}
"""


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(str(tmp_path / "bank"))


def test_a_corrupt_record_is_listed_as_corrupt_not_a_reason_to_list_nothing(
        bank: Bank, capsys: pytest.CaptureFixture[str]) -> None:
    plan = parse_plan(PLAN, source="plan.yaml")
    good = operations.protect(plan, bank=bank).checkpoint
    bad = operations.protect(plan, bank=bank).checkpoint
    record = Path(bank.url.removeprefix("file://")) / "checkpoints" / bad.id / "record"
    record.write_bytes(b"\x00garbage")
    assert cli.main(["checkpoints", "list", "--json", "--bank", bank.url]) == 0
    rows = {r["id"]: r["status"] for r in json.loads(capsys.readouterr().out)["checkpoints"]}
    assert rows == {good.id: "available", bad.id: "corrupt"}
    assert cli.main(["checkpoints", "show", bad.id, "--bank", bank.url]) == 2
    assert "corrupt record" in capsys.readouterr().err
