"""``copy --to`` the checkpoint's own bank under another name (a symlink to its
folder, a path through a symlinked parent) is recognised as the same bank and
refused, with no second checkpoint made; a bank copied whole (same id, another
folder) is another bank and takes the copy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.objects import _keystore as keystore

FS = "protectflow::fs::Directory"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


@pytest.fixture
def protected(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("hello\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"name": "p", "resources": [
        {"type": FS, "id": "data", "extra_info": {"path": str(data)}}]}))
    bank = tmp_path / "bank"
    assert cli.main(["protect", str(plan), "--bank", str(bank), "-q"]) == 0
    keystore.forget_unlocked()
    return bank, CheckpointStore(Bank(bank)).list()[0].id


def _count(bank: Path) -> int:
    keystore.forget_unlocked()
    return len(CheckpointStore(Bank(bank)).list(limit=None))


@pytest.mark.parametrize("alias", ["symlink", "parent-symlink"])
def test_copy_to_the_same_bank_under_another_name_is_refused(
        protected: tuple[Path, str], tmp_path: Path, alias: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    bank, cp = protected
    if alias == "symlink":
        to = tmp_path / "alias"
        to.symlink_to(bank)
    else:
        (tmp_path / "up").symlink_to(tmp_path)
        to = tmp_path / "up" / "bank"
    capsys.readouterr()
    code = cli.main(["copy", cp, "--bank", str(bank), "--to", str(to)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"is checkpoint {cp}'s own bank" in err and "give another bank with --to" in err
    assert _count(bank) == 1
    keystore.forget_unlocked()
    assert CheckpointStore(Bank(bank)).get(cp).status == "available"


def test_a_bank_copied_whole_is_another_bank(protected: tuple[Path, str],
                                            tmp_path: Path) -> None:
    bank, cp = protected
    twin = tmp_path / "twin"
    shutil.copytree(bank, twin)
    assert cli.main(["copy", cp, "--bank", str(bank), "--to", str(twin), "-q"]) == 0
    assert _count(twin) == 2 and _count(bank) == 1


def test_same_bank_on_an_object_store_is_told_by_its_id() -> None:
    one = Bank("memory://pf-same/bank")
    one.update_object("x", "y")
    assert one.same_bank(Bank("memory://pf-same/bank"))
    assert one.same_bank(Bank("memory:///pf-same/bank"))  # another spelling of the URL
    other = Bank("memory://pf-same/other")
    other.update_object("x", "y")
    assert not one.same_bank(other)
