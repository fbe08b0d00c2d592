"""Reading and writing an fs manifest: the typed classes against the old reader.

    python tools/bench_manifest.py [--entries 100000] [--rounds 5]

Builds, in memory, the JSON of a manifest of ``--entries`` entries as a
protect writes them (one folder per 20 entries, the rest files: half with
two chunks, half packed; owners named, atimes, inode numbers) and times, side
by side in one process and in CPU seconds (``time.process_time``, so that
other work on the machine does not count):

- parse: ``Manifest.from_json`` (every field checked, typed entries built)
  against the reader before the typed documents (``check_entries`` of commit
  266c11a, copied below: the paths and fields checked, the dicts kept);
- serialise: ``Manifest.to_json`` then ``json.dumps`` against ``json.dumps``
  of the dicts the old code kept (it had nothing to convert).

It reports per side the median (min-max) over ``--rounds`` and the ratio
new/old of the medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from protectflow.plugins.builtin.fs._manifest import Manifest

# -- the reader before the typed documents (266c11a, fs/_build.py), unchanged ----------
_TYPES = frozenset(("dir", "file", "symlink", "fifo", "chr", "blk"))
_DIGEST = re.compile(r"[0-9a-f]{16,128}")


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def old_check_entries(entries: Any, what: str) -> None:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{what}: the manifest's entries are not a list of objects")
    problems: list[str] = []
    kinds: dict[str, str] = {".": "dir"}
    for e in entries:
        problem = _path_problem(e.get("path"), e.get("type"), kinds)
        if problem is None:
            problem = _entry_problem(e, kinds)
        if problem is not None:
            problems.append(f"{e.get('path')!r}: {problem}")
        elif e["path"] != ".":
            kinds[e["path"]] = e["type"]
    if not any(e.get("path") == "." and e.get("type") == "dir" for e in entries):
        problems.append("no root folder entry '.'")
    if problems:
        raise ValueError("; ".join(problems[:10]))


def _path_problem(path: Any, kind: Any, kinds: dict[str, str]) -> str | None:
    if not isinstance(path, str) or not path:
        return "not a path"
    if path == ".":
        return None if kind == "dir" else "the root is not a folder"
    if "\0" in path or path.startswith("/"):
        return "an absolute path or one holding NUL"
    parts = path.split("/")
    if ".." in parts:
        return "a '..' component: a stored path may not climb out of its folder"
    if "" in parts or "." in parts:
        return "an empty or '.' component"
    if path in kinds:
        return "a duplicate path"
    parent = _split(path)[0] or "."
    if kinds.get(parent) != "dir":
        return "its folder is not a folder listed before it (a symlink on the way?)"
    return None


def _entry_problem(e: dict[str, Any], kinds: dict[str, str]) -> str | None:
    kind = e.get("type")
    if kind not in _TYPES:
        return f"unknown type {kind!r}"
    if not _ints(e, "mode", "mtime_ns") or not 0 <= e["mode"] <= 0o7777:
        return "no valid mode or mtime"
    if "link" in e:
        return None if kinds.get(e["link"]) == kind and kind != "dir" else (
            "a hard link to no earlier entry of its type")
    if kind == "symlink" and not (isinstance(e.get("target"), str) and e["target"]
                                  and "\0" not in e["target"]):
        return "a symlink without a valid target"
    if kind in ("chr", "blk") and not (isinstance(e.get("rdev"), list) and len(e["rdev"]) == 2
                                       and all(isinstance(n, int) for n in e["rdev"])):
        return "a device without a valid number"
    if kind == "file":
        return _content_problem(e)
    return None


def _content_problem(e: dict[str, Any]) -> str | None:
    if not _ints(e, "size") or e["size"] < 0:
        return "no valid size"
    if "pack" in e:
        ok = (_digest(e["pack"]) and _ints(e, "offset", "length")
              and isinstance(e.get("sha256"), str))
        return None if ok else "a packed file without a valid slice"
    if not isinstance(e.get("chunks"), list) or not all(_digest(d) for d in e["chunks"]):
        return "no valid chunk list"
    return None


def _ints(e: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(e.get(k), int) and not isinstance(e.get(k), bool) for k in keys)


def _digest(value: Any) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


# -- the manifest ----------------------------------------------------------------------
def manifest_json(n: int) -> dict[str, Any]:
    """A manifest of ``n`` entries as a protect writes it (sorted keys, as stored)."""
    meta = {"mode": 0o644, "uid": 1000, "gid": 1000, "user": "alice", "group": "staff"}
    entries: list[dict[str, Any]] = [
        {"path": ".", "type": "dir", "mode": 0o755, "mtime_ns": 1, "atime_ns": 1, **meta}]
    folder = "."
    for i in range(1, n):
        t = 1_700_000_000_000_000_000 + i
        if i % 20 == 1:
            folder = f"d{i:07d}"
            entries.append({"path": folder, "type": "dir", "mtime_ns": t, "atime_ns": t,
                            **meta, "mode": 0o755})
            continue
        e: dict[str, Any] = {"path": f"{folder}/f{i:07d}.log", "type": "file", "mtime_ns": t,
                             "atime_ns": t, "size": 4096 + i, "ino": 1000 + i, "dev": 2049,
                             "ctime_ns": t, **meta}
        if i % 2:
            e["chunks"] = [f"{i:064x}", f"{i + n:064x}"]
        else:
            e.update(pack=f"{i // 64:064x}", offset=i * 17, length=4096 + i, sha256=f"{i:064x}")
        entries.append(e)
    data = {"version": 3, "root": "/srv/data", "chunk_size": 4 << 20, "pack_size": 4 << 20,
            "entries": entries}
    return json.loads(json.dumps(data, sort_keys=True))


def cpu(fn: Callable[[], object], rounds: int) -> list[float]:
    """The CPU seconds of each of ``rounds`` calls of ``fn``."""
    out = []
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
    return out


def show(name: str, old: list[float], new: list[float]) -> None:
    mo, mn = statistics.median(old), statistics.median(new)
    print(f"{name:<10} old {mo:7.3f} s ({min(old):.3f}-{max(old):.3f})   "
          f"new {mn:7.3f} s ({min(new):.3f}-{max(new):.3f})   new/old {mn / mo:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = manifest_json(args.entries)
    manifest = Manifest.from_json(data, what="bench")
    assert json.dumps(manifest.to_json(), sort_keys=True) == json.dumps(data, sort_keys=True)
    print(f"{args.entries} entries, {args.rounds} rounds, CPU seconds (process_time)")
    # interleaved: each round runs old then new, so that load drifts hit both alike
    old_parse: list[float] = []
    new_parse: list[float] = []
    old_dump: list[float] = []
    new_dump: list[float] = []
    for _ in range(args.rounds):
        old_parse += cpu(lambda: old_check_entries(data["entries"], "bench"), 1)
        new_parse += cpu(lambda: Manifest.from_json(data, what="bench"), 1)
        old_dump += cpu(lambda: json.dumps(data, sort_keys=True), 1)
        new_dump += cpu(lambda: json.dumps(manifest.to_json(), sort_keys=True), 1)
    show("parse", old_parse, new_parse)
    show("serialise", old_dump, new_dump)


if __name__ == "__main__":
    main()
