"""A bank's keys: unlocking a password bank, and ``key rotate`` against a protect.

    python tools/bench_keys.py unlock [--repeat 3] [--baseline SRC]
    python tools/bench_keys.py rotate [--size-mb 1024] [--repeat 3] [--dir DIR]

``unlock``: the time and peak memory of unlocking a bank locked by a
password (``Bank(url).keyring``, in a fresh process each time), side by side:

- 1 entry: the bank's own;
- 20 entries, the right one tried last: 19 entries of other passwords (the
  bank's other users) sorted before it, the worst case of a real bank;
- 20 planted + the right one: 10 entries asking for scrypt ``n=2**20`` (1 GiB
  each) and 10 malformed ones, sorted before the right one: what someone who
  can write the bank can do to it;
- 10 dear planted + the right one: the 10 expensive ones alone (code that
  stops at a malformed entry gets that far).

With ``--baseline SRC`` (another checkout's ``src/``, e.g. the commit before
the entries were bounded) the same rows again, by that code.

``rotate``: the tree of ``tools/bench_protect.py`` (about ``--size-mb`` MB),
then per round: a fresh protect of it into a new bank, and ``key rotate`` of
that bank; each in a child process that reports its wall time, CPU time and
peak memory. Medians, and the ratio rotate / protect.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "bench password"
ROWS = ("1 entry", "20 entries, the right one last", "20 planted + the right one",
        "10 dear planted + the right one")


def _child(env: dict[str, str], *argv: str) -> dict[str, float] | str:
    """A child's figures, or how it failed (its last line of stderr)."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "child", *argv],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _status(field: str) -> float:
    """A memory figure of this process from /proc (MiB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _measured(work: Any) -> None:
    """Run ``work()``; print its wall and CPU seconds, the process's peak
    resident memory while it ran and how much above the memory at its start
    (MiB). The peak is reset first (Linux: ``/proc/self/clear_refs``), so
    the imports before do not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak resident size
    rss = _status("VmRSS")
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    work()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    peak = _status("VmHWM")
    print(json.dumps({"seconds": wall, "cpu": cpu, "peak_mib": peak,
                      "added_mib": peak - rss}))


# -- unlock -------------------------------------------------------------------------
def _entry(**fields: Any) -> bytes:
    data = {"kdf": "scrypt", "n": 1 << 15, "r": 8, "p": 1,
            "salt": base64.b64encode(os.urandom(16)).decode(),
            "nonce": base64.b64encode(os.urandom(12)).decode(),
            "wrapped": base64.b64encode(os.urandom(48)).decode(),
            "created_at": "2024-01-01T00:00:00Z", **fields}
    return json.dumps(data).encode()


def make_banks(work: str) -> dict[str, str]:
    """The three banks of the unlock rows (made by this checkout's code)."""
    from protectflow.bank import Bank
    from protectflow.bank.objects import _passwords, keys

    os.environ["PROTECTFLOW_PASSWORD"] = PASSWORD
    urls = {}
    for i, row in enumerate(ROWS):
        bank = Bank(os.path.join(work, f"bank-{i}"))
        bank.update_object("a", b"x")
        keys_dir = os.path.join(bank.url, "keys")
        bank_id = keys.config_of(bank).id
        if i == 1:
            for j in range(19):
                entry = _passwords.PasswordEntry.wrap(os.urandom(32), f"other {j}", bank_id)
                with open(os.path.join(keys_dir, f"-other-{j:02d}"), "wb") as f:
                    f.write(entry.to_bytes())
        elif i >= 2:
            for j in range(10):
                with open(os.path.join(keys_dir, f"-dear-{j:02d}"), "wb") as f:
                    f.write(_entry(n=1 << 20))
                if i == 2:
                    with open(os.path.join(keys_dir, f"-junk-{j:02d}"), "wb") as f:
                        f.write(b"{not json" if j % 2 else _entry(salt="short"))
        urls[row] = bank.url
    return urls


def child_unlock(url: str) -> int:
    import warnings

    from protectflow.bank import Bank

    warnings.simplefilter("ignore")
    os.environ["PROTECTFLOW_PASSWORD"] = PASSWORD
    _measured(lambda: Bank(url).keyring)
    return 0


