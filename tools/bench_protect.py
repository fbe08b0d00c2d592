"""Protect a directory tree: protectflow's fs plugin against tar and restic.

    python tools/bench_protect.py [--size-mb 1024] [--repeat 5] [--dir DIR] [--keep]

Makes a tree of about ``--size-mb`` MB (90% of the bytes in a few large
files of random bytes, 10% in many 4-64 KiB files, half of them random and
half text, which compresses), then times, side by side:

- ``tar cf`` of the tree to the same disk;
- ``restic backup`` into a fresh repository, if ``restic`` is installed;
- protectflow protect into a fresh local bank (format 2: every object
  compressed with zstd and encrypted with AES-256-GCM, as restic's are): through
  ``protectflow.operations.protect`` if it exists, else by calling the fs
  plugin's hooks directly (the output says which); and again into a bank
  without fsync (``protect --no-fsync``), to compare with tar like for like.

Then it changes 1% of the files (one 4 KiB block in each) and runs all three
again (tar in full; restic and protectflow incrementally). ``tar`` is timed
twice: as is, and with an fsync of its output (``tar+fsync``), the
like-for-like figure -- restic and protectflow make their data durable
before they return. Each tool starts after a ``sync``, so none pays for
another's writes, and each round starts at the next tool, so that over five
rounds every tool runs once in every place (one that follows restic can be
slower). ``--repeat N`` runs N rounds into fresh repositories and
reports medians (the disk may be shared and noisy; each round works in a
folder of its own, all deleted at the end: see ``DEFERRED``), then each target's
ratio: first protect <= 1.5x tar (durable protect against tar+fsync, and
--no-fsync against tar; durable protect against plain tar is printed too),
second protect faster than restic's.
After each protectflow run it prints the bank's file and folder count: a
first protect is bound by creating them (see the fs plugin's packs).

Then the restore section: the whole tree restored into a fresh folder by
``tar -xf`` (of the first run's archive), ``restic restore latest`` and
protectflow restore of its latest checkpoint; and the compression ratio of
the bank (tree bytes / chunk bytes). Targets: first protect at least 3x
faster than restic and at most 2x tar, re-protect (1% of the files changed)
at most 1/5 of restic's, restore at most 1.5x ``tar -x`` and at least 3x
faster than ``restic restore``.

``--baseline SRC`` adds, to each round, a first protect by the protectflow
in SRC (another checkout's ``src/`` folder) beside one by this checkout's,
each in a child process that times its own protect (wall, and CPU over all
its threads), in alternating order: what the work between the two costs.
For issue 12's fidelity work (owners, xattrs and ACLs, hard links, holes,
files that change while read; at most 10%), the baseline is the commit
before it landed::

    git worktree add /tmp/pre-fidelity 5093963^1
    python tools/bench_protect.py --baseline /tmp/pre-fidelity/src
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

MB = 1 << 20


def make_tree(root: str, size_mb: int, seed: int = 7) -> list[str]:
    """Random files under ``root``; returns their paths."""
    rng = random.Random(seed)
    total = size_mb * MB
    paths: list[str] = []
    big, small = int(total * 0.9), total - int(total * 0.9)
    for i in range(max(1, size_mb // 100)):
        path = os.path.join(root, "large", f"blob-{i}.bin")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(os.urandom(big // max(1, size_mb // 100)))
        paths.append(path)
    written = 0
    while written < small:
        n = rng.randint(4 << 10, 64 << 10)
        path = os.path.join(root, f"d{rng.randint(0, 49):02d}", f"s{rng.randint(0, 9)}",
                            f"f{len(paths)}.dat")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(os.urandom(n) if len(paths) % 2 else _text(rng, n))
        paths.append(path)
        written += n
    return paths


_WORDS = ("order", "customer", "invoice", "total", "status", "shipped", "paid", "id",
          "address", "street", "city", "2024-05-17", "EUR", "quantity", "sku", "note")


def _text(rng: random.Random, n: int) -> bytes:
    """``n`` bytes of log-like text: compressible, as much of a real tree is."""
    words: list[str] = []
    size = 0
    while size < n:
        word = rng.choice(_WORDS) if rng.random() < 0.8 else str(rng.randrange(10**6))
        words.append(word)
        size += len(word) + 1
    return " ".join(words).encode()[:n]


def change_files(paths: list[str], fraction: float = 0.01, seed: int = 11) -> int:
    """Overwrite one 4 KiB block in ``fraction`` of the files."""
    rng = random.Random(seed)
    chosen = rng.sample(paths, max(1, int(len(paths) * fraction)))
    for path in chosen:
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.seek(rng.randrange(0, max(1, size - 4096)))
            f.write(os.urandom(4096))
    return len(chosen)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_tar(tree: str, out: str) -> None:
    subprocess.run(["tar", "cf", out, "-C", tree, "."], check=True)


def run_restic(tree: str, repo: str) -> None:
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": repo}
    if not os.path.exists(os.path.join(repo, "config")):
        subprocess.run(["restic", "init", "-q"], env=env, check=True)
    subprocess.run(["restic", "backup", "-q", tree], env=env, check=True)


class Protector:
    """protectflow protect of the tree, through operations or the fs hooks."""

    def __init__(self, tree: str, bank_dir: str, workdir: str, *, fsync: bool = True) -> None:
        self.tree, self.bank_dir, self.workdir, self.fsync = tree, bank_dir, workdir, fsync
        try:
            from protectflow import operations
            self.operations: Any = operations
            self.how = "protectflow.operations.protect (serial executor)"
        except ImportError:
            self.operations = None
            self.how = "the fs plugin's hooks, called directly"
        self.plan = os.path.join(workdir, "plan.json")
        with open(self.plan, "w") as f:
            json.dump({"name": "bench", "resources": [{
                "type": "protectflow::fs::Directory", "id": "tree",
                "extra_info": {"path": tree}}]}, f)

    def __call__(self) -> dict[str, Any]:
        from protectflow.bank import Bank, CheckpointStore
        from protectflow.dag.model import Resource
        from protectflow.plugins.builtin.fs import FsProtectOperation

        bank = Bank(self.bank_dir, fsync=self.fsync)
        if self.operations is not None:
            result = self.operations.protect(self.plan, bank=bank, executor="serial")
            if not result.ok:
                raise SystemExit(f"protect failed: {result.report}")
            return {}
        checkpoint = CheckpointStore(bank).create({"name": "bench"}, {}, "-", "bench")
        resource = Resource("protectflow::fs::Directory", "tree", extra_info={"path": self.tree})
        out: dict[str, Any] = FsProtectOperation().on_prepare_finish(
            checkpoint, resource, None, {})
        return out


#: DEFERRED: each round works in a folder of its own, deleted only when every
#: round is done. On ext4 without a journal (this machine's disk) a new inode
#: is never one freed in the last 60-300 s: each create scans past every
#: recently freed inode of its group (``recently_deleted`` in the kernel's
#: ``find_inode_bit``), so deleting a restored tree of 4,000 files made the
#: next tool's restore pay 0.5-1.5 s of kernel time for it (perf: 45-60 % of
#: a restore's cycles), whichever tool came next. Deleting at the end keeps
#: that cost out of every figure. Bytes a round keeps, in tree sizes: three
#: repositories and three restored trees (the tar archives are deleted at
#: once: a handful of inodes).
ROUND_BYTES = 6.5
#: --baseline: what the work since the baseline may cost a first protect
#: (issue 12: the fidelity work -- owners, xattrs and ACLs, hard links, holes,
#: files that change while read -- at most 10%), wall and CPU.
FIDELITY_LIMIT = 1.10
TOOLS = ("tar", "tar+fsync", "restic", "protectflow", "pf --no-fsync")
RESTORE_TOOLS = ("tar -x", "restic restore", "pf restore")
#: (run, numerator, denominator, limit): the issue's targets, like for like
#: (durable against durable, page cache against page cache) and across.
TARGETS = (("first", "protectflow", "tar+fsync", 2.0), ("first", "pf --no-fsync", "tar", 2.0),
           ("first", "protectflow", "tar", 2.0), ("first", "protectflow", "restic", 1 / 3),
           ("second", "protectflow", "restic", 1 / 5),
           ("restore", "pf restore", "tar -x", 1.5),
           ("restore", "pf restore", "restic restore", 1 / 3))


def restore_round(tree: str, work: str, rep: int, has_restic: bool) -> dict[str, float]:
    """Restore the whole tree into fresh folders with each tool."""
    from protectflow import operations
    from protectflow.bank import Bank, CheckpointStore

    bank = Bank(os.path.join(work, "bank"))
    latest = CheckpointStore(bank).list(limit=1)[0].id
    params = {"protectflow::fs::Directory": {"target": os.path.join(work, "r-pf")}}
    env = {**os.environ, "RESTIC_PASSWORD": "bench",
           "RESTIC_REPOSITORY": os.path.join(work, "restic")}

    def pf() -> None:
        if not operations.restore(latest, bank=bank, executor="serial", parameters=params).ok:
            raise SystemExit("protectflow restore failed")

    def tar_x() -> None:
        os.makedirs(os.path.join(work, "r-tar"))
        subprocess.run(["tar", "xf", os.path.join(work, "first.tar"), "-C",
                        os.path.join(work, "r-tar")], check=True)

    def restic() -> None:
        subprocess.run(["restic", "restore", "-q", "latest", "--target",
                        os.path.join(work, "r-restic")], env=env, check=True)

    jobs = {"tar -x": tar_x, "restic restore": restic, "pf restore": pf}
    order = [t for t in RESTORE_TOOLS if t != "restic restore" or has_restic]
    order = order[rep % len(order):] + order[:rep % len(order)]
    out: dict[str, float] = {}
    for tool in order:
        subprocess.run(["sync"], check=False)
        out[tool], _ = timed(jobs[tool])
    print("  restore: " + ", ".join(f"{k} {out[k]:.2f} s" for k in RESTORE_TOOLS if k in out)
          + f"  (in the order {', '.join(order)})")
    return out


def compression(tree: str, bank: str) -> float:
    """Tree bytes over the bank's chunk bytes."""
    def size(root: str) -> int:
        return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(root)
                   for n in names)
    return size(tree) / max(1, size(os.path.join(bank, "chunks")))


