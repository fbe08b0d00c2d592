"""Two processes making one new bank in a local folder at the same instant
(many tries): exactly one config, and every object either process sealed
opens under the bank's one key -- the loser adopts the winner's bank (the same
password opens it) or, with a key folder of its own, says it has no key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from protectflow.bank import Bank
from protectflow.bank.objects import _keystore
from tests.bank.bank_helpers import race

PASSWORD = "a password of the race"


def _fresh(url: str) -> Bank:
    _keystore.forget_unlocked()
    return Bank(url)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(10))
def test_two_processes_making_one_local_bank_with_a_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attempt: int) -> None:
    url = str(tmp_path / "bank")
    env = {"PROTECTFLOW_PASSWORD": PASSWORD}
    results = race(url, [env, env])
    assert all(r[0] == "ok" for r in results), results
    assert len({r[1] for r in results}) == 1
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", PASSWORD)
    bank = _fresh(url)
    for _, _, key, _ in results:
        assert bank.get_object(key)["pid"] > 0
    assert len(os.listdir(Path(url) / "keys")) == 1


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(10))
def test_two_users_making_one_local_bank_with_key_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attempt: int) -> None:
    url = str(tmp_path / "bank")
    envs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir(mode=0o700)
        envs.append({"XDG_CONFIG_HOME": str(tmp_path / name)})
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    results = race(url, envs)
    oks = [r for r in results if r[0] == "ok"]
    assert len(oks) == 1, results
    (failed,) = [r for r in results if r[0] == "error"]
    assert "BankLockedError" in failed[1] and "no key for bank" in failed[1]
    monkeypatch.setenv("XDG_CONFIG_HOME", oks[0][3])
    bank = _fresh(url)
    assert bank.keyring.fingerprint == oks[0][1]
    assert list(bank.iter_objects("probes/")) == [oks[0][2]]
