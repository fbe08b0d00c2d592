"""Protect a directory tree: protectflow's fs plugin against tar and restic.

    python tools/bench_protect.py [--size-mb 1024] [--dir DIR] [--keep]

Makes a tree of about ``--size-mb`` MB of random content (90% of the bytes in
a few large files, 10% in many 4-64 KiB files), then times, side by side:

- ``tar cf`` of the tree to the same disk;
- ``restic backup`` into a fresh repository, if ``restic`` is installed;
- protectflow protect into a fresh local bank: through
  ``protectflow.operations.protect`` if it exists, else by calling the fs
  plugin's hooks directly (the output says which).

Then it changes 1% of the files (one 4 KiB block in each) and runs all three
again (tar in full; restic and protectflow incrementally). It prints seconds
and the ratios protect/tar (first run) and protect/restic (second run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
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
            f.write(os.urandom(n))
        paths.append(path)
        written += n
    return paths


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

    def __init__(self, tree: str, bank_dir: str, workdir: str) -> None:
        self.tree, self.bank_dir, self.workdir = tree, bank_dir, workdir
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
        from protectflow.plugins.fs import FsProtectOperation

        bank = Bank(self.bank_dir)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--dir", help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = args.dir or tempfile.mkdtemp(prefix="pf-bench-")
    os.makedirs(work, exist_ok=True)
    tree = os.path.join(work, "tree")
    try:
        t, paths = timed(lambda: make_tree(tree, args.size_mb))
        print(f"tree: {len(paths)} files, {args.size_mb} MB, made in {t:.1f} s ({work})")
        has_restic = shutil.which("restic") is not None
        if not has_restic:
            print("restic: not installed, skipped (apt-get install restic)")
        protector = Protector(tree, os.path.join(work, "bank"), work)
        print(f"protectflow: {protector.how}")
        results: dict[str, dict[str, float]] = {"first": {}, "second": {}}
        for run in ("first", "second"):
            if run == "second":
                print(f"changed {change_files(paths)} files (1%)")
            subprocess.run(["sync"], check=False)
            tar_out = os.path.join(work, f"tree-{run}.tar")
            results[run]["tar"], _ = timed(lambda o=tar_out: run_tar(tree, o))
            if has_restic:
                results[run]["restic"], _ = timed(
                    lambda: run_restic(tree, os.path.join(work, "restic")))
            results[run]["protectflow"], _ = timed(protector)
            print(f"{run} run: " + ", ".join(f"{k} {v:.2f} s" for k, v in results[run].items()))
        first, second = results["first"], results["second"]
        print(f"protect/tar, first run:       {first['protectflow'] / first['tar']:.2f}x")
        if has_restic:
            print(f"protect/restic, first run:    {first['protectflow'] / first['restic']:.2f}x")
            print(f"protect/restic, second run:   "
                  f"{second['protectflow'] / second['restic']:.2f}x")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
