"""Tags: ``protect --tag``, the plan's ``tags``, ``checkpoints list --tag``,
``checkpoints tag``, kept by ``copy``, and records written before tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.compiler import parse_plan
from protectflow.errors import BankError, CheckpointBusyError

PLAN = """\
name: one-volume
tags: [nightly]
resources:
  - {type: OS::Cinder::Volume, id: v1}
"""


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(str(tmp_path / "bank"))


def _listed(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, list[str]]:
    assert cli.main(["checkpoints", "list", "--json", *args]) == 0
    return {r["id"]: r["tags"] for r in json.loads(capsys.readouterr().out)["checkpoints"]}


def test_protect_tags_list_filters_and_show(bank: Bank, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    for tags in (["pre-upgrade", "x"], ["x"], []):
        words = [w for t in tags for w in ("--tag", t)]
        assert cli.main(["protect", str(plan), "--bank", bank.url, "-q", *words]) == 0
    rows = _listed(capsys, "--bank", bank.url)
    assert sorted(map(tuple, rows.values())) == [("nightly",), ("nightly", "pre-upgrade", "x"),
                                                 ("nightly", "x")]
    assert len(_listed(capsys, "--bank", bank.url, "--tag", "x")) == 2
    assert len(_listed(capsys, "--bank", bank.url, "--tag", "x,pre-upgrade")) == 1
    assert len(_listed(capsys, "--bank", bank.url, "--tag", "pre-upgrade", "--tag",
                       "nope")) == 1
    assert _listed(capsys, "--bank", bank.url, "--tag", "nope") == {}
    both = next(i for i, t in rows.items() if "pre-upgrade" in t)
    assert cli.main(["checkpoints", "show", both, "--bank", bank.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"]["tags"] == [
        "nightly", "pre-upgrade", "x"]
    assert cli.main(["checkpoints", "show", both, "--bank", bank.url]) == 0
    assert "nightly, pre-upgrade, x" in capsys.readouterr().out


def test_a_bad_tag_is_refused_before_anything_is_written(
        bank: Bank, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    assert cli.main(["protect", str(plan), "--bank", bank.url, "--tag", "a,b"]) == 2
    assert "may not hold a comma" in capsys.readouterr().err
    assert not (tmp_path / "bank" / "checkpoints").exists()
    plan.write_text(PLAN.replace("[nightly]", "[' spaced']"))
    assert cli.main(["protect", str(plan), "--bank", bank.url]) == 2
    assert "tags:" in capsys.readouterr().err


def test_checkpoints_tag_adds_and_removes_and_is_refused_while_busy(
        bank: Bank, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = operations.protect(parse_plan(PLAN, source="p"), bank=bank).checkpoint
    assert cli.main(["checkpoints", "tag", checkpoint.id[:8], "--bank", bank.url, "--add",
                     "keep", "--add", "gold", "--remove", "nightly", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == ["gold", "keep"]
    assert CheckpointStore(bank).get(checkpoint.id).tags == ("gold", "keep")
    assert cli.main(["checkpoints", "tag", checkpoint.id, "--bank", bank.url]) == 2
    assert "--add TAG or --remove TAG" in capsys.readouterr().err
    held = CheckpointStore(bank).get(checkpoint.id)
    held.acquire("verify", "someone-else")
    try:
        with pytest.raises(CheckpointBusyError):
            CheckpointStore(bank).get(checkpoint.id).retag("me", add=["x"])
        assert cli.main(["checkpoints", "tag", checkpoint.id, "--bank", bank.url, "--add",
                         "x"]) == 2
        assert "busy" in capsys.readouterr().err
    finally:
        held.release()
    with pytest.raises(BankError, match="comma"):
        CheckpointStore(bank).get(checkpoint.id).retag("me", add=["a,b"])
    assert CheckpointStore(bank).get(checkpoint.id).tags == ("gold", "keep")


def test_copy_keeps_the_tags(bank: Bank, tmp_path: Path) -> None:
    checkpoint = operations.protect(parse_plan(PLAN, source="p"), bank=bank,
                                    tags=["gold"]).checkpoint
    other = Bank(str(tmp_path / "other"))
    copied = operations.copy(checkpoint.id, bank=bank, to=other).target
    assert copied is not None
    assert CheckpointStore(other).get(copied.id).tags == ("gold", "nightly")


def test_a_record_written_before_tags_reads_with_none(bank: Bank) -> None:
    checkpoint = operations.protect(parse_plan(PLAN, source="p"), bank=bank).checkpoint
    key = f"checkpoints/{checkpoint.id}/record"
    old = bank.get_object(key)
    assert old["version"] == 2 and old["tags"] == ["nightly"]
    del old["tags"]
    old["version"] = 1
    bank.update_object(key, old)
    assert CheckpointStore(bank).get(checkpoint.id).tags == ()
    assert CheckpointStore(bank).get(checkpoint.id).record.to_json() == old
    old["version"] = 3
    bank.update_object(key, old)
    with pytest.raises(BankError, match="format 3; this protectflow reads format 1 or 2"):
        CheckpointStore(bank).get(checkpoint.id)