def run_tar_fsync(tree: str, out: str) -> None:
    """tar, then fsync its output: durable, as restic's and protectflow's are."""
    run_tar(tree, out)
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def one_round(tree: str, work: str, paths: list[str], rep: int, has_restic: bool,
              baseline: str | None = None) -> dict[str, dict[str, float]]:
    """A first and a second (1% changed) run of every tool into fresh repositories."""
    protector = Protector(tree, os.path.join(work, "bank"), work)
    unsynced = Protector(tree, os.path.join(work, "bank-nofsync"), work, fsync=False)
    results: dict[str, dict[str, float]] = {"first": {}, "second": {}}
    for run in ("first", "second"):
        if run == "second":
            print(f"  changed {change_files(paths, seed=11 + rep)} files (1%)")
        jobs = {"tar": lambda r=run: run_tar(tree, os.path.join(work, f"{r}.tar")),
                "tar+fsync": lambda r=run: run_tar_fsync(tree, os.path.join(work, f"{r}-f.tar")),
                "restic": lambda: run_restic(tree, os.path.join(work, "restic")),
                "protectflow": protector, "pf --no-fsync": unsynced}
        # Each round starts at another tool: a tool that runs right after
        # restic (which churns through memory) runs slower on some machines,
        # so every tool takes every place in turn (--repeat 5).
        order = [t for t in TOOLS if t in jobs and (t != "restic" or has_restic)]
        order = order[rep % len(order):] + order[:rep % len(order)]
        for tool in order:
            subprocess.run(["sync"], check=False)  # no tool pays for another's writes
            results[run][tool], _ = timed(jobs[tool])
        print(f"  {run} run: " + ", ".join(f"{k} {results[run][k]:.2f} s"
                                           for k in TOOLS if k in results[run])
              + f"  (in the order {', '.join(order)})")
        print(f"  protectflow bank: {inodes(os.path.join(work, 'bank'))}")
    print(f"  compression: tree / chunk bytes = "
          f"{compression(tree, os.path.join(work, 'bank')):.3f}")
    results["restore"] = restore_round(tree, work, rep, has_restic)
    if baseline:
        results["fidelity"] = fidelity_round(tree, work, rep, baseline)
    for run in ("first", "second"):
        for name in (f"{run}.tar", f"{run}-f.tar"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(work, name))
    return results


