"""``protectflow key rotate`` killed (SIGKILL) at every step it makes
durable, and in the middle of its writes: every other command then refuses
the bank and says to run ``key rotate``; run again, it finishes, every
checkpoint restores exactly and verifies, and the old key opens nothing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli
from protectflow.bank import Bank
from protectflow.bank.objects import _keystore as keystore
from tests.bank.rotation_helpers import opens_anything, protect_twice, restores_exactly
from tests.scripts import ROOT

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK",
                 "PROTECTFLOW_NEW_PASSWORD", "PROTECTFLOW_FAULTS"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A bank of two checkpoints with its key file, made once; each test copies it."""
    root = tmp_path_factory.mktemp("rotate-template")
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(root / "config")
    try:
        _, held = protect_twice(root)
    finally:
        os.environ["XDG_CONFIG_HOME"] = old or ""
    yield root, held


def copy_of(template: tuple[Path, Any], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """The template's bank and key folder, copied; the bank, and its old key."""
    root, _ = template
    shutil.copytree(root / "bank", tmp_path / "bank")
    shutil.copytree(root / "config", tmp_path / "config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (key,) = (tmp_path / "config" / "protectflow" / "keys").iterdir()
    return tmp_path / "bank", base64.b64decode(json.loads(key.read_text())["master_key"])


def rotate(bank: Path, *, faults: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``protectflow key rotate`` in a process of its own."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    if faults:
        full["PROTECTFLOW_FAULTS"] = faults
    return subprocess.run([sys.executable, "-m", "protectflow.cli", "key", "rotate", "--bank",
                           str(bank)], env=full, capture_output=True, text=True, check=False)


def finish_and_check(bank: Path, held: dict[str, Any], old_master: bytes, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str], **env: str) -> None:
    """After a kill: the bank refused to others while marked; rotate again
    (it finishes what was sealed, or starts afresh); all restores."""
    marked = (bank / "rotation").exists()
    sealed = (bank / "rotating" / "state").exists()
    keystore.forget_unlocked()
    code = cli.main(["checkpoints", "list", "--bank", str(bank)])
    err = capsys.readouterr().err
    if marked:
        assert code == 2 and "in the middle of a key rotation" in err, err
        assert f"`protectflow key rotate --bank {bank}`" in err
    else:  # killed before its mark: nothing happened to the bank
        assert code == 0 and not sealed, err
    done = rotate(bank, **env)
    assert done.returncode == 0, done.stderr
    assert ("finished the interrupted key rotation" in done.stdout) == sealed, done.stdout
    restores_exactly(bank, held, tmp_path / "restored")
    assert opens_anything(old_master, Bank(bank)) == []
    assert not (bank / "rotation").exists() and not (bank / "rotating").exists()


@pytest.mark.parametrize("step", range(1, 12))
def test_killed_after_any_step_it_finishes_when_run_again(
        template: tuple[Path, dict[str, Any]], tmp_path: Path, step: int,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bank, old_master = copy_of(template, tmp_path, monkeypatch)
    done = rotate(bank, faults=f"kill-rotate-after-steps={step}")
    killed = done.returncode == -signal.SIGKILL
    assert killed or done.returncode == 0, done.stderr
    if step <= 8:  # a rotation of this bank makes more steps than that
        assert killed and (bank / "rotating" / "state").exists()
    if killed:
        finish_and_check(bank, template[1], old_master, tmp_path, capsys)


@pytest.mark.parametrize("budget", [150, 600, 5_000, 40_000, 150_000])
def test_killed_in_the_middle_of_a_write_it_finishes_when_run_again(
        template: tuple[Path, dict[str, Any]], tmp_path: Path, budget: int,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bank, old_master = copy_of(template, tmp_path, monkeypatch)
    done = rotate(bank, faults=f"kill-mid-write={budget}")
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    finish_and_check(bank, template[1], old_master, tmp_path, capsys)


@pytest.mark.parametrize("step", [1, 4, 7, 8])
@pytest.mark.parametrize("resume_with", ["both", "new only"])
def test_a_password_bank_killed_finishes_with_the_new_password(
        template: tuple[Path, dict[str, Any]], tmp_path: Path, step: int, resume_with: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bank, old_master = copy_of(template, tmp_path, monkeypatch)
    monkeypatch.setenv("PROTECTFLOW_NEW_PASSWORD", "first password")
    assert cli.main(["key", "add-password", "--bank", str(bank)]) == 0
    shutil.rmtree(tmp_path / "config" / "protectflow" / "keys")  # the password alone opens it
    env = {"PROTECTFLOW_PASSWORD": "first password", "PROTECTFLOW_NEW_PASSWORD": "second"}
    monkeypatch.delenv("PROTECTFLOW_NEW_PASSWORD")
    done = rotate(bank, faults=f"kill-rotate-after-steps={step}", **env)
    assert done.returncode == -signal.SIGKILL, done.stderr
    if resume_with == "new only":  # the user now gives the new password alone
        env = {"PROTECTFLOW_PASSWORD": "second"}
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "second")  # for the checks in this process
    finish_and_check(bank, template[1], old_master, tmp_path, capsys, **env)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "first password")
    keystore.forget_unlocked()
    assert cli.main(["checkpoints", "list", "--bank", str(bank)]) == 2
    assert "wrong password" in capsys.readouterr().err


def test_without_the_new_password_a_resume_says_what_it_needs(
        template: tuple[Path, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = copy_of(template, tmp_path, monkeypatch)
    monkeypatch.setenv("PROTECTFLOW_NEW_PASSWORD", "first password")
    assert cli.main(["key", "add-password", "--bank", str(bank)]) == 0
    shutil.rmtree(tmp_path / "config" / "protectflow" / "keys")
    done = rotate(bank, faults="kill-rotate-after-steps=3",
                  PROTECTFLOW_PASSWORD="first password", PROTECTFLOW_NEW_PASSWORD="second")
    assert done.returncode == -signal.SIGKILL
    again = rotate(bank, PROTECTFLOW_PASSWORD="first password")
    assert again.returncode == 2
    assert "its new key is not at hand" in again.stderr and "Traceback" not in again.stderr


def test_a_planted_mark_blocks_until_rotate_clears_it_and_prints_no_escape(
        template: tuple[Path, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bank, old_master = copy_of(template, tmp_path, monkeypatch)
    (bank / "rotation").write_text(json.dumps({
        "format": "protectflow-key-rotation", "version": 1, "owner": "evil\x1b[2J\x1b]0;pwned\x07",
        "started_at": "now\r\n", "from": "0000-0000-0000-0000"}))
    assert cli.main(["checkpoints", "list", "--bank", str(bank)]) == 2
    err = capsys.readouterr().err
    assert "in the middle of a key rotation" in err and "\x1b" not in err and "\r" not in err
    done = rotate(bank)
    assert done.returncode == 0, done.stderr
    assert "no key rotation was left to finish" in done.stdout
    assert not (bank / "rotation").exists()
    assert opens_anything(old_master, Bank(bank))  # the key is as it was
    restores_exactly(bank, template[1], tmp_path / "restored")


def test_damage_found_on_the_way_is_named_and_exits_1(
        template: tuple[Path, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = copy_of(template, tmp_path, monkeypatch)
    victim = max(p for p in (bank / "checkpoints").rglob("manifest"))
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0x10
    victim.write_bytes(bytes(data))
    done = rotate(bank)
    assert done.returncode == 1, done.stderr
    assert "rotated the key of bank" in done.stdout
    assert "protectflow: problem: checkpoints/" in done.stderr
    assert "opens under neither the old key nor the new one" in done.stderr
    assert victim.read_bytes() == bytes(data)
