#!/usr/bin/env python3
"""Build the sample shop in DIR, from scratch, with a plan to protect it.

    python examples/shop/make_shop.py DIR

DIR gets ``uploads/`` (a text file, a binary image, a subfolder, an empty
folder and a symlink), ``orders.db`` (SQLite, WAL mode, three orders),
``shopctl.py`` (the writer and the freeze/thaw commands) and ``plan.yaml``,
whose resources carry ``base_dir: DIR`` so the plan works from anywhere.
Standard library only; DIR must not exist or be empty.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def make_uploads(folder: str) -> None:
    uploads = os.path.join(folder, "uploads")
    for sub in ("products", "incoming", "receipts"):
        os.makedirs(os.path.join(uploads, sub))
    with open(os.path.join(uploads, "README.txt"), "w") as f:
        f.write("Files customers and staff uploaded.\n")
    with open(os.path.join(uploads, "products", "mug.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)  # binary, with NULs
    with open(os.path.join(uploads, "products", "catalogue.csv"), "w") as f:
        f.write("sku,name,price\nMUG-1,mug,1200\nTEE-1,t-shirt,1900\n")
    os.chmod(os.path.join(uploads, "products", "catalogue.csv"), 0o600)
    os.symlink("products/mug.png", os.path.join(uploads, "featured.png"))


def make_database(folder: str) -> None:
    db = sqlite3.connect(os.path.join(folder, "orders.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, "
               "total_cents INTEGER NOT NULL, created TEXT DEFAULT CURRENT_TIMESTAMP)")
    with db:
        db.executemany("INSERT INTO orders (customer, total_cents) VALUES (?, ?)",
                       [("alice", 1200), ("bob", 1900), ("carol", 3100)])
    db.close()


def plan(folder: str, python: str = sys.executable) -> dict[str, object]:
    """The plan protecting the shop in ``folder`` (JSON is valid YAML)."""
    base = {"base_dir": os.path.abspath(folder)}
    return {
        "name": "shop",
        "description": "the sample shop: uploads folder and orders database, frozen together",
        "resources": [
            {"type": "protectflow::app::Application", "id": "shop", "name": "the shop",
             "extra_info": {**base, "freeze": [python, "shopctl.py", "freeze", "."],
                            "thaw": [python, "shopctl.py", "thaw", "."]},
             "depends_on": ["protectflow::fs::Directory#uploads",
                            "protectflow::sqlite::Database#orders"]},
            {"type": "protectflow::fs::Directory", "id": "uploads",
             "extra_info": {**base, "path": "uploads"}},
            {"type": "protectflow::sqlite::Database", "id": "orders",
             "extra_info": {**base, "path": "orders.db"}},
        ],
        "parameters": {"protectflow::app::Application": {"freeze_timeout": 300}},
    }


def make_shop(folder: str) -> str:
    """Build the shop in ``folder``; returns the path of its plan."""
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        raise SystemExit(f"make_shop: {folder} is not empty")
    make_uploads(folder)
    make_database(folder)
    shutil.copy(os.path.join(HERE, "shopctl.py"), folder)
    path = os.path.join(folder, "plan.yaml")
    with open(path, "w") as f:
        json.dump(plan(folder), f, indent=2)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(make_shop(sys.argv[1]))
