"""Password entries are no denial-of-service surface, and a password is the
same text whether it comes from the environment or a file.

Whoever can write the bank can plant entries: expensive ones (the highest
scrypt cost a reader would accept), malformed ones, wrong ones. Unlocking
still opens with the right password, runs scrypt at protectflow's own cost
only, at most once per entry it tries and never more than 32 times, and
says which entries it skipped, without a traceback. scrypt work is counted
by wrapping the KDF, not by the clock.
"""

from __future__ import annotations

import base64
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects import _passwords, keys
from protectflow.cli import main as cli_main
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import BankError, BankLockedError, ProtectflowWarning

GOOD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    monkeypatch.delenv("PROTECTFLOW_PASSWORD_FILE", raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


class CountingScrypt:
    """Stands in for cryptography's Scrypt, counting the derivations asked for."""

    calls: list[tuple[int, int, int]] = []
    real = _passwords.Scrypt

    def __init__(self, *, salt: bytes, length: int, n: int, r: int, p: int) -> None:
        CountingScrypt.calls.append((n, r, p))
        self._inner = CountingScrypt.real(salt=salt, length=length, n=n, r=r, p=p)

    def derive(self, data: bytes) -> bytes:
        return self._inner.derive(data)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    CountingScrypt.calls = []
    monkeypatch.setattr(_passwords, "Scrypt", CountingScrypt)
    return CountingScrypt.calls


def password_bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Bank, str]:
    """A bank locked by GOOD, holding one object; its good entry's name."""
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", GOOD)
    bank = Bank(tmp_path / "bank")
    bank.update_object("a", b"secret")
    (good,) = keys.show_fingerprint(bank).passwords
    keystore.forget_unlocked()
    CountingScrypt.calls.clear()  # what follows is the test's
    return bank, good


def plant(bank: Bank, name: str, raw: bytes) -> None:
    Path(bank.url, "keys", name).write_bytes(raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def entry(**changes: Any) -> bytes:
    """A well-formed entry (wrapping random bytes), with ``changes``."""
    data: dict[str, Any] = {"kdf": "scrypt", "n": 1 << 15, "r": 8, "p": 1,
                            "salt": b64(os.urandom(16)), "nonce": b64(os.urandom(12)),
                            "wrapped": b64(os.urandom(48)), "created_at": "2024-01-01T00:00:00Z"}
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


#: Entries someone who can write the bank plants, by what is wrong with them.
HOSTILE: dict[str, bytes] = {
    "expensive-n": entry(n=1 << 20),
    "expensive-r": entry(r=32),
    "expensive-p": entry(p=16),
    "expensive-all": entry(n=1 << 20, r=32, p=16),
    "cheap-n": entry(n=2),
    "bool-cost": entry(p=True),
    "float-cost": entry(n=32768.0),
    "string-cost": entry(n="32768"),
    "other-kdf": entry(kdf="argon2id"),
    "not-json": b"{not json",
    "not-utf8": b"\xff\xfe{}",
    "a-list": b"[1, 2, 3]",
    "missing-salt": entry(salt=...),
    "extra-field": entry(extra=1),
    "short-salt": entry(salt=b64(os.urandom(15))),
    "long-wrapped": entry(wrapped=b64(os.urandom(4096))),
    "bad-base64": entry(nonce="!!!!"),
    "nonce-number": entry(nonce=12),
    "huge": b" " * (2 << 20) + entry(),
    "empty": b"",
}


def test_twenty_hostile_entries_hide_nothing_and_cost_one_scrypt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        scrypt_calls: list[tuple[int, int, int]]) -> None:
    bank, good = password_bank(tmp_path, monkeypatch)
    for i, (what, raw) in enumerate(HOSTILE.items()):
        plant(bank, f"-{i:02d}-{what}", raw)  # all sorted before the good one (hex)
    assert len(HOSTILE) == 20
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Bank(bank.url).get_object("a") == b"secret"
    assert scrypt_calls == [(1 << 15, 8, 1)]  # the good entry's, at protectflow's cost
    said = [str(w.message) for w in caught if issubclass(w.category, ProtectflowWarning)]
    for i, what in enumerate(HOSTILE):
        assert any(f"keys/-{i:02d}-{what} of bank {bank.url} is unusable" in s for s in said), what
    assert any("asks for scrypt n=1048576, r=8, p=1" in s for s in said)
    assert good not in " ".join(said)


def test_the_cli_warns_in_one_line_each_and_opens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    CheckpointStore(bank).create(Plan("p", ()), ResourceGraph({}, {}), "f", "me").release()
    keystore.forget_unlocked()
    plant(bank, "-0-expensive", HOSTILE["expensive-all"])
    plant(bank, "-1-broken", HOSTILE["not-json"])
    assert cli_main(["checkpoints", "list", "--bank", bank.url]) == 0
    err = capsys.readouterr().err
    assert err.count("protectflow: warning: the password entry keys/") == 2
    assert "keys/-0-expensive" in err and "keys/-1-broken" in err and "Traceback" not in err


def test_entries_are_tried_in_name_order_and_the_first_that_opens_ends_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        scrypt_calls: list[tuple[int, int, int]]) -> None:
    bank, good = password_bank(tmp_path, monkeypatch)
    for i in range(5):  # well-formed, but under other passwords: each costs one try
        plant(bank, f"-wrong-{i}", entry())
    for i in range(5):  # after the good one: never tried
        plant(bank, f"z-after-{i}", entry())
    assert sorted(keys.show_fingerprint(Bank(bank.url)).passwords)[5] == good
    assert len(scrypt_calls) == 6


