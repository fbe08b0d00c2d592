"""What is inside checkpoints: the stats of a protect, ``ls``, ``find``,
``diff`` and ``stats``, on a real tree and a real SQLite database, each
compared with what the test counts itself."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli

FS = "protectflow::fs::Directory#data"
DB = "protectflow::sqlite::Database#db"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tree (small and large files, a folder, a symlink), a database of two
    tables, and a plan protecting both into ``bank/``."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("hello\n")
    (data / "sub" / "big.bin").write_bytes(os.urandom(3 << 20))  # chunked, not packed
    (data / "sub" / "small.bin").write_bytes(os.urandom(5000))
    (data / "link").symlink_to("a.txt")
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (x)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(7)])
    con.execute("CREATE TABLE empty (y)")
    con.commit()
    con.close()
    (tmp_path / "plan.yaml").write_text(
        "name: inside\nbank: ./bank\nresources:\n"
        f"  - {{type: protectflow::fs::Directory, id: data, extra_info: {{path: {data}}}}}\n"
        f"  - {{type: protectflow::sqlite::Database, id: db, extra_info: "
        f"{{path: {tmp_path / 'db.sqlite'}}}}}\n")
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 0, capsys.readouterr()
    return capsys.readouterr().out


def _protect(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_run(capsys, "protect", "plan.yaml", "--json", "-q"))
    return doc


def _files(root: Path) -> dict[str, int]:
    """Every regular file under ``root`` and its size, as the test counts them."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()}


