"""Protect and restore a tree of many small files: protectflow against tar and restic.

    python tools/bench_smallfiles.py [--files 100000] [--rounds 3] [--work DIR]
                                     [--executor serial|threads] [--keep]

Builds, once (cached in ``--work`` and reused by later runs with the same
``--files``), a deterministic tree of ``--files`` files of 1-8 KiB spread over
folders up to 20 levels deep; a third of the files are log-like text (which
compresses), a third random bytes, a third half of each. Then each round
times, side by side and into fresh repositories:

- protect: ``tar -cf`` of the tree, ``tar -cf`` followed by an fsync of the
  archive (``tar+fsync``: durable, as restic's and protectflow's output is),
  ``restic backup`` into a new repository, and protectflow's first protect
  (``protectflow.operations.protect`` of a plan with one
  ``protectflow::fs::Directory`` resource) into a new bank;
- restore, each into a fresh folder: ``tar -xf`` of that round's archive,
  ``restic restore latest`` and protectflow restore of the checkpoint just
  made; each restored tree's file count is checked (outside the timing).

Every tool starts after a ``sync`` (none pays for another's writes), every
round's output is kept until all rounds are done (deleting 400,000 files
would tax the next round's creates: see ``DEFERRED`` in ``bench_protect.py``),
and each round starts at the next tool, so that a tool's place in the order does not
favour it. The tree is read warm from the page cache by every tool alike.
It reports per tool the median with the spread (min-max) over ``--rounds``,
and the ratios pf/tar, pf/tar+fsync and pf/restic (protect) and pf/tar -x
and pf/restic (restore), each as the ratio of medians with the spread of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from protectflow import operations
from protectflow.bank import Bank

KIB = 1 << 10
DEPTH = 20
#: Bump when the tree's recipe changes, so that a cached tree is rebuilt.
RECIPE = 1
RESTIC_PASSWORD = "bench"

PROTECT_TOOLS = ("tar", "tar+fsync", "restic", "protectflow")
RESTORE_TOOLS = ("tar -x", "restic restore", "pf restore")
#: (section, numerator, denominator)
RATIOS = (("protect", "protectflow", "tar"), ("protect", "protectflow", "tar+fsync"),
          ("protect", "protectflow", "restic"), ("restore", "pf restore", "tar -x"),
          ("restore", "pf restore", "restic restore"))

_WORDS = ("order", "customer", "invoice", "total", "status", "shipped", "paid", "id",
          "address", "street", "city", "2024-05-17", "EUR", "quantity", "sku", "note")


def _corpus(rng: random.Random, size: int) -> bytes:
    """Log-like text to take file contents from (cheaper than words per file)."""
    words = [rng.choice(_WORDS) if rng.random() < 0.8 else str(rng.randrange(10**6))
             for _ in range(size // 5)]
    return " ".join(words).encode()[:size]


def _folders(rng: random.Random, count: int) -> list[str]:
    """``count`` relative folder paths, one chain reaching ``DEPTH`` levels."""
    folders = [os.path.join(*(f"deep{level:02d}" for level in range(1, depth + 1)))
               for depth in range(1, DEPTH + 1)]
    depth_of = {path: path.count(os.sep) + 1 for path in folders}
    while len(folders) < count:
        parent = rng.choice(folders) if rng.random() < 0.9 else ""
        if parent and depth_of[parent] >= DEPTH:
            continue
        path = os.path.join(parent, f"d{len(folders):05d}")
        depth_of[path] = depth_of.get(parent, 0) + 1
        folders.append(path)
    return folders


def make_tree(root: str, files: int, seed: int = 12) -> int:
    """A deterministic tree of ``files`` files of 1-8 KiB under ``root``; its bytes."""
    rng = random.Random(seed)
    corpus = _corpus(rng, 4 * 1024 * KIB)
    folders = _folders(rng, max(DEPTH, files // 25))
    for folder in folders:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    total = 0
    for i in range(files):
        size = rng.randint(1 * KIB, 8 * KIB)
        start = rng.randrange(len(corpus) - size)
        text = corpus[start:start + size]
        kind = i % 3
        data = text if kind == 0 else rng.randbytes(size) if kind == 1 else (
            text[:size // 2] + rng.randbytes(size - size // 2))
        with open(os.path.join(root, rng.choice(folders), f"f{i:06d}.dat"), "wb") as f:
            f.write(data)
        total += size
    return total


def cached_tree(work: str, files: int) -> tuple[str, int]:
    """The tree for ``files`` in ``work``, built unless a finished one is there."""
    tree = os.path.join(work, f"tree-{files}")
    stamp = os.path.join(work, f"tree-{files}.json")
    recipe = {"files": files, "recipe": RECIPE}
    try:
        with open(stamp) as f:
            done = json.load(f)
        if done["recipe"] == recipe:
            print(f"tree: {files} files, {done['bytes'] / (1 << 20):.0f} MiB (cached, {tree})")
            return tree, int(done["bytes"])
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(tree, ignore_errors=True)  # a half-built tree from a killed run
    start = time.perf_counter()
    size = make_tree(tree, files)
    with open(stamp, "w") as f:
        json.dump({"recipe": recipe, "bytes": size}, f)
    print(f"tree: {files} files, {size / (1 << 20):.0f} MiB, up to {DEPTH} levels, "
          f"made in {time.perf_counter() - start:.1f} s ({tree})")
    return tree, size


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _restic_env(repo: str) -> dict[str, str]:
    return {**os.environ, "RESTIC_PASSWORD": RESTIC_PASSWORD, "RESTIC_REPOSITORY": repo}


class Round:
    """One round's fresh repositories and restore folders under ``base``."""

    def __init__(self, tree: str, base: str, executor: str) -> None:
        self.tree, self.base, self.executor = tree, base, executor
        self.tar = os.path.join(base, "tree.tar")
        self.tar_f = os.path.join(base, "tree-f.tar")
        self.restic = os.path.join(base, "restic")
        self.bank = os.path.join(base, "bank")
        self.plan = os.path.join(base, "plan.json")
        self.checkpoint = ""
        os.makedirs(base)
        with open(self.plan, "w") as f:
            json.dump({"name": "bench-smallfiles", "resources": [{
                "type": "protectflow::fs::Directory", "id": "tree",
                "extra_info": {"path": tree}}]}, f)
        # restic's init is set-up, not backup: done before the clock starts.
        subprocess.run(["restic", "init", "-q"], env=_restic_env(self.restic), check=True,
                       stdout=subprocess.DEVNULL)

    def protect_jobs(self) -> dict[str, Callable[[], None]]:
        return {"tar": lambda: self._tar(self.tar),
                "tar+fsync": self._tar_fsync,
                "restic": lambda: subprocess.run(
                    ["restic", "backup", "-q", self.tree], env=_restic_env(self.restic),
                    check=True),
                "protectflow": self._pf_protect}

    def restore_jobs(self) -> dict[str, Callable[[], None]]:
        return {"tar -x": self._tar_x,
                "restic restore": lambda: subprocess.run(
                    ["restic", "restore", "-q", "latest", "--target", self._out("restic")],
                    env=_restic_env(self.restic), check=True),
                "pf restore": self._pf_restore}

    def _out(self, tool: str) -> str:
        return os.path.join(self.base, f"restored-{tool}")

    def _tar(self, archive: str) -> None:
        subprocess.run(["tar", "-cf", archive, "-C", self.tree, "."], check=True)

    def _tar_fsync(self) -> None:
        self._tar(self.tar_f)
        _fsync(self.tar_f)

    def _tar_x(self) -> None:
        os.makedirs(self._out("tar"))
        subprocess.run(["tar", "-xf", self.tar, "-C", self._out("tar")], check=True)

    def _pf_protect(self) -> None:
        result = operations.protect(self.plan, bank=Bank(self.bank), executor=self.executor)
        if not result.ok:
            raise SystemExit(f"protectflow protect failed: {result.report}")
        self.checkpoint = result.checkpoint.id

    def _pf_restore(self) -> None:
        params = {"protectflow::fs::Directory": {"target": self._out("pf")}}
        result = operations.restore(self.checkpoint, bank=Bank(self.bank),
                                    executor=self.executor, parameters=params)
        if not result.ok:
            raise SystemExit(f"protectflow restore failed: {result.report}")

    def check_restores(self, files: int) -> None:
        """Every restore gave back ``files`` files (not timed)."""
        for tool in ("tar", "restic", "pf"):
            count = sum(len(names) for _, _, names in os.walk(self._out(tool)))
            if count != files:
                raise SystemExit(f"{tool} restored {count} files, not {files}")


