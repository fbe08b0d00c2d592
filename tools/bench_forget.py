"""Benchmark ``forget --prune`` over a bank of many checkpoints beside
``restic forget --prune``.

Run: ``python tools/bench_forget.py [--checkpoints 10000] [--templates 40]
[--restic-snapshots 200]``

protectflow's bank: ``--templates`` real protects of a folder (a 2 MB file
every checkpoint shares, and a 64 KiB file of its own), then
``--checkpoints`` checkpoints cloned from them, an hour apart, through the
bank's object API -- each clone's record (``available``, its plan and
resource graph), index entries, manifest and chunk refs written directly, as
``tools/bench_bank.py`` does -- rather than running 10,000 protects. So most
checkpoints share their data, and each template's own chunk is shared by
the clones of it. The policy, restic's ``--keep-daily 7 --keep-weekly 4
--keep-monthly 12``, keeps about 20 and forgets the rest.

restic's repository: ``restic backup --time`` of the same kind of folder
(the shared file, a file of its own per snapshot), ``--restic-snapshots``
of them (``restic backup`` takes a fraction of a second each: building
10,000 would take an hour), an hour apart, then ``restic forget --dry-run``
and ``restic forget --prune`` (on a copy) with the same policy, at half
the snapshots and at all of them. restic's times at ``--checkpoints``
snapshots are read off the line through those two points (a fixed cost and
a cost per snapshot: restic's forget reads every snapshot, its prune the
index and the trees); the measured figures are printed too.

Figures: time to decide (protectflow: read every record and apply the
rules, the dry run; restic: ``forget --dry-run``) and time to free
(protectflow: the deletes and the prune; restic: ``forget --prune``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from protectflow import operations
from protectflow._paths import segment
from protectflow._util import now_iso
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.catalog.checkpoint import CHECKPOINTS
from protectflow.bank.catalog.store import BY_DATE, BY_PLAN, index_suffix
from protectflow.bank.chunks.store import REFS
from protectflow.compiler import parse_plan
from protectflow.operations.forget import forget
from protectflow.retention import RetentionPolicy

POLICY = RetentionPolicy(daily=7, weekly=4, monthly=12)
FLAGS = ["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12"]
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def _folder(root: Path) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    (src / "shared.bin").write_bytes(os.urandom(2 << 20))
    return src


def _templates(bank: Bank, src: Path, count: int) -> list[str]:
    plan = parse_plan(f"name: bench\nresources:\n  - type: protectflow::fs::Directory\n"
                      f"    id: src\n    extra_info: {{path: {src}}}\n", source="bench.yaml")
    ids = []
    for _ in range(count):
        (src / "own.bin").write_bytes(os.urandom(64 << 10))
        ids.append(operations.protect(plan, bank=bank, executor="serial").checkpoint.id)
    return ids


def _clone(bank: Bank, template: str, refs: list[tuple[str, str]], when: dt.datetime) -> None:
    """A copy of checkpoint ``template`` taken at ``when``: record, index,
    data and refs, written directly."""
    cid = uuid.uuid4().hex
    base = f"{CHECKPOINTS}{template}/"
    record = CheckpointStore(bank).get(template).record
    created = now_iso(when.timestamp())
    record = attrs.evolve(record, id=cid, created_at=created, updated_at=created, operations=())
    for key in [*bank.list_objects(base + "data/"), base + "dag.json", base + "statuses"]:
        bank.update_object(f"{CHECKPOINTS}{cid}/{key[len(base):]}", bank.get_object(key))
    for digest, resource in refs:
        bank.create_object(f"{REFS}{digest[:2]}/{digest}/{segment(cid + '@' + resource)}", b"")
    bank.update_object(f"{CHECKPOINTS}{cid}/record", record.to_json())
    suffix = index_suffix(created, cid)
    bank.update_object(BY_DATE + suffix, b"")
    bank.update_object(f"{BY_PLAN}{segment(record.plan_name)}/{suffix}", b"")


def build_bank(root: Path, count: int, templates: int) -> tuple[Bank, float]:
    started = time.perf_counter()
    bank = Bank(str(root / "bank"), fsync=False)
    made = _templates(bank, _folder(root / "pf"), templates)
    refs: dict[str, list[tuple[str, str]]] = {t: [] for t in made}
    for key in bank.iter_objects(REFS):
        _, _, digest, owner = key.split("/", 3)
        tid, resource = owner.split("@", 1)
        if tid in refs:
            refs[tid].append((digest, resource))
    # the templates go: only the clones remain, the first an hour after START
    store = CheckpointStore(bank)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _clone(bank, made[i % len(made)], refs[made[i % len(made)]],
                                       START + dt.timedelta(hours=i + 1)), range(count)))
    for tid in made:
        operations.delete(tid, bank=bank, executor="serial")
        store.remove(tid)
    return bank, time.perf_counter() - started


def bench_protectflow(root: Path, count: int, templates: int) -> tuple[float, float, int]:
    bank, built = build_bank(root, count, templates)
    chunks = sum(1 for _ in bank.iter_objects("chunks/"))
    print(f"protectflow: {count:,} checkpoints built in {built:.1f} s ({templates} protected, "
          f"the rest cloned), {chunks} chunks")
    store = CheckpointStore(bank)
    started = time.perf_counter()
    dry = forget(store, POLICY, owner="bench", dry_run=True, tz=dt.timezone.utc)
    decide_s = time.perf_counter() - started
    kept = sum(len(p.decision.keep) for p in dry.plans)
    started = time.perf_counter()
    done = forget(CheckpointStore(bank), POLICY, owner="bench", prune_after=True,
                  tz=dt.timezone.utc)
    free_s = time.perf_counter() - started
    removed = sum(len(p.removed) for p in done.plans)
    left = sum(1 for _ in bank.iter_objects("chunks/"))
    print(f"  decide (dry run): {decide_s:.2f} s; forget --prune: {free_s:.2f} s "
          f"(its own decide {done.decide_seconds:.2f} s, deletes {done.delete_seconds:.2f} s, "
          f"prune {done.prune_seconds:.2f} s); kept {kept}, removed {removed}, "
          f"chunks {chunks} -> {left}")
    return decide_s, done.delete_seconds + done.prune_seconds, removed


def _backups(src: Path, env: dict[str, str], first: int, last: int) -> None:
    """``restic backup --time`` of snapshots ``first`` to ``last - 1``, 8 at a time."""
    for start in range(first, last, 8):
        procs = []
        for i in range(start, min(last, start + 8)):
            own = src.parent / f"own-{i}"
            own.mkdir()
            (own / "own.bin").write_bytes(os.urandom(64 << 10))
            when = (START + dt.timedelta(hours=i + 1)).strftime("%Y-%m-%d %H:%M:%S")
            procs.append(subprocess.Popen(
                ["restic", "backup", "-q", "--host", "h", "--time", when, str(src), str(own)],
                env=env, stdout=subprocess.DEVNULL))
        for proc in procs:
            assert proc.wait() == 0


def _restic_times(env: dict[str, str], repo: Path, copy: Path) -> tuple[float, float]:
    """``forget --dry-run`` on the repository, ``forget --prune`` on a copy of it."""
    started = time.perf_counter()
    subprocess.run(["restic", "forget", "--dry-run", "-q", *FLAGS], env=env, check=True,
                   capture_output=True)
    decide_s = time.perf_counter() - started
    shutil.copytree(repo, copy)
    started = time.perf_counter()
    subprocess.run(["restic", "forget", "--prune", "-q", *FLAGS], check=True,
                   env={**env, "RESTIC_REPOSITORY": str(copy),
                        "RESTIC_CACHE_DIR": str(copy) + "-cache"}, capture_output=True)
    free_s = time.perf_counter() - started
    shutil.rmtree(copy)
    shutil.rmtree(str(copy) + "-cache", ignore_errors=True)
    return decide_s, free_s


def bench_restic(root: Path, count: int, target: int) -> tuple[float, float]:
    """restic at ``count // 2`` and ``count`` snapshots; its times at ``target``
    snapshots from the line through the two (a fixed cost, and a cost per snapshot)."""
    src = _folder(root / "restic")
    repo = root / "repo"
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo),
           "TZ": "UTC", "RESTIC_CACHE_DIR": str(root / "restic-cache")}
    subprocess.run(["restic", "init", "-q"], env=env, check=True, capture_output=True)
    half = count // 2
    started = time.perf_counter()
    _backups(src, env, 0, half)
    small = _restic_times(env, repo, root / "repo-copy")
    _backups(src, env, half, count)
    large = _restic_times(env, repo, root / "repo-copy")
    print(f"restic: {count:,} snapshots built in {time.perf_counter() - started:.1f} s")
    for n, (decide_s, free_s) in ((half, small), (count, large)):
        print(f"  {n:>6,} snapshots: forget --dry-run {decide_s:.2f} s; forget --prune "
              f"{free_s:.2f} s")

    def at(index: int) -> float:
        slope = max(0.0, (large[index] - small[index]) / (count - half))
        return large[index] + slope * (target - count)
    print(f"  at {target:,} snapshots (the line through both): forget --dry-run "
          f"{at(0):.2f} s; forget --prune {at(1):.2f} s")
    return at(0), at(1)


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # figures as they come
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--templates", type=int, default=40)
    parser.add_argument("--restic-snapshots", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("PROTECTFLOW_PASSWORD", "bench")
    root = Path(tempfile.mkdtemp(prefix="bench-forget-"))
    try:
        pf_decide, pf_free, _ = bench_protectflow(root, args.checkpoints, args.templates)
        if shutil.which("restic") is None:
            print("restic is not on PATH (apt-get install restic): no comparison")
            return
        r_decide, r_free = bench_restic(root, args.restic_snapshots, args.checkpoints)
        print(f"ratios, protectflow / restic at {args.checkpoints:,}: decide "
              f"{pf_decide / r_decide:.2f}x (target <= 1), free {pf_free / r_free:.2f}x "
              "(target <= 2)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