def test_planted_copies_of_a_salt_cost_no_more_scrypt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        scrypt_calls: list[tuple[int, int, int]]) -> None:
    bank, good = password_bank(tmp_path, monkeypatch)
    salt = json.loads(Path(bank.url, "keys", good).read_bytes())["salt"]
    for i in range(20):
        plant(bank, f"-copy-{i}", entry(salt=salt))
    assert Bank(bank.url).get_object("a") == b"secret"
    assert len(scrypt_calls) == 1


def test_at_most_32_entries_are_tried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        scrypt_calls: list[tuple[int, int, int]]) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    for i in range(40):
        plant(bank, f"-wrong-{i:02d}", entry())
    with pytest.raises(BankLockedError, match="tries at most 32 of a bank's password entries"):
        Bank(bank.url).get_object("a")
    assert len(scrypt_calls) == _passwords.MAX_TRIED == 32


def test_a_wrong_password_says_so_after_one_try_per_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        scrypt_calls: list[tuple[int, int, int]]) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    plant(bank, "-broken", b"{")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "wrong")
    with pytest.raises(BankLockedError, match=r"wrong password for bank .*: it opens none of "
                                           r"the bank's password entries \(2\)"), \
            pytest.warns(ProtectflowWarning, match="keys/-broken .* is unusable"):
        Bank(bank.url).get_object("a")
    assert len(scrypt_calls) == 1


def test_an_entry_holding_another_key_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    stray = _passwords.PasswordEntry.wrap(os.urandom(32), GOOD, keys.config_of(bank).id)
    plant(bank, "-stray", stray.to_bytes())  # the right password, another key
    with pytest.warns(ProtectflowWarning, match="keys/-stray .* holds a key that does not "
                                                "open the bank"):
        assert Bank(bank.url).get_object("a") == b"secret"


# -- the password's text ------------------------------------------------------------
@pytest.mark.parametrize("given", ["env", "file"])
@pytest.mark.parametrize("text", [GOOD, GOOD + "\n", GOOD + "\r\n"])
def test_the_same_text_is_the_same_password_from_env_or_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, text: str) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    if given == "env":
        monkeypatch.setenv("PROTECTFLOW_PASSWORD", text)
    else:
        (tmp_path / "pw").write_bytes(text.encode())
        monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", str(tmp_path / "pw"))
    assert Bank(bank.url).get_object("a") == b"secret"


@pytest.mark.parametrize("given", ["env", "file"])
def test_only_one_trailing_newline_is_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    if given == "env":
        monkeypatch.setenv("PROTECTFLOW_PASSWORD", GOOD + "\n\n")
    else:
        monkeypatch.delenv("PROTECTFLOW_PASSWORD")
        (tmp_path / "pw").write_text(GOOD + "\n\n")
        monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", str(tmp_path / "pw"))
    with pytest.raises(BankLockedError, match="wrong password"):
        Bank(bank.url).get_object("a")


@pytest.mark.parametrize("content", ["", "\n", "\r\n"])
@pytest.mark.parametrize("given", ["env", "file", "flag"])
def test_an_empty_password_makes_no_bank(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, given: str) -> None:
    pw = tmp_path / "pw"
    pw.write_text(content)
    if given == "env":
        monkeypatch.setenv("PROTECTFLOW_PASSWORD", content)
    elif given == "file":
        monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", str(pw))
    key_files = set(Path(os.environ["XDG_CONFIG_HOME"]).rglob("*.key"))
    bank = Bank(tmp_path / "bank", password_file=str(pw) if given == "flag" else None)
    with pytest.raises(BankLockedError, match="is empty, and a bank's password cannot be empty"):
        bank.update_object("a", b"x")
    assert not Path(bank.url, "config").exists()  # no bank, locked or not
    assert set(Path(os.environ["XDG_CONFIG_HOME"]).rglob("*.key")) == key_files


def test_an_empty_password_opens_nothing(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "")
    with pytest.raises(BankLockedError, match=r"\$PROTECTFLOW_PASSWORD is empty"):
        Bank(bank.url).get_object("a")


def test_a_planted_entry_name_prints_no_escape(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    plant(bank, "-\x1b[2Jclear", b"{")
    with pytest.warns(ProtectflowWarning) as caught:
        assert Bank(bank.url).get_object("a") == b"secret"
    said = " ".join(str(w.message) for w in caught)
    assert "keys/-?[2Jclear" in said and "\x1b" not in said


@pytest.mark.timeout(20)
def test_a_fifo_planted_among_the_entries_hangs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    os.mkfifo(Path(bank.url, "keys", "-fifo"))
    assert Bank(bank.url).get_object("a") == b"secret"


@pytest.mark.timeout(20)
def test_a_fifo_planted_as_the_config_or_the_mark_hangs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = password_bank(tmp_path, monkeypatch)
    os.mkfifo(Path(bank.url, "rotation"))
    with pytest.raises(BankError, match="cannot read the bank"):
        Bank(bank.url).get_object("a")
    os.unlink(Path(bank.url, "rotation"))
    os.rename(Path(bank.url, "config"), tmp_path / "config.saved")
    os.mkfifo(Path(bank.url, "config"))
    with pytest.raises(BankError, match="cannot read the config"):
        Bank(bank.url).get_object("a")
