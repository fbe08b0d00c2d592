"""Restoring part of a checkpoint: some resources (with or without what
they depend on), some files (``--include``/``--exclude``), in place over a
live tree, and ``--dry-run`` (restore and protect) that writes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli

FS = "protectflow::fs::Directory"


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes), folder and link under ``root``, by relative path."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


def _state(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and a hash of its bytes (a bank's state)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two trees, ``app`` depending on ``lib``, and a database, protected once."""
    monkeypatch.chdir(tmp_path)
    for name in ("app", "lib"):
        (tmp_path / name / "docs").mkdir(parents=True)
        (tmp_path / name / "main.txt").write_text(f"{name} main\n")
        (tmp_path / name / "docs" / "guide.md").write_text(f"# {name}\n")
        (tmp_path / name / "docs" / "big.bin").write_bytes(os.urandom(200_000))
        (tmp_path / name / "run.sh").write_text("#!/bin/sh\n")
        (tmp_path / name / "run.sh").chmod(0o755)
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    (tmp_path / "plan.yaml").write_text(
        "name: sel\nbank: ./bank\nresources:\n"
        f"  - {{type: {FS}, id: app, extra_info: {{path: {tmp_path / 'app'}}}, "
        f"depends_on: ['{FS}#lib']}}\n"
        f"  - {{type: {FS}, id: lib, extra_info: {{path: {tmp_path / 'lib'}}}}}\n"
        f"  - {{type: protectflow::sqlite::Database, id: db, extra_info: "
        f"{{path: {tmp_path / 'db.sqlite'}}}}}\n")
    return tmp_path


