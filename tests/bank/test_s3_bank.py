"""A bank on a real S3-compatible server -- moto in server mode, started by the
test on a loopback port -- through s3fs: protect, verify and restore work on
it, and two processes racing to make the same new bank never both make it:
the loser adopts the winner's config (with the password, which opens the
winner's entry) or fails clearly (with no key for it), and every object
either wrote opens under the one key the bank has."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bank.bank_helpers import race
from tests.needs import TEST_EXTRA
from tests.waits import wait_until

s3fs = pytest.importorskip("s3fs", reason=f"s3fs {TEST_EXTRA}")
pytest.importorskip("moto.server", reason=f"moto[server] {TEST_EXTRA}")

FS = "protectflow::fs::Directory"
BUCKET = "pf-bank"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/moto-api/", timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server of this test module, with a bucket; the environment
    that points boto (hence s3fs and protectflow) at it."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.poll() is not None or _answers(endpoint),
                   f"moto's S3 server on {endpoint}")
        assert server.poll() is None, "moto's server ended at start-up"
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint}
        fs = s3fs.S3FileSystem(key="testing", secret="testing",
                               client_kwargs={"endpoint_url": endpoint})
        fs.mkdir(BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait()


@pytest.fixture
def on_s3(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    for name in ("PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "a password of the test")
    from protectflow.bank.objects import _keystore

    _keystore.forget_unlocked()
    return s3_env


def _new_url() -> str:
    return f"s3://{BUCKET}/bank-{uuid.uuid4().hex[:12]}"


def test_protect_verify_restore_on_s3(on_s3: dict[str, str], tmp_path: Path) -> None:
    from protectflow import cli

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "big.bin").write_bytes(os.urandom(300_000))
    (data / "sub" / "small.txt").write_text("small\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"name": "p", "resources": [
        {"type": FS, "id": "data", "extra_info": {"path": str(data)}}],
        "parameters": {FS: {"chunk_size": 65536}}}))
    url = _new_url()
    assert cli.main(["protect", str(plan), "--bank", url, "-q"]) == 0
    from protectflow.bank import Bank, CheckpointStore

    (checkpoint,) = CheckpointStore(Bank(url)).list()
    assert cli.main(["verify", checkpoint.id, "--bank", url, "--read-data", "-q"]) == 0
    out = tmp_path / "out"
    assert cli.main(["restore", checkpoint.id, "--bank", url, "--target", str(out), "-q"]) == 0
    assert (out / "data" / "big.bin").read_bytes() == (data / "big.bin").read_bytes()
    assert (out / "data" / "sub" / "small.txt").read_text() == "small\n"
    # and a copy of it to a local bank and back again is whole
    local = tmp_path / "local-bank"
    assert cli.main(["copy", checkpoint.id, "--bank", url, "--to", str(local), "-q"]) == 0


def test_a_config_is_created_once_on_s3(on_s3: dict[str, str]) -> None:
    from protectflow.bank import Bank

    bank = Bank(_new_url())
    backend = bank.backend
    assert backend.create_exclusive("config", (b"first",))
    assert not backend.create_exclusive("config", (b"second",))
    assert backend.read("config") == b"first"


def _reader(url: str, password: str | None) -> object:
    from protectflow.bank import Bank
    from protectflow.bank.objects import _keystore

    _keystore.forget_unlocked()
    if password is not None:
        os.environ["PROTECTFLOW_PASSWORD"] = password
    return Bank(url)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(15))
def test_two_processes_making_one_bank_with_a_password(on_s3: dict[str, str],
                                                       attempt: int) -> None:
    from protectflow.bank import Bank

    url = _new_url()
    env = {**on_s3, "PROTECTFLOW_PASSWORD": "a password of the test"}
    results = race(url, [env, env])
    assert all(r[0] == "ok" for r in results), results  # the loser adopted the winner's bank
    assert len({r[1] for r in results}) == 1  # one key between them
    bank = _reader(url, "a password of the test")
    assert isinstance(bank, Bank)
    assert bank.keyring.fingerprint == results[0][1]
    for _, _, key, _ in results:  # everything either sealed opens under the bank's one key
        assert bank.get_object(key)["pid"] > 0
    assert len(bank.backend.listdir("keys")) == 1  # the loser's entry was taken back


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(15))
def test_two_users_making_one_bank_with_key_files(on_s3: dict[str, str], tmp_path: Path,
                                                  attempt: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No password and a key folder each: the loser has no key for the
    winner's bank and must say so -- never seal objects under its own key."""
    from protectflow.bank import Bank

    url = _new_url()
    homes = [tmp_path / "one", tmp_path / "two"]
    envs = []
    for home in homes:
        (home / "cfg").mkdir(parents=True, mode=0o700)
        envs.append({**on_s3, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "cfg"),
                     "PROTECTFLOW_PASSWORD": ""})
    for env in envs:
        del env["PROTECTFLOW_PASSWORD"]
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    results = race(url, envs)
    oks = [r for r in results if r[0] == "ok"]
    assert len(oks) == 1, results
    (failed,) = [r for r in results if r[0] == "error"]
    assert "BankLockedError" in failed[1] and url in failed[1]
    monkeypatch.setenv("XDG_CONFIG_HOME", oks[0][3])
    bank = _reader(url, None)
    assert isinstance(bank, Bank)
    assert bank.keyring.fingerprint == oks[0][1]
    assert bank.get_object(oks[0][2])["pid"] > 0
    assert [k for k in bank.iter_objects("probes/")] == [oks[0][2]]  # no object of the loser
    shutil.rmtree(tmp_path / "one")