def unlock(args: argparse.Namespace) -> int:
    work = tempfile.mkdtemp(prefix="pf-bench-keys-")
    try:
        env = {**os.environ, "XDG_CONFIG_HOME": os.path.join(work, "config")}
        os.environ.update(env)
        urls = make_banks(work)
        codes = [("this code", os.pathsep.join(sys.path))]
        if args.baseline:
            codes.append(("baseline", args.baseline))
        print(f"unlocking a password bank, median of {args.repeat} (fresh process each)")
        print(f"{'':12}{'entries':34}{'seconds':>10}{'cpu s':>10}{'peak MiB':>10}"
              f"{'added MiB':>11}")
        for name, path in codes:
            for row in ROWS:
                runs = [_child({**env, "PYTHONPATH": path}, "unlock", urls[row])
                        for _ in range(args.repeat)]
                failed = [r for r in runs if isinstance(r, str)]
                if failed:
                    print(f"{name:12}{row:34}failed: {failed[0][:120]}")
                    continue
                med = {k: statistics.median(r[k] for r in runs if not isinstance(r, str))
                       for k in ("seconds", "cpu", "peak_mib", "added_mib")}
                print(f"{name:12}{row:34}{med['seconds']:10.2f}{med['cpu']:10.2f}"
                      f"{med['peak_mib']:10.0f}{med['added_mib']:11.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# -- rotate -------------------------------------------------------------------------
def child_protect(tree: str, bank: str) -> int:
    from protectflow import operations

    plan = os.path.join(os.path.dirname(bank), "plan.json")
    with open(plan, "w") as f:
        json.dump({"name": "bench", "resources": [{
            "type": "protectflow::fs::Directory", "id": "tree",
            "extra_info": {"path": tree}}]}, f)

    def protect() -> None:
        if not operations.protect(plan, bank=bank, executor="serial").ok:
            raise SystemExit("protect failed")
    _measured(protect)
    return 0


def child_rotate(bank: str) -> int:
    from protectflow.bank import Bank
    from protectflow.bank.rotation import rotate_key

    def rotate() -> None:
        result = rotate_key(Bank(bank), owner="bench@here:1")
        if result.problems:
            raise SystemExit(f"rotate found problems: {result.problems}")
    _measured(rotate)
    return 0


def rotate(args: argparse.Namespace) -> int:
    sys.path.insert(0, HERE)
    from bench_protect import make_tree

    work = args.dir or tempfile.mkdtemp(prefix="pf-bench-rotate-")
    os.makedirs(work, exist_ok=True)
    tree = os.path.join(work, "tree")
    env = {**os.environ, "XDG_CONFIG_HOME": os.path.join(work, "config")}
    try:
        if not os.path.isdir(tree):
            paths = make_tree(tree, args.size_mb)
            print(f"tree: {len(paths)} files, {args.size_mb} MB ({work})")
        rows: list[dict[str, dict[str, float]]] = []
        for rep in range(args.repeat):
            bank = os.path.join(work, f"bank-{rep}")
            shutil.rmtree(bank, ignore_errors=True)
            row = {}
            for what, argv in (("protect", ("protect", tree, bank)), ("rotate", ("rotate", bank))):
                subprocess.run(["sync"], check=False)
                figures = _child(env, *argv)
                if isinstance(figures, str):
                    raise SystemExit(f"{what} failed: {figures}")
                row[what] = figures
            rows.append(row)
            print(f"round {rep + 1}: protect {row['protect']['seconds']:.2f} s, rotate "
                  f"{row['rotate']['seconds']:.2f} s")
            shutil.rmtree(bank, ignore_errors=True)
        print(f"\nmedian of {args.repeat}:{'seconds':>12}{'cpu s':>10}{'peak MiB':>10}")
        for what in ("protect", "rotate"):
            med = {k: statistics.median(r[what][k] for r in rows) for k in rows[0][what]}
            print(f"{what:16}{med['seconds']:10.2f}{med['cpu']:10.2f}{med['peak_mib']:10.0f}")
        ratio = statistics.median(r["rotate"]["seconds"] / r["protect"]["seconds"] for r in rows)
        print(f"rotate / fresh protect (median of per-round ratios): {ratio:.2f}x")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("unlock")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--baseline", metavar="SRC", help="another checkout's src/ folder")
    p = sub.add_parser("rotate")
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", help="work folder (kept, tree included, for the next run)")
    p = sub.add_parser("child")
    p.add_argument("argv", nargs="+")
    args = parser.parse_args(argv)
    if args.what == "child":
        kind, *rest = args.argv
        return {"unlock": child_unlock, "protect": child_protect,
                "rotate": child_rotate}[kind](*rest)
    return unlock(args) if args.what == "unlock" else rotate(args)


if __name__ == "__main__":
    sys.exit(main())