def timed_in_turn(jobs: dict[str, Callable[[], None]], order: list[str]) -> dict[str, float]:
    """Run ``jobs`` in ``order``, each after a sync; their wall times."""
    out: dict[str, float] = {}
    for tool in order:
        subprocess.run(["sync"], check=False)
        start = time.perf_counter()
        jobs[tool]()
        out[tool] = time.perf_counter() - start
    return out


def rotated(tools: tuple[str, ...], rep: int) -> list[str]:
    k = rep % len(tools)
    return [*tools[k:], *tools[:k]]


def one_round(tree: str, work: str, files: int, *, rep: int,
              executor: str) -> dict[str, dict[str, float]]:
    """Protect then restore with every tool into fresh places; the times."""
    base = os.path.join(work, f"round-{rep}")
    shutil.rmtree(base, ignore_errors=True)
    rnd = Round(tree, base, executor)
    try:
        order = rotated(PROTECT_TOOLS, rep)
        protect = timed_in_turn(rnd.protect_jobs(), order)
        print("  protect: " + ", ".join(f"{t} {protect[t]:.2f} s" for t in PROTECT_TOOLS)
              + f"  (order: {', '.join(order)})")
        order = rotated(RESTORE_TOOLS, rep)
        restore = timed_in_turn(rnd.restore_jobs(), order)
        print("  restore: " + ", ".join(f"{t} {restore[t]:.2f} s" for t in RESTORE_TOOLS)
              + f"  (order: {', '.join(order)})")
        rnd.check_restores(files)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return {"protect": protect, "restore": restore}


