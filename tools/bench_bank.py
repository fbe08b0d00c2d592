"""Benchmark the local bank against plain file writes, and checkpoint listing.

Run: ``python tools/bench_bank.py [--small 10000] [--large-mb 256] [--checkpoints 100000]``

Figures: put/get/list of many small objects and MB/s of large streamed
objects, each beside plain ``open().write()`` of the same data in the same
layout (ratio = bank time / plain time), then the first page of a bank of
many checkpoints, newest first, by date and by plan.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from protectflow._paths import segment
from protectflow._util import now_iso
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.catalog.checkpoint import CHECKPOINTS
from protectflow.bank.catalog.record import new_record
from protectflow.bank.catalog.store import BY_DATE, BY_PLAN, index_suffix
from protectflow.dag import Plan, ResourceGraph
from protectflow.states import AVAILABLE

#: The checkpoints listed hold no resources: a listing never reads them.
NO_GRAPH = ResourceGraph({}, {})

MB = 1 << 20


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def row(label: str, bank_s: float, plain_s: float, unit: str, amount: float) -> None:
    print(f"  {label:<28} bank {amount / bank_s:>10,.0f} {unit}   plain {amount / plain_s:>10,.0f}"
          f" {unit}   bank/plain time {bank_s / plain_s:5.2f}x")


def plain_write(path: str, data: bytes, fsync: bool) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def bench_small(root: str, count: int, fsync: bool) -> None:
    print(f"{count:,} objects x 1 KiB, fsync={fsync}")
    payload = os.urandom(1024)
    keys = [f"objects/{i % 100:02d}/obj-{i:07d}" for i in range(count)]
    bank = Bank(os.path.join(root, f"bank-small-{fsync}"), fsync=fsync)
    plain = os.path.join(root, f"plain-small-{fsync}")
    for round_ in range(3):
        for d in {k.rsplit("/", 1)[0] for k in keys}:
            os.makedirs(os.path.join(plain, f"r{round_}", d), exist_ok=True)

    def bank_put(round_: int = 0) -> None:
        for k in keys:
            bank.update_object(f"r{round_}/{k}", payload)

    def plain_put(round_: int = 0) -> None:
        for k in keys:
            plain_write(os.path.join(plain, f"r{round_}", k), payload, fsync)

    def bank_get() -> None:
        for k in keys:
            bank.get_object(k)

    def plain_get() -> None:
        for k in keys:
            with open(os.path.join(plain, k), "rb") as f:
                f.read()

    def plain_list() -> list[str]:
        # The same sorted keys by hand, knowing the two-level layout.
        top = os.path.join(plain, "r0", "objects")
        out = []
        for d in sorted(os.listdir(top)):
            out += sorted(f"r0/objects/{d}/{n}" for n in os.listdir(os.path.join(top, d)))
        return out

    # Three rounds of fresh keys, interleaved, best of each: the disk is noisy.
    puts = [(timed(functools.partial(bank_put, r)), timed(functools.partial(plain_put, r)))
            for r in range(3)]
    row("put (best of 3)", min(b for b, _ in puts), min(p for _, p in puts), "obj/s", count)
    for r in (1, 2):  # the other rounds out of the way of listing
        shutil.rmtree(os.path.join(bank.url, f"r{r}"))
        shutil.rmtree(os.path.join(plain, f"r{r}"))
    keys = [f"r0/{k}" for k in keys]
    row("get", timed(bank_get), timed(plain_get), "obj/s", count)
    assert bank.list_objects() == plain_list() == sorted(keys)
    row("list all (sorted)", timed(bank.list_objects), timed(plain_list), "keys/s", count)
    first = timed(lambda: bank.list_objects("r0/objects/", limit=100))
    print(f"  list first page of 100: {first * 1e3:.2f} ms")


def bench_large(root: str, size_mb: int, fsync: bool) -> None:
    print(f"one {size_mb} MiB object streamed in 1 MiB chunks, fsync={fsync}")
    chunk = os.urandom(MB)
    bank = Bank(os.path.join(root, "bank-large"), fsync=fsync)
    plain = os.path.join(root, "plain-large")

    def bank_write() -> None:
        with bank.open_write("big/object") as f:
            for _ in range(size_mb):
                f.write(chunk)

    def plain_write_large() -> None:
        with open(plain, "wb") as f:
            for _ in range(size_mb):
                f.write(chunk)
            if fsync:
                f.flush()
                os.fsync(f.fileno())

    def bank_read() -> None:
        with bank.open_read("big/object") as f:
            while f.read(MB):
                pass

    def plain_read() -> None:
        with open(plain, "rb") as f:
            while f.read(MB):
                pass

    # Best of three, interleaved, so page-cache writeback hits both alike.
    writes = [(timed(bank_write), timed(plain_write_large)) for _ in range(3)]
    reads = [(timed(bank_read), timed(plain_read)) for _ in range(3)]
    row("streamed write (best of 3)", min(b for b, _ in writes), min(p for _, p in writes),
        "MB/s", size_mb)
    row("streamed read (best of 3)", min(b for b, _ in reads), min(p for _, p in reads),
        "MB/s", size_mb)
    os.unlink(plain)
    bank.delete_object("big/object")


def fill_checkpoints(bank: Bank, count: int, plans: int, via_api: int) -> None:
    """``via_api`` checkpoints through CheckpointStore.create, the rest written
    directly: the record and its two index objects, as create() lays them out
    (no lease, no in-progress entry: they are born 'available')."""
    store = CheckpointStore(bank)
    now = time.time()
    step = 365 * 86_400 / count  # a year of checkpoints, oldest first
    start = time.perf_counter()
    for i in range(via_api):
        cp = store.create(Plan(f"plan-{i % plans}", ()), NO_GRAPH, "fp", "bench",
                          now=now - i * step)
        cp.transition("available")
        cp.release()
    api_s = time.perf_counter() - start
    fast = Bank(bank.url, fsync=False)
    start = time.perf_counter()
    for i in range(via_api, count):
        cid = uuid.uuid4().hex
        created = now_iso(now - i * step)
        plan = f"plan-{i % plans}"
        record = new_record(cid, plan=Plan(plan, ()), resource_graph=NO_GRAPH,
                            dag_fingerprint="fp", owner="bench", created_at=created)
        # born finished, with no history
        record = attrs.evolve(record, status=AVAILABLE, operations=())
        fast.update_object(f"{CHECKPOINTS}{cid}/record", record.to_json())
        suffix = index_suffix(created, cid)
        fast.update_object(BY_DATE + suffix, b"")
        fast.update_object(f"{BY_PLAN}{segment(plan)}/{suffix}", b"")
    direct_s = time.perf_counter() - start
    print(f"  setup: {via_api:,} via CheckpointStore.create ({via_api / api_s:,.0f}/s, fsync on); "
          f"{count - via_api:,} written directly (record + 2 index objects, "
          f"{(count - via_api) / direct_s:,.0f}/s)")


def bench_listing(root: str, count: int, plans: int) -> None:
    print(f"listing a bank of {count:,} checkpoints ({plans} plans, a year of history)")
    bank = Bank(os.path.join(root, "bank-checkpoints"))
    fill_checkpoints(bank, count, plans, via_api=min(500, count))
    store = CheckpointStore(Bank(bank.url))  # a fresh process's view
    for label, plan in (("by date", None), ("by plan", "plan-3")):
        first = store.list(plan=plan, limit=50)

        def first_page(plan: str | None = plan) -> None:
            store.list(plan=plan, limit=50)

        def next_page(plan: str | None = plan, marker: str = first[-1].id) -> None:
            store.list(plan=plan, limit=50, marker=marker)

        best = min(timed(first_page) for _ in range(5))
        nxt = min(timed(next_page) for _ in range(5))
        target = "OK" if best < 0.1 else "SLOW"
        print(f"  first page of 50 {label:<8}: {best * 1e3:6.2f} ms ({target}: target < 100 ms);"
              f" next page (marker): {nxt * 1e3:6.2f} ms")
    newest = store.list(limit=1)[0]
    assert newest.created_at == max(c.created_at for c in store.list(limit=200))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--small-fsync", type=int, default=2_000)
    parser.add_argument("--large-mb", type=int, default=256)
    parser.add_argument("--checkpoints", type=int, default=100_000)
    parser.add_argument("--plans", type=int, default=20)
    parser.add_argument("--dir", default=None, help="where to build the banks (a temp dir)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-bank-", dir=args.dir)
    try:
        bench_small(root, args.small, fsync=False)
        bench_small(root, args.small_fsync, fsync=True)
        bench_large(root, args.large_mb, fsync=False)
        bench_large(root, args.large_mb, fsync=True)
        bench_listing(root, args.checkpoints, args.plans)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
