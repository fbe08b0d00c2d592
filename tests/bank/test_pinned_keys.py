"""What the bank's keys promise, pinned: fresh nonces, one key per purpose,
password entries asking only for the scrypt costs protectflow writes, a config
bound to its key by its MAC, and the order passwords are looked for in.

Every bank here is opened through the public surface (``Bank``, ``keys``, the
command); a bank folder copied elsewhere is opened afresh, as another machine
would open it (no key unlocked by this process is reused for a new URL).
"""

from __future__ import annotations

import base64
import hmac
import json
import pickle
import shutil
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protectflow import cli
from protectflow.bank import Bank
from protectflow.bank.objects import keys
from protectflow.errors import BankError, BankLockedError, ProtectflowWarning

PASSWORD = "correct horse battery staple"
#: The clear header of a sealed object, then its nonce (see the bank's format).
HEADER, NONCE = 6, 12


@pytest.fixture(autouse=True)
def _no_password_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    monkeypatch.delenv("PROTECTFLOW_PASSWORD_FILE", raising=False)


def _locked_bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bank whose key is wrapped by :data:`PASSWORD` (no key file), holding ``a``."""
    with monkeypatch.context() as m:
        m.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
        bank = Bank(tmp_path / "bank", fsync=False)
        bank.update_object("a", b"x")
    return Path(bank.url)


def _copy(bank: Path, name: str) -> Path:
    """The bank folder copied to a new place: a URL nothing has unlocked yet."""
    copy = bank.parent / name
    shutil.copytree(bank, copy)
    return copy


def _entry(bank: Path) -> Path:
    (entry,) = (bank / "keys").iterdir()
    return entry


def _nonce(sealed: bytes) -> bytes:
    return sealed[HEADER:HEADER + NONCE]


# -- nonces and keys ------------------------------------------------------------------
def test_no_two_seals_under_one_key_share_a_nonce(tmp_path: Path) -> None:
    """Rewrites of one object, the same bytes under other names, and writes
    from a copy of the bank shipped to another process (a dask worker's):
    each seal has a nonce of its own."""
    bank = Bank(tmp_path / "bank", fsync=False)
    nonces = []
    for _ in range(8):  # the same object rewritten with the same value
        bank.update_object("data/same", b"same bytes")
        nonces.append(_nonce(bank.backend.read("data/same")))
    for i in range(8):  # the same value under other names
        bank.update_object(f"data/other-{i}", b"same bytes")
        nonces.append(_nonce(bank.backend.read(f"data/other-{i}")))
    shipped = pickle.loads(pickle.dumps(bank))  # the keys travel, not the master key
    for _ in range(8):
        shipped.update_object("data/same", b"same bytes")
        nonces.append(_nonce(shipped.backend.read("data/same")))
    assert len(set(nonces)) == len(nonces) == 24
    assert bank.get_object("data/same") == b"same bytes"


def test_chunks_are_named_under_a_key_of_their_own(tmp_path: Path) -> None:
    """The key that names chunks is neither the key that seals objects nor
    the one that authenticates the config (nor the master key)."""
    bank = Bank(tmp_path / "bank", fsync=False)
    bank.update_object("data/x", b"sealed")
    # A keyring ships as its derived keys (what a dask worker is sent).
    shipped = bank.keyring.__reduce__()[1]
    encryption, naming, mac, _ = cast(tuple[bytes, bytes, bytes, str], shipped)
    sealed = bank.backend.read("data/x")
    payload = AESGCM(encryption).decrypt(_nonce(sealed), sealed[HEADER + NONCE:],
                                         sealed[:HEADER] + b"data/x")
    assert payload == b"sealed"  # it is the encryption key
    data = b"the bytes of a chunk"
    assert bank.keyring.chunk_id(data) == hmac.digest(naming, data, "sha256").hex()
    assert bank.keyring.chunk_id(data) != hmac.digest(encryption, data, "sha256").hex()
    exported = tmp_path / "bank.key"
    keys.export_key(bank, str(exported))
    master = base64.b64decode(json.loads(exported.read_text())["master_key"])
    assert len({master, encryption, naming, mac}) == 4


# -- password entries -------------------------------------------------------------------
# Costs above the bounds are kept small otherwise (n=2^14, r=1), so that a
# broken check costs a test run a few hundred MiB, not gigabytes.
@pytest.mark.parametrize("costs", [
    pytest.param({"n": 1 << 10}, id="n-below"),  # far cheaper than protectflow writes
    pytest.param({"n": (1 << 15) + 1}, id="n-not-a-power-of-2"),  # scrypt would fail
    pytest.param({"n": 1 << 21, "r": 1}, id="n-above"),
    pytest.param({"n": 1 << 14, "r": 33}, id="r-above"),
    pytest.param({"n": 1 << 14, "r": 1, "p": 17}, id="p-above"),
    pytest.param({"n": "32768"}, id="n-a-string"),
    pytest.param({"n": 32768.0}, id="n-a-float"),
    pytest.param({"n": True}, id="n-a-bool"),
    pytest.param({"n": 1e400}, id="n-infinite"),  # JSON's way to say infinity
    pytest.param({"r": None}, id="r-null"),
])
def test_a_password_entry_asking_for_other_scrypt_costs_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, costs: dict[str, Any]) -> None:
    bank = _locked_bank(tmp_path, monkeypatch)
    forged = _copy(bank, "forged")
    entry = json.loads(_entry(forged).read_text())
    entry.update(costs)
    # Written as text: 1e400 must reach the reader as JSON has it.
    _entry(forged).write_text(json.dumps(entry).replace("Infinity", "1e400"))
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
    # Refused as unusable before any scrypt work: the unlock warns naming the
    # entry and then finds no entry the password opens.
    with pytest.warns(ProtectflowWarning, match=r"keys/\S+ .* is unusable"), \
            pytest.raises(BankLockedError, match="wrong password") as refused:
        Bank(forged).get_object("a")
    assert refused.value.problem == BankLockedError.WRONG
    assert Bank(_copy(bank, "intact")).get_object("a") == b"x"  # the right password


# -- the config's MAC ----------------------------------------------------------------------
def test_an_edited_config_is_refused(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    bank.update_object("a", b"x")
    config = Path(bank.url) / "config"
    data = json.loads(config.read_text())
    data["created_at"] = "2000-01-01T00:00:00.000000Z"
    config.write_text(json.dumps(data))
    with pytest.raises(BankError, match="does not match its config"):
        Bank(_copy(Path(bank.url), "edited")).get_object("a")


def test_a_key_of_another_bank_under_this_banks_id_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The key file names the right bank id but holds another bank's key:
    the config's MAC says so before any object is read, and `key import`
    installs nothing."""
    mine, other = Bank(tmp_path / "mine", fsync=False), Bank(tmp_path / "other", fsync=False)
    mine.update_object("a", b"x")
    other.update_object("a", b"y")
    info = keys.show_fingerprint(mine)
    assert info.key_file is not None
    exported = tmp_path / "other.key"
    keys.export_key(other, str(exported))
    forged = json.loads(exported.read_text()) | {"bank": info.bank_id}
    exported.write_text(json.dumps(forged))
    copy = Bank(_copy(Path(mine.url), "copy"))
    key_file = Path(info.key_file)
    good = key_file.read_bytes()
    key_file.unlink()  # this machine has no key for the bank: import one
    with pytest.raises(BankError, match="does not match its config"):
        keys.import_key(copy, str(exported))
    assert not key_file.exists()
    key_file.write_text(json.dumps(forged))  # planted by hand instead
    key_file.chmod(0o600)
    assert cli.main(["key", "show", "--bank", str(_copy(Path(mine.url), "c2"))]) == 2
    assert "does not match its config" in capsys.readouterr().err
    key_file.write_bytes(good)
    assert Bank(_copy(Path(mine.url), "c3")).get_object("a") == b"x"


# -- where the password comes from ------------------------------------------------------------
@pytest.mark.parametrize(("from_file", "from_env", "opens"), [
    (PASSWORD, "not the password", True),   # --password-file comes first
    ("not the password", PASSWORD, False),  # ... even when the environment's is right
])
def test_password_file_comes_before_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        from_file: str, from_env: str, opens: bool) -> None:
    bank = _locked_bank(tmp_path, monkeypatch)
    password_file = tmp_path / "password"
    password_file.write_text(from_file + "\n")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", from_env)
    code = cli.main(["key", "show", "--bank", str(_copy(bank, "copy")),
                     "--password-file", str(password_file)])
    assert code == (0 if opens else 2)
    assert ("wrong password" in capsys.readouterr().err) is not opens
    library = Bank(_copy(bank, "library"), password_file=password_file)
    if opens:
        assert library.get_object("a") == b"x"
    else:
        with pytest.raises(BankError, match="wrong password"):
            library.get_object("a")


def test_the_environments_password_comes_before_its_password_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bank = _locked_bank(tmp_path, monkeypatch)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", str(wrong))
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
    assert Bank(_copy(bank, "first")).get_object("a") == b"x"
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    with pytest.raises(BankError, match="wrong password"):
        Bank(_copy(bank, "second")).get_object("a")


def test_the_command_takes_the_environments_password_before_a_password_file_not_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the README orders them: --password-file, $PROTECTFLOW_PASSWORD, then
    the file $PROTECTFLOW_PASSWORD_FILE (or the config file) names."""
    bank = _locked_bank(tmp_path, monkeypatch)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    config = tmp_path / "config.toml"
    config.write_text(f'password_file = "{wrong}"\n')
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", str(wrong))
    assert cli.main(["key", "show", "--bank", str(_copy(bank, "env-file"))]) == 0
    monkeypatch.delenv("PROTECTFLOW_PASSWORD_FILE")
    monkeypatch.setenv("PROTECTFLOW_CONFIG", str(config))
    assert cli.main(["key", "show", "--bank", str(_copy(bank, "config-file"))]) == 0
