"""Helpers shared by the bank tests (a plain module: importable by subprocesses)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from protectflow.bank import Bank
from protectflow.dag import Plan, ResourceGraph

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})


def make_bank(kind: str, tmp_path: Path) -> Bank:
    """A fresh bank: a real folder under ``tmp_path`` or a unique ``memory://``."""
    if kind == "local":
        return Bank(tmp_path / f"bank-{uuid.uuid4().hex[:8]}", fsync=False)
    return Bank(f"memory://pf-test-{uuid.uuid4().hex}")


# -- workers run in other processes (spawned: they must be importable) ------------
def create_many(url: str, plan: str, count: int, out: Any) -> None:
    """Create ``count`` checkpoints of ``plan``; put their ids on ``out``."""
    from protectflow.bank import CheckpointStore

    store = CheckpointStore(url)
    ids = []
    for _ in range(count):
        checkpoint = store.create(Plan(plan, ()), NO_GRAPH, "fp", f"pid-{os.getpid()}")
        checkpoint.transition("available")
        checkpoint.release()
        ids.append(checkpoint.id)
    out.put(ids)


def race_for_lease(url: str, checkpoint_id: str, start: Any, out: Any) -> None:
    """Wait at ``start``, then try to take the checkpoint; report the outcome."""
    from protectflow.bank import Bank, Checkpoint
    from protectflow.errors import BankError

    checkpoint = Checkpoint(Bank(url), checkpoint_id)
    start.wait()
    try:
        lease = checkpoint.acquire("verify", f"pid-{os.getpid()}", ttl=60)
        out.put(("won", lease.generation))
    except BankError as err:
        out.put(("lost", str(err)))


def use_checkpoint(checkpoint: Any, out: Any) -> None:
    """What a hook does in a dask worker: write data and status via the checkpoint."""
    from protectflow.dag.model import Resource

    loaded_lazily = checkpoint._record is None
    volume = Resource("sim.volume", "vol/1")
    section = checkpoint.get_resource_bank_section(volume)
    section.update_object("meta", {"size": 10})
    with section.open_write("data") as f:
        f.write(b"\x00" * 100_000)
    checkpoint.set_resource_status(volume, "available")
    out.put((loaded_lazily, checkpoint.status, os.getpid()))


def race_to_create(url: str, env: dict[str, str], start: Any, out: Any) -> None:
    """Wait at ``start``, then make the bank at ``url`` (a first write) with
    ``env`` set, and seal one object of this process in it; report
    ``("ok", fingerprint, key, key folder)`` or ``("error", message)``."""
    os.environ.update(env)
    from protectflow.bank import Bank
    from protectflow.errors import BankError

    bank = Bank(url)
    start.wait()
    try:
        key = f"probes/{os.getpid()}"
        bank.update_object(key, {"pid": os.getpid()})
        out.put(("ok", bank.keyring.fingerprint, key, os.environ.get("XDG_CONFIG_HOME", "")))
    except BankError as err:
        out.put(("error", f"{type(err).__name__}: {err}"))


def race(url: str, envs: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """Run :func:`race_to_create` in one spawned process per ``envs`` item,
    released together; their reports, in the order they came."""
    import multiprocessing

    from tests.waits import queue_get

    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(len(envs)), ctx.Queue()
    procs = [ctx.Process(target=race_to_create, args=(url, env, start, out)) for env in envs]
    for p in procs:
        p.start()
    results = [queue_get(out, procs) for _ in procs]
    for p in procs:
        p.join()
    return results
