"""Looking inside a checkpoint of many files: ``protectflow ls`` and ``diff``
beside ``restic ls`` and ``restic diff``.

    python tools/bench_inside.py [--files 100000] [--rounds 3] [--work DIR] [--keep]

Takes ``tools/bench_smallfiles.py``'s tree (``--files`` files of 1-8 KiB up
to 20 levels deep, built once and cached in ``--work``), protects it twice
with protectflow and backs it up twice with restic, 1% of the files changed
in between (not timed). Then each round times, side by side and each
starting at the next tool:

- ``protectflow ls ID`` and ``restic ls ID`` (every file of the second
  snapshot; output to /dev/null), and with ``-l`` / ``--long``;
- ``protectflow diff ID1 ID2`` and ``restic diff ID1 ID2``.

Both are the installed commands, run as a user runs them (a process each,
start-up included). It prints per command the median (min-max) over
``--rounds`` and the ratios protectflow/restic, each the ratio of medians
with the spread of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_smallfiles import _restic_env, cached_tree

#: The commands timed, by label.
COMMANDS = ("ls", "ls -l", "diff")


def _pf() -> list[str]:
    found = shutil.which("protectflow") or os.path.join(os.path.dirname(sys.executable),
                                                        "protectflow")
    return [found]


def _touch_one_percent(tree: str) -> int:
    """Append a line to every 100th file (sorted): 1% changed."""
    paths = sorted(os.path.join(d, n) for d, _, names in os.walk(tree) for n in names)
    for path in paths[::100]:
        with open(path, "ab") as f:
            f.write(b"changed\n")
    return len(paths[::100])


def _prepare(tree: str, base: str) -> dict[str, str]:
    """Two protectflow checkpoints and two restic snapshots of ``tree``,
    1% of its files changed between them (the tree is changed back after)."""
    os.makedirs(base)
    bank, repo = os.path.join(base, "bank"), os.path.join(base, "restic")
    plan = os.path.join(base, "plan.json")
    with open(plan, "w") as f:
        json.dump({"name": "bench-inside", "resources": [{
            "type": "protectflow::fs::Directory", "id": "tree",
            "extra_info": {"path": tree}}]}, f)
    env = _restic_env(repo)
    subprocess.run(["restic", "init", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
    ids: dict[str, str] = {}
    for n in ("1", "2"):
        if n == "2":
            print(f"  changed {_touch_one_percent(tree)} files")
        start = time.perf_counter()
        done = subprocess.run([*_pf(), "protect", plan, "--bank", bank, "--json", "-q"],
                              check=True, capture_output=True, text=True)
        ids[f"pf{n}"] = json.loads(done.stdout)["checkpoint"]
        middle = time.perf_counter()
        subprocess.run(["restic", "backup", "-q", tree], env=env, check=True)
        snaps = json.loads(subprocess.run(["restic", "snapshots", "--json"], env=env,
                                          check=True, capture_output=True, text=True).stdout)
        ids[f"restic{n}"] = snaps[-1]["short_id"]
        print(f"  protect {n}: protectflow {middle - start:.1f} s, restic "
              f"{time.perf_counter() - middle:.1f} s")
    ids["bank"], ids["repo"] = bank, repo
    return ids


def _jobs(ids: dict[str, str]) -> dict[str, tuple[list[str], list[str]]]:
    pf = [*_pf()]
    bank = ["--bank", ids["bank"]]
    return {
        "ls": ([*pf, "ls", ids["pf2"], *bank], ["restic", "ls", ids["restic2"]]),
        "ls -l": ([*pf, "ls", "-l", ids["pf2"], *bank],
                  ["restic", "ls", "--long", ids["restic2"]]),
        "diff": ([*pf, "diff", ids["pf1"], ids["pf2"], *bank],
                 ["restic", "diff", ids["restic1"], ids["restic2"]]),
    }


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def one_round(ids: dict[str, str], rep: int) -> dict[str, dict[str, float]]:
    env = _restic_env(ids["repo"])
    out: dict[str, dict[str, float]] = {}
    for label, (pf, restic) in _jobs(ids).items():
        order = [("protectflow", pf), ("restic", restic)]
        if rep % 2:
            order.reverse()
        out[label] = {tool: _timed(command, env) for tool, command in order}
        print(f"  {label:6} protectflow {out[label]['protectflow']:.2f} s, "
              f"restic {out[label]['restic']:.2f} s")
    return out


def report(rounds: list[dict[str, dict[str, float]]]) -> None:
    print(f"\nmedian (min-max) of {len(rounds)} round(s), seconds:")
    for label in COMMANDS:
        for tool in ("protectflow", "restic"):
            times = [r[label][tool] for r in rounds]
            print(f"  {label:6} {tool:12}{statistics.median(times):8.2f}"
                  f"  ({min(times):.2f}-{max(times):.2f})")
    print("ratios protectflow/restic (of medians; per-round min-max):")
    for label in COMMANDS:
        per_round = [r[label]["protectflow"] / r[label]["restic"] for r in rounds]
        ratio = (statistics.median(r[label]["protectflow"] for r in rounds)
                 / statistics.median(r[label]["restic"] for r in rounds))
        print(f"  {label:6} {ratio:6.2f}x  ({min(per_round):.2f}-{max(per_round):.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", help="work folder, where the tree is cached "
                        "(default: a temporary one, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep a temporary work folder")
    args = parser.parse_args(argv)
    if shutil.which("restic") is None:
        parser.error("restic is not installed (apt-get install restic)")
    work = args.work or tempfile.mkdtemp(prefix="pf-bench-inside-")
    os.makedirs(work, exist_ok=True)
    try:
        cached, _ = cached_tree(work, args.files)
        tree = os.path.join(work, "inside-tree")  # changed by the run: a copy
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(cached, tree, symlinks=True)
        base = os.path.join(work, "inside")
        shutil.rmtree(base, ignore_errors=True)
        print(f"protectflow: {_pf()[0]}; restic: {shutil.which('restic')}")
        ids = _prepare(tree, base)
        rounds = []
        for rep in range(args.rounds):
            print(f"round {rep + 1}:")
            rounds.append(one_round(ids, rep))
        report(rounds)
    finally:
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
