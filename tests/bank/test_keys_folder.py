"""The keys folder is trusted only when only this user can change it: a real
second user who owns it, or the config folder above it, or a symlink into
their folder, can neither delete a bank's key nor plant one -- protectflow
refuses the folder first, naming it, what is wrong and the fix."""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow.bank import Bank
from protectflow.bank.objects import _keyfiles, keys
from protectflow.bank.objects import _keystore as keystore
from protectflow.cli import main as cli_main
from protectflow.errors import BankLockedError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a second "
                             "local user and act as them")


@pytest.fixture(scope="module")
def other() -> Iterator[pwd.struct_passwd]:
    """A real second local user, made for these tests and removed after them."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second local user")
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("useradd and runuser (util-linux) are needed to act as a second user")
    name = f"pfk{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def as_other(user: pwd.struct_passwd, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as the second user."""
    return subprocess.run(["runuser", "-u", user.pw_name, "--", "/bin/sh", "-c", script],
                          capture_output=True, text=True, check=False, cwd="/")


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config home every local user may write in (sticky, as /tmp), outside
    pytest's own folders (closed to other users): what a shared or
    misconfigured ``$XDG_CONFIG_HOME`` looks like."""
    top = Path(tempfile.mkdtemp(prefix="pf-keys-"))
    os.chmod(top, 0o755)
    config = top / "config"
    config.mkdir()
    os.chmod(config, 0o1777)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    monkeypatch.delenv("PROTECTFLOW_PASSWORD_FILE", raising=False)
    keystore.forget_unlocked()
    yield config
    keystore.forget_unlocked()
    shutil.rmtree(top, ignore_errors=True)


def fresh(bank: Bank) -> Bank:
    """The bank as a new process opens it."""
    keystore.forget_unlocked()
    return Bank(bank.url)


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, a link's target."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = os.readlink(path) if path.is_symlink() else (
            path.read_bytes() if path.is_file() else "dir")
    return out


# -- the folder's own checks (no second user needed) -----------------------------------
def test_a_new_key_folder_is_private_and_the_key_file_0600(shared: Path,
                                                          tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    folder = shared / "protectflow" / "keys"
    for path in (folder, folder.parent):
        assert stat.S_IMODE(path.lstat().st_mode) == 0o700
    (key,) = folder.iterdir()
    assert stat.S_IMODE(key.lstat().st_mode) == 0o600
    assert key.name == keys.show_fingerprint(bank).bank_id + ".key"
    assert [p.name for p in folder.iterdir()] == [key.name]  # no temporary left


@pytest.mark.parametrize("where", ["keys", "protectflow"])
@pytest.mark.parametrize("how", ["group-writable", "world-writable", "symlink", "file"])
def test_an_unsafe_key_folder_is_refused_for_reading_and_writing(
        shared: Path, tmp_path: Path, where: str, how: str) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    key_file = Path(keys.show_fingerprint(bank).key_file or "")
    folder = shared / "protectflow" / "keys" if where == "keys" else shared / "protectflow"
    if how.endswith("writable"):
        folder.chmod(0o770 if how == "group-writable" else 0o777)
        rule = r"others may write to it \(mode 77[07]\); chmod 700 it"
    elif how == "symlink":
        moved = tmp_path / "moved"
        folder.rename(moved)
        folder.symlink_to(moved)
        rule = "it is a symlink; remove it"
    else:
        shutil.rmtree(folder)
        folder.write_text("")
        rule = "it is not a folder; remove it"
    # reading: the bank's key is not read, and the error names the folder
    with pytest.raises(BankLockedError, match=f"refusing the keys folder {folder}: {rule}"):
        fresh(bank).get_object("a")
    # writing: a new bank makes no key there, and no bank
    other = Bank(tmp_path / "other")
    with pytest.raises(BankLockedError, match=f"refusing the keys folder {folder}"):
        other.update_object("a", b"x")
    assert not Path(other.url, "config").exists()
    made = {p.name for p in [*shared.rglob("*.key"), *tmp_path.rglob("*.key")]}
    assert made <= {key_file.name}  # the first bank's, if still there: nothing new


def test_the_cli_names_the_refused_folder_and_exits_2(
        shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    (shared / "protectflow" / "keys").chmod(0o777)
    keystore.forget_unlocked()
    assert cli_main(["checkpoints", "list", "--bank", bank.url]) == 2
    err = capsys.readouterr().err
    assert f"refusing the keys folder {shared}/protectflow/keys: others may write" in err
    assert "Traceback" not in err


def test_a_key_file_that_is_a_symlink_or_too_open_is_refused(shared: Path,
                                                            tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    key_file = Path(keys.show_fingerprint(bank).key_file or "")
    key_file.chmod(0o644)
    with pytest.raises(BankLockedError, match=f"refusing {key_file}: others may read or write "
                                           r"it \(mode 644\); chmod 600 it"):
        fresh(bank).get_object("a")
    key_file.chmod(0o600)
    elsewhere = tmp_path / "elsewhere.key"
    key_file.rename(elsewhere)
    key_file.symlink_to(elsewhere)
    with pytest.raises(BankLockedError, match=f"refusing {key_file}: it is a symlink"):
        fresh(bank).get_object("a")
    key_file.unlink()
    elsewhere.rename(key_file)
    assert fresh(bank).get_object("a") == b"x"


# -- a real second user --------------------------------------------------------------
@as_root
def test_another_user_can_neither_delete_nor_plant_a_key(
        shared: Path, tmp_path: Path, other: pwd.struct_passwd) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    key_file = Path(keys.show_fingerprint(bank).key_file or "")
    before = key_file.read_bytes()
    attempts = {
        "delete": f"rm -f {key_file}",
        "plant": f"echo x > {key_file.parent}/planted.key",
        "swap": f"cp /etc/hostname {key_file}",
        "rename the keys folder": f"mv {key_file.parent} {shared}/stolen",
        "rename the config folder": f"mv {shared}/protectflow {shared}/stolen",
    }
    for what, script in attempts.items():
        done = as_other(other, script)
        assert done.returncode != 0, f"the other user could {what}"
    assert key_file.read_bytes() == before
    assert sorted(p.name for p in key_file.parent.iterdir()) == [key_file.name]
    assert fresh(bank).get_object("a") == b"x"


@as_root
def test_a_config_folder_another_user_made_is_refused(
        shared: Path, tmp_path: Path, other: pwd.struct_passwd) -> None:
    # They made protectflow/keys first in the shared config home (as they may:
    # it is sticky, not closed), with a key of theirs ready in it.
    done = as_other(other, f"mkdir -m 755 {shared}/protectflow && "
                           f"mkdir -m 777 {shared}/protectflow/keys")
    assert done.returncode == 0, done.stderr
    theirs = tree(shared / "protectflow")
    bank = Bank(tmp_path / "bank")
    with pytest.raises(BankLockedError, match=(
            f"refusing the keys folder {shared}/protectflow: it belongs to uid "
            f"{other.pw_uid}, not to you \\(uid 0\\); remove it \\(as its owner\\)")):
        bank.update_object("a", b"x")
    assert tree(shared / "protectflow") == theirs  # no key written into their folder
    assert not Path(bank.url, "config").exists()  # and no bank made without one


@as_root
def test_a_symlink_into_another_users_folder_is_refused_before_any_read(
        shared: Path, tmp_path: Path, other: pwd.struct_passwd) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    bank_id = keys.show_fingerprint(bank).bank_id
    ours = shared / "protectflow" / "keys"
    key = (ours / f"{bank_id}.key").read_bytes()
    # Their folder holds our key (as if it had been written through the link);
    # the link is ours: made by a dotfiles manager, or by us by mistake.
    theirs = Path(tempfile.mkdtemp(prefix="pf-theirs-"))
    try:
        os.chmod(theirs, 0o755)
        (theirs / f"{bank_id}.key").write_bytes(key)
        os.chown(theirs, other.pw_uid, other.pw_gid)
        os.chown(theirs / f"{bank_id}.key", other.pw_uid, other.pw_gid)
        shutil.rmtree(ours)
        ours.symlink_to(theirs)
        with pytest.raises(BankLockedError, match=f"refusing the keys folder {ours}: it is a "
                                               "symlink"):
            fresh(bank).get_object("a")
        # what they do in their folder changes nothing for us: still refused
        done = as_other(other, f"rm {theirs}/{bank_id}.key && echo planted > "
                               f"{theirs}/{bank_id}.key")
        assert done.returncode == 0, done.stderr
        with pytest.raises(BankLockedError, match="it is a symlink"):
            fresh(bank).get_object("a")
        # the folder put right (the key restored from an export), all is well
        ours.unlink()
        _keyfiles.write_key(bank_id, json_key(key), bank.url)
        assert fresh(bank).get_object("a") == b"x"
    finally:
        shutil.rmtree(theirs, ignore_errors=True)


@as_root
def test_a_key_file_another_user_owns_is_refused(
        shared: Path, tmp_path: Path, other: pwd.struct_passwd) -> None:
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"x")
    key_file = Path(keys.show_fingerprint(bank).key_file or "")
    os.chown(key_file, other.pw_uid, other.pw_gid)
    with pytest.raises(BankLockedError, match=f"refusing {key_file}: it belongs to uid "
                                           f"{other.pw_uid}, not to you"):
        fresh(bank).get_object("a")


def json_key(raw: bytes) -> bytes:
    """The master key in a key file's bytes."""
    return base64.b64decode(json.loads(raw)["master_key"])
