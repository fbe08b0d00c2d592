"""What an operation leaves for others to see: a lease kept alive while it runs
longer than the lease lasts, and the status of a resource whose hook timed out."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import operations
from protectflow.compiler import parse_plan
from protectflow.dag.model import Resource
from protectflow.errors import BankError, CheckpointBusyError
from protectflow.plugins import Operation, Registry
from protectflow.plugins.builtin.sim import SimOperation, SimProtectionPlugin
from tests import waits
from tests.waits import wait_until

VOLUME = "OS::Cinder::Volume"
#: The plugins of this module, by name, for the executors to resolve.
SPEC = f"{__name__}:registry"

ENTERED = threading.Event()  # a gated hook is running
RELEASE = threading.Event()  # let it finish


class GatedOperation(SimOperation):
    """A sim operation whose protect main hook waits for :data:`RELEASE`."""

    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], **kwargs: Any) -> Any:
        if self.operation == "protect":
            ENTERED.set()
            RELEASE.wait(waits.LIMIT)  # bounded: a broken test must not hang the suite
        return super().on_main(checkpoint, resource, context, parameters, **kwargs)


class GatedPlugin(SimProtectionPlugin):
    def get_protect_operation(self, resource: Resource) -> Operation:
        return GatedOperation("protect")


def registry() -> Registry:
    return Registry({"sim": GatedPlugin()})


def one_volume(**parameters: Any) -> Any:
    data = {"name": "one", "resources": [{"type": VOLUME, "id": "v"}],
            "parameters": {VOLUME: parameters}}
    return parse_plan(json.dumps(data), source="plan.json")


@pytest.fixture
def gate() -> Iterator[None]:
    ENTERED.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


def test_an_operation_running_past_its_lease_ttl_is_not_taken_for_dead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gate: None) -> None:
    monkeypatch.setenv("PROTECTFLOW_LEASE_TTL", "3")  # renewed every second
    bank = tmp_path / "bank"
    results: list[Any] = []
    protect = threading.Thread(target=lambda: results.append(operations.protect(
        one_volume(payload_bytes=10), bank=bank, executor="threads", registry=SPEC)))
    protect.start()
    try:
        assert ENTERED.wait(waits.LIMIT)
        store = operations.open_store(bank)
        [checkpoint] = store.list()
        taken = checkpoint.lease
        assert taken is not None

        def renewed() -> bool:
            lease = checkpoint.lease
            return lease is not None and lease.expires_at > taken.expires_at

        # The operation outlives the lease it took: only renewal keeps it.
        wait_until(renewed, "the running protect to renew its lease")
        # Judged once the lease it took has expired, however late this runs.
        assert store.gc(now=taken.expires_at + 0.1) == []
        assert checkpoint.reload().status == "protecting"
        with pytest.raises(CheckpointBusyError):
            operations.resume(checkpoint.id, bank=bank)
    finally:
        RELEASE.set()
        protect.join(waits.LIMIT)
    [result] = results
    assert result.ok and result.checkpoint.reload().status == "available"
    assert result.checkpoint.lease is None  # released at the end


def test_a_bad_lease_ttl_is_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROTECTFLOW_LEASE_TTL", "soon")
    with pytest.raises(BankError, match="PROTECTFLOW_LEASE_TTL"):
        operations.protect(one_volume(), bank=tmp_path / "bank", executor="serial")
    assert not (tmp_path / "bank" / "checkpoints").exists()


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_timed_out_hook_leaves_its_resource_in_error(tmp_path: Path, executor: str) -> None:
    # Hooks that sleep far past their timeout, however busy the machine (each
    # timed-out hook's thread is left to sleep it out).
    data = {"name": "slow", "resources": [{"type": VOLUME, "id": "slow-main"},
                                          {"type": VOLUME, "id": "slow-complete"}],
            "parameters": {f"{VOLUME}#slow-main": {"main_seconds": 60},
                           f"{VOLUME}#slow-complete": {"complete_seconds": 60}}}
    plan = parse_plan(json.dumps(data), source="plan.json")
    result = operations.protect(plan, bank=tmp_path / "bank", executor=executor,
                                timeout=0.2, keep_going=True)
    assert not result.ok
    checkpoint = result.checkpoint.reload()
    assert checkpoint.status == "error"
    for rid, hook in (("slow-main", "main"), ("slow-complete", "complete")):
        entry = checkpoint.resources[f"{VOLUME}#{rid}"]
        assert entry.status == "error", entry
        assert (entry.reason or "").startswith(f"{hook} timed_out"), entry
