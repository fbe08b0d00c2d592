"""The encrypted bank from the command line: ``verify`` at both depths, and
where the password comes from (``--password-file``), with clear errors and
exit 2 when the key is missing or the password wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects import keys
from protectflow.cli import results
from tests.plugins.plugin_helpers import make_shop

PASSWORD = "a long and secret password"


@pytest.fixture(autouse=True)
def _own_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own key folder (some delete a key file) and no password
    from the environment; nothing unlocked by an earlier test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    monkeypatch.delenv("PROTECTFLOW_PASSWORD_FILE", raising=False)
    keystore.forget_unlocked()


def _protect(tmp_path: Path, *argv: str) -> tuple[str, Path]:
    """Protect the shop with the CLI; the checkpoint id and the bank folder."""
    plan = make_shop.make_shop(str(tmp_path / "shop"))
    bank = tmp_path / "bank"
    assert cli.main(["protect", plan, "--bank", str(bank), "--executor", "serial",
                     *argv]) == 0
    keystore.forget_unlocked()  # what follows opens the bank as a new process would
    return operations.open_store(Bank(bank, password_file=_good(tmp_path))).list()[0].id, bank


def _good(tmp_path: Path) -> str:
    path = tmp_path / "password"
    if not path.exists():
        path.write_text(PASSWORD + "\n")
    return str(path)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def test_verify_metadata_only_reports_every_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cid, bank = _protect(tmp_path)
    verify = ["verify", cid, "--bank", str(bank), "--metadata-only"]
    assert cli.main(verify) == 0
    assert "metadata check passed" in capsys.readouterr().out
    resources = bank / "checkpoints" / cid / "data" / "resources"
    _flip_last_byte(resources / "protectflow::fs::Directory#uploads" / "manifest")
    _flip_last_byte(resources / "protectflow::sqlite::Database#orders" / "manifest")
    chunk = sorted((bank / "chunks").rglob("*"))[-1]
    chunk.unlink()
    before = _files(bank)
    assert cli.main(verify) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 3, out
    assert sum("Directory#uploads/manifest" in p for p in problems) == 1
    assert sum("Database#orders/manifest" in p for p in problems) == 1
    assert sum(chunk.name in p and "missing" in p for p in problems) == 1
    assert cli.main([*verify, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert results.check("check", document) == []
    assert document["ok"] is False and len(document["problems"]) == 3
    assert _files(bank) == before  # a metadata check writes nothing


def test_verify_runs_the_metadata_check_then_the_hooks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cid, bank = _protect(tmp_path)
    verify = ["verify", cid, "--bank", str(bank), "--executor", "serial"]
    assert cli.main(verify) == 0
    capsys.readouterr()
    # An object no verify hook reads: only the metadata check can see it.
    freeze = bank / "checkpoints" / cid / "data" / "resources" / \
        "protectflow::app::Application#shop" / "freeze"
    _flip_last_byte(freeze)
    assert cli.main(verify) == 1
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("problem: ")] == [
        line for line in out.splitlines() if "Application#shop/freeze" in line]
    result = operations.verify(cid, bank=str(bank), executor="serial")
    assert not result.ok and len(result.problems) == 1


def test_password_file_opens_a_locked_bank(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cid, bank = _protect(tmp_path, "--password-file", _good(tmp_path))
    info = keys.show_fingerprint(Bank(bank, password_file=_good(tmp_path)))
    assert info.key_file is None and len(info.passwords) == 1  # the key is only in the bank
    keystore.forget_unlocked()
    assert cli.main(["verify", cid, "--bank", str(bank), "--metadata-only",
                     "--password-file", _good(tmp_path)]) == 0
    assert cli.main(["checkpoints", "--bank", str(bank), "list",
                     "--password-file", _good(tmp_path), "--json"]) == 0
    assert cid in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--password-file", "WRONG"], "wrong password for bank"),
    (["--password-file", "MISSING"], "cannot read the password file"),
    ([], "is locked by a password"),
])
def test_a_locked_bank_without_its_password_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    cid, bank = _protect(tmp_path, "--password-file", _good(tmp_path))
    (tmp_path / "wrong").write_text("not the password\n")
    argv = [{"WRONG": str(tmp_path / "wrong"), "MISSING": str(tmp_path / "nope")}.get(a, a)
            for a in argv]
    before = _files(bank)
    for command in (["checkpoints", "list"], ["verify", cid], ["restore", cid, "--target",
                                                                str(tmp_path / "out")]):
        keystore.forget_unlocked()
        assert cli.main([*command, "--bank", str(bank), *argv]) == 2, command
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (command, err)
    assert _files(bank) == before
    assert not (tmp_path / "out").exists()


def test_a_bank_whose_key_file_is_gone_exits_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cid, bank = _protect(tmp_path)
    key_files = list((tmp_path / "config").rglob("*.key"))
    assert len(key_files) == 1
    key_files[0].unlink()
    for command in (["checkpoints", "show", cid], ["verify", cid, "--metadata-only"],
                    ["delete", cid]):
        keystore.forget_unlocked()
        assert cli.main([*command, "--bank", str(bank)]) == 2, command
        assert "no key for bank" in capsys.readouterr().err
    assert operations.open_store(bank).bank.has_object(f"checkpoints/{cid}/record")
