"""Files the user names for a key or a password (``--password-file FILE``,
``key import FILE``) must be regular files of bounded size: a FIFO hangs
nothing, ``/dev/zero`` is not read without end, a folder or a huge file is
refused with a message -- and a wrong password or a missing key is said as
such, never taken for a corrupt checkpoint."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects import keys
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph

PASSWORD = "s3cret words"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE",
                 "PROTECTFLOW_NEW_PASSWORD", "PROTECTFLOW_BANK", "PROTECTFLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Bank, str]:
    """A bank locked by PASSWORD, holding one checkpoint; its id."""
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
    bank = Bank(tmp_path / "bank")
    cp = CheckpointStore(bank).create(Plan("p", ()), ResourceGraph({}, {}), "f", "me")
    cp.transition("available")
    cp.release()
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    keystore.forget_unlocked()
    return bank, cp.id


def not_regular(kind: str, tmp_path: Path) -> str:
    """A path that is no regular file: a FIFO nobody writes, a device, a folder."""
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return str(path)
    if kind == "folder":
        return str(tmp_path)
    return "/dev/zero"


KINDS = {"fifo": "a FIFO", "zero": "a character device", "folder": "a folder"}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_password_file_that_is_not_a_regular_file_is_refused(
        locked: tuple[Bank, str], tmp_path: Path, kind: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    bank, _ = locked
    path = not_regular(kind, tmp_path)
    code = cli.main(["checkpoints", "list", "--bank", bank.url, "--password-file", path])
    assert code == 2
    err = capsys.readouterr().err
    assert f"refusing the password file {path}: it is {KINDS[kind]}, not a regular file" in err


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_password_file_variable_is_held_to_the_same(
        locked: tuple[Bank, str], tmp_path: Path, kind: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bank, _ = locked
    monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", not_regular(kind, tmp_path))
    assert cli.main(["checkpoints", "list", "--bank", bank.url]) == 2
    assert f"it is {KINDS[kind]}, not a regular file" in capsys.readouterr().err


def test_a_password_file_too_large_is_refused(locked: tuple[Bank, str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bank, _ = locked
    big = tmp_path / "big"
    big.write_text(PASSWORD + "\n" + "x" * 10_000)
    assert cli.main(["checkpoints", "list", "--bank", bank.url, "--password-file",
                     str(big)]) == 2
    assert f"refusing the password file {big}: it holds more than 4096 bytes" in \
        capsys.readouterr().err


def test_a_password_file_through_a_symlink_is_read(locked: tuple[Bank, str],
                                                  tmp_path: Path) -> None:
    bank, _ = locked
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "link").symlink_to(tmp_path / "pw")  # the user's own choice
    assert cli.main(["checkpoints", "list", "--bank", bank.url, "--password-file",
                     str(tmp_path / "link"), "-q"]) == 0


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_key_import_refuses_what_is_not_a_regular_file(
        tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    path = not_regular(kind, tmp_path)
    assert cli.main(["key", "import", path, "--bank", bank.url]) == 2
    assert f"refusing the key file {path}: it is {KINDS[kind]}" in capsys.readouterr().err


def test_key_import_refuses_a_huge_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    exported = tmp_path / "k"
    keys.export_key(bank, str(exported))
    with exported.open("a") as f:
        f.write(" " * (1 << 20))
    assert cli.main(["key", "import", str(exported), "--bank", bank.url]) == 2
    assert "it holds more than 65536 bytes" in capsys.readouterr().err


def test_an_export_never_writes_through_a_symlink(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "out.key").symlink_to(victim)
    assert cli.main(["key", "export", str(tmp_path / "out.key"), "--bank", bank.url]) == 2
    assert victim.read_text() == "keep me"
    keys.export_key(bank, str(tmp_path / "fresh.key"))
    assert stat.S_IMODE((tmp_path / "fresh.key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


# -- a key problem is said as such ---------------------------------------------------
COMMANDS = [["checkpoints", "show", "{id}"], ["checkpoints", "list"],
            ["restore", "{id}", "--target", "{tmp}/r"], ["verify", "{id}"],
            ["delete", "{id}"], ["resume", "{id}"], ["copy", "{id}", "--to", "{tmp}/other"],
            ["checkpoints", "gc"], ["key", "show"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_a_wrong_password_is_said_as_such(
        locked: tuple[Bank, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    bank, checkpoint_id = locked
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "typo")
    args = [a.format(id=checkpoint_id, tmp=tmp_path) for a in argv]
    assert cli.main([*args, "--bank", bank.url]) == 2
    err = capsys.readouterr().err
    assert "wrong password for bank" in err
    assert "corrupt" not in err and "remove the folder" not in err


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_a_missing_key_is_said_as_such(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    bank = Bank(tmp_path / "bank")
    cp = CheckpointStore(bank).create(Plan("p", ()), ResourceGraph({}, {}), "f", "me")
    cp.transition("available")
    cp.release()
    os.unlink(keys.show_fingerprint(bank).key_file or "")
    keystore.forget_unlocked()
    args = [a.format(id=cp.id, tmp=tmp_path) for a in argv]
    assert cli.main([*args, "--bank", bank.url]) == 2
    err = capsys.readouterr().err
    assert "no key for bank" in err and "key import" in err
    assert "corrupt" not in err and "remove the folder" not in err
