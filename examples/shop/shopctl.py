#!/usr/bin/env python3
"""The sample shop's control script: its writer, and its freeze and thaw.

    shopctl.py writer DIR [--seconds S] [--count N]   take orders
    shopctl.py freeze DIR                             quiesce the writer
    shopctl.py thaw DIR                               let it write again
    shopctl.py check DIR                              orders and uploads agree

The writer takes ``DIR/shop.lock`` (``fcntl.flock``) around each order -- a
row in ``orders.db`` and a receipt file in ``uploads/receipts/`` -- and skips
its turn while ``DIR/FROZEN`` exists. ``freeze`` creates ``FROZEN`` and then
takes the lock once, so it returns only after the order in flight (if any)
is finished; the protectflow ``app`` plugin can equally hold the lock itself
(``lock_file: shop.lock``). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sqlite3
import sys
import time


def _locked(folder: str) -> int:
    fd = os.open(os.path.join(folder, "shop.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def freeze(folder: str) -> None:
    with open(os.path.join(folder, "FROZEN"), "w") as f:
        f.write(f"{time.time()}\n")
    os.close(_locked(folder))  # wait for the order in flight


def thaw(folder: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, "FROZEN"))


def writer(folder: str, seconds: float, count: int) -> int:
    db = sqlite3.connect(os.path.join(folder, "orders.db"), timeout=30)
    receipts = os.path.join(folder, "uploads", "receipts")
    os.makedirs(receipts, exist_ok=True)
    written, end = 0, time.time() + seconds
    while time.time() < end and written < count:
        fd = _locked(folder)
        try:
            if os.path.exists(os.path.join(folder, "FROZEN")):
                continue
            with db:
                cur = db.execute("INSERT INTO orders (customer, total_cents) VALUES (?, ?)",
                                 (f"customer-{written % 7}", 100 + written))
            with open(os.path.join(receipts, f"order-{cur.lastrowid}.txt"), "w") as f:
                f.write(f"order {cur.lastrowid}\n")
            written += 1
        finally:
            os.close(fd)
        time.sleep(0.001)
    db.close()
    return written


def check(folder: str) -> list[str]:
    """Problems: orders without a receipt, receipts without an order."""
    db = sqlite3.connect(os.path.join(folder, "orders.db"))
    ids = {row[0] for row in db.execute("SELECT id FROM orders")}
    db.close()
    receipts = os.path.join(folder, "uploads", "receipts")
    names = os.listdir(receipts) if os.path.isdir(receipts) else []
    files = {int(n[6:-4]) for n in names if n.startswith("order-")}
    seeded = {i for i in ids if i <= 3}  # the seed orders have no receipts
    return ([f"order {i} has no receipt" for i in sorted(ids - files - seeded)]
            + [f"receipt {i} has no order" for i in sorted(files - ids)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["writer", "freeze", "thaw", "check"])
    parser.add_argument("dir")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=10**9)
    args = parser.parse_args(argv)
    if args.command == "freeze":
        freeze(args.dir)
    elif args.command == "thaw":
        thaw(args.dir)
    elif args.command == "writer":
        print(writer(args.dir, args.seconds, args.count))
    else:
        problems = check(args.dir)
        print("\n".join(problems) or "ok")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