def report(rounds: list[dict[str, dict[str, float]]]) -> None:
    """Medians with their spread, then the ratios."""
    print(f"\nmedian (min-max) of {len(rounds)} round(s), seconds:")
    for section, tools in (("protect", PROTECT_TOOLS), ("restore", RESTORE_TOOLS)):
        for tool in tools:
            times = [r[section][tool] for r in rounds]
            print(f"  {section:8}{tool:16}{statistics.median(times):8.2f}"
                  f"  ({min(times):.2f}-{max(times):.2f})")
    print("ratios (of medians; per-round min-max):")
    for section, num, den in RATIOS:
        per_round = [r[section][num] / r[section][den] for r in rounds]
        ratio = (statistics.median(r[section][num] for r in rounds)
                 / statistics.median(r[section][den] for r in rounds))
        print(f"  {section:8}{num}/{den:16}{ratio:7.2f}x"
              f"  ({min(per_round):.2f}-{max(per_round):.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds (fresh repositories each, each starting at the next tool)")
    parser.add_argument("--work", help="work folder, where the tree is cached "
                        "(default: a temporary one, removed at the end)")
    parser.add_argument("--executor", default="serial", choices=("serial", "threads"))
    parser.add_argument("--keep", action="store_true", help="keep a temporary work folder")
    args = parser.parse_args(argv)
    if shutil.which("restic") is None:
        parser.error("restic is not installed (apt-get install restic)")
    work = args.work or tempfile.mkdtemp(prefix="pf-bench-small-")
    os.makedirs(work, exist_ok=True)
    try:
        tree, _ = cached_tree(work, args.files)
        print(f"protectflow: operations.protect/restore, {args.executor} executor; "
              f"restic: {shutil.which('restic')}")
        rounds = []
        for rep in range(args.rounds):
            print(f"round {rep + 1}:")
            rounds.append(one_round(tree, work, args.files, rep=rep, executor=args.executor))
        report(rounds)
        # Only now: a round's 400,000 deleted inodes would tax the next
        # round's creates (see DEFERRED in bench_protect.py).
        for rep in range(args.rounds):
            shutil.rmtree(os.path.join(work, f"round-{rep}"), ignore_errors=True)
    finally:
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
