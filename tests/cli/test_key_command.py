"""``protectflow key``: show, add-password, export and import as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects import keys


@pytest.fixture(autouse=True)
def _fresh_unlocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    monkeypatch.delenv("PROTECTFLOW_PASSWORD_FILE", raising=False)
    keystore.forget_unlocked()


def test_the_key_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")

    def run(*argv: str) -> int:
        return cli.main(["key", *argv, "--bank", bank.url])

    assert run("show", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["fingerprint"] == bank.keyring.fingerprint
    monkeypatch.setenv("PROTECTFLOW_NEW_PASSWORD", "pw")
    assert run("add-password") == 0
    assert len(keys.show_fingerprint(bank).passwords) == 1
    assert run("export", str(tmp_path / "k")) == 0
    assert run("import", str(tmp_path / "k")) == 0  # the same key: nothing changes
    assert shown["fingerprint"] in capsys.readouterr().out
    # exporting onto an existing file is refused, exit 2, the file unchanged
    before = (tmp_path / "k").read_bytes()
    assert run("export", str(tmp_path / "k")) == 2
    assert "give a new file" in capsys.readouterr().err
    assert (tmp_path / "k").read_bytes() == before


def test_key_show_of_no_bank_is_a_clear_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["key", "show", "--bank", str(tmp_path / "none")]) == 2
    assert "there is no bank at" in capsys.readouterr().err