def _protect(capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["protect", "plan.yaml", "--json", "-q"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return str(doc["checkpoint"])


def _restore(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    code = cli.main(["restore", *argv, "--bank", "bank", "-q"])
    capsys.readouterr()
    return code


def test_a_resource_brings_what_it_depends_on_unless_no_deps(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _protect(capsys)
    assert _restore(capsys, checkpoint, "--resource", f"{FS}#app", "--target", "out") == 0
    assert sorted(os.listdir(world / "out")) == ["app", "lib"]  # lib: app depends on it
    assert _tree(world / "out" / "app") == _tree(world / "app")
    assert _tree(world / "out" / "lib") == _tree(world / "lib")
    assert _restore(capsys, checkpoint, "--resource", f"{FS}#app", "--no-deps",
                    "--target", "only") == 0
    assert os.listdir(world / "only") == ["app"]
    assert _tree(world / "only" / "app") == _tree(world / "app")
    assert _restore(capsys, checkpoint, "--resource", f"{FS}#lib", "--target", "leaf") == 0
    assert os.listdir(world / "leaf") == ["lib"]  # nothing depends the other way


def test_an_unknown_resource_is_named_and_nothing_is_written(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _protect(capsys)
    assert cli.main(["restore", checkpoint, "--resource", f"{FS}#ap", "--target", "out",
                     "--bank", "bank"]) == 2
    assert f"did you mean '{FS}#app'" in capsys.readouterr().err
    assert not (world / "out").exists()


def test_include_and_exclude_restore_exactly_the_matching_files(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _protect(capsys)
    assert _restore(capsys, checkpoint, "--resource", f"{FS}#lib", "--include", "*.md",
                    "--include", "run.sh", "--target", "out") == 0
    got = _tree(world / "out" / "lib")
    assert got == {"docs": "dir", "docs/guide.md": b"# lib\n", "run.sh": b"#!/bin/sh\n"}
    assert (world / "out" / "lib" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert _restore(capsys, checkpoint, "--resource", f"{FS}#lib", "--exclude", "docs",
                    "--target", "out2") == 0
    assert _tree(world / "out2" / "lib") == {"main.txt": b"lib main\n",
                                             "run.sh": b"#!/bin/sh\n"}
    assert _restore(capsys, checkpoint, "--resource", f"{FS}#lib", "--include", "docs/*",
                    "--exclude", "*.bin", "--target", "out3") == 0
    assert _tree(world / "out3" / "lib") == {"docs": "dir", "docs/guide.md": b"# lib\n"}


def test_in_place_restores_what_is_gone_and_refuses_to_overwrite_without_force(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(world / "lib")
    checkpoint = _protect(capsys)
    (world / "lib" / "docs" / "guide.md").unlink()  # lost
    (world / "lib" / "main.txt").write_text("edited since\n")  # changed
    (world / "lib" / "mine.txt").write_text("the user's own\n")  # new
    live = _tree(world / "lib")
    args = [checkpoint, "--resource", f"{FS}#lib", "--in-place"]
    assert cli.main(["restore", *args, "--bank", "bank"]) == 2
    err = capsys.readouterr().err
    assert "main.txt" in err and "--force" in err
    assert _tree(world / "lib") == live  # nothing written
    # what is gone comes back without --force: nothing is overwritten
    assert _restore(capsys, *args, "--include", "guide.md") == 0
    assert (world / "lib" / "docs" / "guide.md").read_text() == "# lib\n"
    assert (world / "lib" / "main.txt").read_text() == "edited since\n"
    assert _restore(capsys, *args, "--force") == 0
    after = _tree(world / "lib")
    assert after.pop("mine.txt") == b"the user's own\n"  # not the checkpoint's: stays
    assert after == before


def test_in_place_never_goes_through_a_symlink(
        world: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    checkpoint = _protect(capsys)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "guide.md").write_text("not yours\n")
    for p in (world / "lib" / "docs").iterdir():
        p.unlink()
    (world / "lib" / "docs").rmdir()
    (world / "lib" / "docs").symlink_to(elsewhere)
    code = cli.main(["restore", checkpoint, "--resource", f"{FS}#lib", "--in-place",
                     "--force", "--bank", "bank"])
    assert code == 2
    assert "symlink" in capsys.readouterr().err
    assert _tree(elsewhere) == {"guide.md": b"not yours\n"}


def test_restore_dry_run_says_what_and_where_and_writes_nothing(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _protect(capsys)
    bank = _state(world / "bank")
    assert cli.main(["restore", checkpoint, "--dry-run", "--target", "out", "--include",
                     "*.txt", "--json", "--bank", "bank"]) == 0
    doc = json.loads(capsys.readouterr().out)
    files = {r["resource"]: [i["path"] for i in r["items"] if i["type"] == "file"]
             for r in doc["resources"]}
    assert files[f"{FS}#app"] == ["main.txt"] and files[f"{FS}#lib"] == ["main.txt"]
    dest = {r["resource"]: r["destination"] for r in doc["resources"]}
    assert dest[f"{FS}#app"] == str(world / "out" / "app")
    assert cli.main(["restore", checkpoint, "--dry-run", "--in-place", "--resource",
                     f"{FS}#lib", "--bank", "bank"]) == 0
    out = capsys.readouterr().out
    assert f"{FS}#lib: 4 file(s)" in out and str(world / "lib") in out
    assert not (world / "out").exists()
    assert _state(world / "bank") == bank


def test_protect_dry_run_counts_what_it_would_read_and_writes_nothing(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["protect", "plan.yaml", "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stats = {r["resource"]: r["stats"] for r in doc["resources"]}
    assert stats[f"{FS}#app"]["files_new"] == 4
    assert stats[f"{FS}#app"]["bytes_read"] == sum(
        p.stat().st_size for p in (world / "app").rglob("*") if p.is_file())
    assert stats["protectflow::sqlite::Database#db"] is None  # says nothing: "-"
    assert not (world / "bank").exists()  # not even made
    _protect(capsys)
    bank = _state(world / "bank")
    (world / "app" / "main.txt").write_text("changed!\n")
    assert cli.main(["protect", "plan.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{FS}#app: Files: 0 new, 1 changed, 3 unmodified" in out
    assert "would read 9 B" in out
    assert _state(world / "bank") == bank


def test_a_database_in_place_is_refused_when_it_changed_unless_forced(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _protect(capsys)
    db = "protectflow::sqlite::Database#db"
    assert _restore(capsys, checkpoint, "--resource", db, "--in-place") == 0  # the same: a no-op
    con = sqlite3.connect(world / "db.sqlite")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    assert cli.main(["restore", checkpoint, "--resource", db, "--in-place",
                     "--bank", "bank"]) == 2
    assert "--force" in capsys.readouterr().err
    assert _rows(world / "db.sqlite") == 1
    assert _restore(capsys, checkpoint, "--resource", db, "--in-place", "--force") == 0
    assert _rows(world / "db.sqlite") == 0


def _rows(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        con.close()