def test_protect_stats_count_new_then_changed_and_unmodified_files_as_the_test_does(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _protect(capsys)
    files = _files(world / "data")
    fs = next(r for r in first["resources"] if r["resource"] == FS)["stats"]
    assert (fs["files_new"], fs["files_changed"], fs["files_unmodified"]) == (len(files), 0, 0)
    assert fs["bytes_new"] == fs["size"] == sum(files.values())
    assert fs["bytes_read"] == sum(files.values())
    assert fs["bytes_added"] > 0
    db = next(r for r in first["resources"] if r["resource"] == DB)["stats"]
    assert db["files_new"] == 1 and db["size"] == (world / "db.sqlite").stat().st_size
    assert first["stats"]["files"] == len(files) + 1

    (world / "data" / "a.txt").write_text("hello, changed\n")
    (world / "data" / "new.txt").write_text("brand new\n")
    second = _protect(capsys)
    fs = next(r for r in second["resources"] if r["resource"] == FS)["stats"]
    files = _files(world / "data")
    assert (fs["files_new"], fs["files_changed"], fs["files_unmodified"]) == (1, 1, len(files) - 2)
    assert fs["bytes_new"] == len("brand new\n")
    assert fs["bytes_changed"] == len("hello, changed\n")
    assert fs["bytes_unmodified"] == files["sub/big.bin"] + files["sub/small.bin"]
    assert fs["bytes_read"] == fs["bytes_new"] + fs["bytes_changed"]  # the rest not re-read
    assert fs["bytes_added"] < 4096  # one small pack, not the big file again
    db = next(r for r in second["resources"] if r["resource"] == DB)["stats"]
    assert db["files_unmodified"] == 1 and db["bytes_added"] == 0

    # the summary line, the listing's size column and show say the same
    (world / "data" / "a.txt").write_text("once more\n")
    out = _run(capsys, "protect", "plan.yaml")
    assert "Files: 0 new, 1 changed, 4 unmodified (" in out and "added to the bank" in out
    listing = json.loads(_run(capsys, "checkpoints", "list", "--json", "--bank", "bank"))
    newest = listing["checkpoints"][0]
    assert newest["files"] == len(_files(world / "data")) + 1
    assert newest["size"] == sum(_files(world / "data").values()) + (
        world / "db.sqlite").stat().st_size
    assert "(5 files)" in _run(capsys, "checkpoints", "list", "--bank", "bank")
    shown = json.loads(_run(capsys, "checkpoints", "show", newest["id"], "--json",
                            "--bank", "bank"))
    assert shown["stats"]["files_changed"] == 1
    assert "Files: 0 new, 1 changed" in _run(capsys, "checkpoints", "show", newest["id"],
                                             "--bank", "bank")


def test_ls_lists_files_with_size_mode_mtime_and_tables_with_row_counts(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _protect(capsys)["checkpoint"]
    doc = json.loads(_run(capsys, "ls", checkpoint, "--json", "--bank", "bank"))
    by_resource = {r["resource"]: r["items"] for r in doc["resources"]}
    fs = {i["path"]: i for i in by_resource[FS]}
    for rel, size in _files(world / "data").items():
        st = (world / "data" / rel).stat()
        assert fs[rel]["size"] == size
        assert fs[rel]["mode"] == st.st_mode & 0o7777
        assert fs[rel]["mtime_ns"] == st.st_mtime_ns
    assert fs["link"]["type"] == "symlink" and fs["link"]["target"] == "a.txt"
    assert fs["sub"]["type"] == "dir"
    tables = {i["path"]: i["rows"] for i in by_resource[DB] if i["type"] == "table"}
    assert tables == {"t": 7, "empty": 0}

    text = _run(capsys, "ls", checkpoint[:8], FS, "sub", "--bank", "bank")
    assert text.splitlines()[1:] == [FS, "  sub/", "  sub/big.bin", "  sub/small.bin"]
    long = _run(capsys, "ls", checkpoint, DB, "-l", "--bank", "bank")
    assert "t (table, 7 rows)" in long and "-rw-" in long
    long = _run(capsys, "ls", checkpoint, FS, "-l", "--bank", "bank")
    assert "3.0 MiB" in long and "link -> a.txt" in long


def test_ls_of_a_resource_or_path_the_checkpoint_lacks_names_it(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _protect(capsys)["checkpoint"]
    assert cli.main(["ls", checkpoint, "protectflow::fs::Directory#dat", "--bank", "bank"]) == 2
    assert "did you mean 'protectflow::fs::Directory#data'" in capsys.readouterr().err
    assert cli.main(["ls", checkpoint, FS, "nowhere", "--bank", "bank"]) == 2
    assert "nothing at 'nowhere'" in capsys.readouterr().err


def test_find_searches_every_checkpoint_newest_first_or_the_ones_named(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _protect(capsys)["checkpoint"]
    (world / "data" / "sub" / "later.txt").write_text("x")
    second = _protect(capsys)["checkpoint"]
    doc = json.loads(_run(capsys, "find", "*.txt", "--json", "--bank", "bank"))
    assert [(f["checkpoint"], f["path"]) for f in doc["found"]] == [
        (second, "a.txt"), (second, "sub/later.txt"), (first, "a.txt")]
    doc = json.loads(_run(capsys, "find", "sub/*", "--checkpoint", first, "--json",
                          "--bank", "bank"))
    assert {f["path"] for f in doc["found"]} == {"sub/big.bin", "sub/small.bin"}
    assert json.loads(_run(capsys, "find", "*.txt", "--plan", "other", "--json",
                           "--bank", "bank"))["found"] == []
    text = _run(capsys, "find", "later.txt", "--bank", "bank")
    assert f"found in checkpoint {second}" in text and first not in text
    assert "nothing matches" in _run(capsys, "find", "*.nope", "--bank", "bank")


def test_diff_shows_added_removed_changed_files_with_sizes_and_totals(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _protect(capsys)["checkpoint"]
    (world / "data" / "a.txt").write_text("hello, longer now\n")
    (world / "data" / "sub" / "small.bin").unlink()
    (world / "data" / "added.txt").write_text("12345")
    con = sqlite3.connect(world / "db.sqlite")
    con.execute("INSERT INTO t VALUES (99)")
    con.commit()
    con.close()
    second = _protect(capsys)["checkpoint"]
    doc = json.loads(_run(capsys, "diff", first, second, "--json", "--bank", "bank"))
    changes = {(c["kind"], c["resource"], c["path"]) for c in doc["changes"]}
    # a folder whose entries changed is not itself a change (as restic shows it)
    assert changes == {("M", FS, "a.txt"), ("-", FS, "sub/small.bin"), ("+", FS, "added.txt"),
                       ("M", DB, "."), ("M", DB, "t")}
    assert doc["totals"]["bytes_added"] == 5 and doc["totals"]["bytes_removed"] == 5000
    text = _run(capsys, "diff", first[:6], second[:6], "--bank", "bank")
    assert f"+    {FS}  added.txt  5 B" in text
    assert f"-    {FS}  sub/small.bin  4.9 KiB" in text
    assert f"M    {FS}  a.txt  6 B -> 18 B" in text
    assert text.rstrip().endswith("Files: 1 added, 1 removed, 3 changed; added 5 B, "
                                  "removed 4.9 KiB")
    same = json.loads(_run(capsys, "diff", second, second, "--json", "--bank", "bank"))
    assert same["changes"] == []


def test_stats_restore_size_and_raw_data_of_a_checkpoint_and_the_bank(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _protect(capsys)["checkpoint"]
    _protect(capsys)  # the same data again: dedup
    size = sum(_files(world / "data").values()) + (world / "db.sqlite").stat().st_size
    one = json.loads(_run(capsys, "stats", first, "--json", "--bank", "bank"))
    assert (one["files"], one["size"]) == (len(_files(world / "data")) + 1, size)
    bank = json.loads(_run(capsys, "stats", "--json", "--bank", "bank"))
    assert (bank["checkpoints"], bank["size"]) == (2, 2 * size)
    raw_one = json.loads(_run(capsys, "stats", first, "--mode", "raw-data", "--json",
                              "--bank", "bank"))
    raw = json.loads(_run(capsys, "stats", "--mode", "raw-data", "--json", "--bank", "bank"))
    on_disk = sum(p.stat().st_size for p in (world / "bank" / "chunks").rglob("*")
                  if p.is_file())
    assert raw["size"] == on_disk == raw_one["size"]  # the second added no chunk
    assert raw["chunks"] == raw_one["chunks"] > 0
    assert "total size" in _run(capsys, "stats", "--bank", "bank")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["stats", "--mode", "nope", "--bank", "bank"])
    assert exit_.value.code == 2


def test_a_plugin_that_reports_no_stats_shows_a_dash_and_its_saved_info(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.yaml").write_text(
        "name: sim\nbank: ./bank\nresources:\n  - {type: OS::Cinder::Volume, id: v1}\n")
    out = _run(capsys, "protect", "plan.yaml")
    assert "Files: —" in out
    checkpoint = json.loads(_run(capsys, "checkpoints", "list", "--json", "--bank",
                                 "bank"))["checkpoints"][0]
    assert (checkpoint["size"], checkpoint["files"]) == (None, None)
    assert "│    — │" in _run(capsys, "checkpoints", "list", "--bank", "bank")
    assert "size             —" in _run(capsys, "checkpoints", "show", checkpoint["id"],
                                        "--bank", "bank")
    listed = json.loads(_run(capsys, "ls", checkpoint["id"], "--json", "--bank", "bank"))
    (item,) = listed["resources"][0]["items"]
    assert item["type"] == "info" and item["info"]["id"] == "v1"
    assert '"id": "v1"' in _run(capsys, "ls", checkpoint["id"], "--bank", "bank")