def fidelity_round(tree: str, work: str, rep: int, baseline: str) -> dict[str, float]:
    """First protects by this checkout's code and by ``baseline`` (a src/
    folder of other code), each in a child process that times its own
    protect (wall and CPU of all its threads), in alternating order."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    out: dict[str, float] = {}
    order = [("this", here), ("baseline", os.path.abspath(baseline))]
    for name, src in order[rep % 2:] + order[:rep % 2]:
        subprocess.run(["sync"], check=False)
        bank = os.path.join(work, f"bank-{name}")
        child = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child-protect", tree, bank],
            env={**os.environ, "PYTHONPATH": src}, check=True, capture_output=True, text=True)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        out[name], out[f"{name} cpu"] = figures["seconds"], figures["cpu"]
    print(f"  fidelity: first protect by this code {out['this']:.2f} s "
          f"(cpu {out['this cpu']:.2f} s), by the baseline {out['baseline']:.2f} s "
          f"(cpu {out['baseline cpu']:.2f} s)")
    return out


def child_protect(tree: str, bank: str) -> int:
    """One first protect, timed from inside (no interpreter start): prints
    ``{"seconds": wall, "cpu": user + system of every thread}``."""
    import resource

    protector = Protector(tree, bank, os.path.dirname(bank))
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    protector()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(json.dumps({"seconds": wall, "cpu": cpu}))
    return 0


def inodes(root: str) -> str:
    """How many files and folders are under ``root`` (the bank's inode cost)."""
    files = folders = 0
    for _, dirs, names in os.walk(root):
        folders += len(dirs)
        files += len(names)
    return f"{files} files, {folders} folders"


def report(rounds: list[dict[str, dict[str, float]]]) -> None:
    """The median of each figure, and each target's ratio."""
    med = {run: {tool: statistics.median(r[run][tool] for r in rounds)
                 for tool in (*TOOLS, *RESTORE_TOOLS) if tool in rounds[0][run]}
           for run in ("first", "second", "restore")}
    fidelity = {k: statistics.median(r["fidelity"][k] for r in rounds)
                for k in rounds[0].get("fidelity", {})}
    print(f"\nmedian of {len(rounds)} round(s), seconds:")
    print(f"{'run':8}" + "".join(f"{t:>15}" for t in med["first"]))
    for run, row in med.items():
        if run == "restore":
            print(f"{'':8}" + "".join(f"{t:>15}" for t in row))
            print(f"{run:8}" + "".join(f"{v:15.2f}" for v in row.values()))
        else:
            print(f"{run:8}" + "".join(f"{v:15.2f}" for v in row.values()))
    for run, num, den, limit in TARGETS:
        if den in med[run] and num in med[run]:
            ratio = med[run][num] / med[run][den]
            verdict = "met" if ratio <= limit else "NOT met"
            print(f"{run} run: {num}/{den} = {ratio:.2f}x (target <= {limit}x: {verdict})")
    if fidelity:
        # Each round's pair runs back to back, so the median of the per-round
        # ratios is what a shift of the machine's speed between rounds (this
        # machine's page-cache and inode costs drift by 2x) cannot move.
        for what, key in (("wall", ""), ("cpu", " cpu")):
            pairs = sorted(r["fidelity"][f"this{key}"] / r["fidelity"][f"baseline{key}"]
                           for r in rounds)
            ratio = statistics.median(pairs)
            verdict = "met" if ratio <= FIDELITY_LIMIT else "NOT met"
            print(f"fidelity: first protect, this code / baseline, {what}: median of the "
                  f"per-round ratios {ratio:.3f}x ({pairs[0]:.2f}-{pairs[-1]:.2f}; medians "
                  f"{fidelity[f'this{key}']:.2f} / {fidelity[f'baseline{key}']:.2f} s) "
                  f"(target <= {FIDELITY_LIMIT}x: {verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5,
                        help="rounds (fresh repositories each, each starting at the next "
                        "tool); medians are reported")
    parser.add_argument("--dir", help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--baseline", metavar="SRC",
                        help="also time a first protect by the protectflow in SRC (another "
                        "checkout's src/ folder) against this checkout's, each in a child "
                        "process: the cost of the work between them (see FIDELITY_LIMIT)")
    parser.add_argument("--child-protect", nargs=2, metavar=("TREE", "BANK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_protect:
        return child_protect(*args.child_protect)
    work = args.dir or tempfile.mkdtemp(prefix="pf-bench-")
    os.makedirs(work, exist_ok=True)
    tree = os.path.join(work, "tree")
    try:
        t, paths = timed(lambda: make_tree(tree, args.size_mb))
        print(f"tree: {len(paths)} files, {args.size_mb} MB, made in {t:.1f} s ({work})")
        has_restic = shutil.which("restic") is not None
        if not has_restic:
            print("restic: not installed, skipped (apt-get install restic)")
        print(f"protectflow: {Protector(tree, os.path.join(work, 'bank'), work).how}")
        # Everything a round writes stays until the end (see DEFERRED).
        per_round = ROUND_BYTES + (2 if args.baseline else 0)  # two more banks
        defer = shutil.disk_usage(work).free > args.repeat * per_round * args.size_mb * MB
        if not defer:
            print("note: too little free space to keep every round's output until the end; "
                  "each round's is deleted after it, and the next round's creates pay for it "
                  "(see DEFERRED in this file)")
        rounds = []
        for rep in range(args.repeat):
            print(f"round {rep + 1}:")
            rwork = os.path.join(work, f"round-{rep + 1}")
            shutil.rmtree(rwork, ignore_errors=True)  # left by a killed run
            os.makedirs(rwork)
            rounds.append(one_round(tree, rwork, paths, rep, has_restic, args.baseline))
            if not defer:
                shutil.rmtree(rwork)
        report(rounds)
        if not args.keep:  # the tree of a --dir stays for the next run
            for rep in range(args.repeat):
                shutil.rmtree(os.path.join(work, f"round-{rep + 1}"), ignore_errors=True)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
