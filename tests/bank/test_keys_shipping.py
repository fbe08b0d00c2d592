"""The dask executor ships the bank's derived keys to its workers in every
task: over a transport that does not encrypt, to an address off this
machine, it warns -- once per process, clearly; over TLS, in process, or to
the loopback it says nothing."""

from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank.objects import _keystore as keystore
from protectflow.errors import ProtectflowWarning

distributed = pytest.importorskip("distributed", reason="needs protectflow[dask]: "
                                  "pip install 'protectflow[dask]'")
dask_executor = pytest.importorskip("protectflow.executors.dask")


@pytest.fixture(autouse=True)
def _once_again(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(dask_executor, "_warned_clear", threading.Event())
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


@pytest.mark.parametrize(("address", "clear"), [
    ("tcp://192.0.2.7:8786", True),
    ("ws://192.0.2.7:8786", True),
    ("tcp://[2001:db8::7]:8786", True),
    ("tcp://backup-host.example:8786", True),
    ("tls://192.0.2.7:8786", False),
    ("wss://192.0.2.7:8786", False),
    ("inproc://192.0.2.7/123/1", False),
    ("tcp://127.0.0.1:8786", False),
    ("tcp://127.3.4.5:8786", False),
    ("tcp://[::1]:8786", False),
    ("tcp://localhost:8786", False),
])
def test_which_addresses_carry_keys_in_clear(address: str, clear: bool) -> None:
    assert dask_executor._in_clear([address]) == ([address] if clear else [])


def outside_address() -> str | None:
    """An address of this machine that is not its loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only a route is chosen
        except OSError:
            return None
        host: str = s.getsockname()[0]
    return None if host.startswith("127.") else host


def tree_plan(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("x")
    plan = {"name": "t", "bank": str(tmp_path / "bank"), "resources": [
        {"type": "protectflow::fs::Directory", "id": "data",
         "extra_info": {"path": str(tmp_path / "data")}}]}
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(plan))
    return path


def ours(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ProtectflowWarning)]


@pytest.mark.timeout(120)
def test_a_cluster_reached_over_plain_tcp_gets_one_warning(tmp_path: Path) -> None:
    host = outside_address()
    if host is None:
        pytest.skip("this machine has no address but its loopback")
    plan = tree_plan(tmp_path)
    with distributed.LocalCluster(n_workers=1, processes=False, host=host, protocol="tcp://",
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        executor = dask_executor.DaskExecutor(client=client)
        for _ in range(2):
            assert operations.protect(plan, executor=executor).ok
    said = ours(caught)
    assert len(said) == 1, said
    assert f"unencrypted transport (tcp://{host}:" in said[0]
    assert "derived keys" in said[0] and "tls://" in said[0]


@pytest.mark.timeout(120)
def test_an_in_process_cluster_gets_none(tmp_path: Path) -> None:
    plan = tree_plan(tmp_path)
    with distributed.LocalCluster(n_workers=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cluster.scheduler_address.startswith("inproc://")
        assert operations.protect(plan, executor=dask_executor.DaskExecutor(client=client)).ok
    assert ours(caught) == []
