"""Damaged checkpoints and manifests that disagree with their chunks: a
restore writes every intact file, names every damaged one with the byte
ranges lost and exits 1 -- never a padded file, never nothing at all -- and
a verify names the damaged files too, not only the chunks.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank
from protectflow.compiler import Plan, parse_plan
from protectflow.plugins.builtin._chunks import chunk_key
from protectflow.plugins.builtin.fs._damage import damage_of
from protectflow.plugins.builtin.fs._entries import FileEntry, Meta
from protectflow.plugins.builtin.fs._manifest import Manifest
from tests import needs

FS = "protectflow::fs::Directory"
KEY = f"{FS}#src"
CHUNK = 4096


def plan_of(src: Path) -> Plan:
    return parse_plan(json.dumps({"name": "damage", "resources": [
        {"type": FS, "id": "src", "extra_info": {"path": str(src)}}]}),
        source=str(src.parent / "plan.json"))


def protect(src: Path, **parameters: Any) -> tuple[Bank, str]:
    bank = Bank(src.parent / "bank", fsync=False)
    result = operations.protect(plan_of(src), bank=bank, executor="serial",
                                parameters={FS: {"chunk_size": CHUNK, **parameters}})
    assert result.ok, result.report
    return bank, result.checkpoint.id


def section(bank: Bank, cid: str) -> Any:
    return operations.open_store(bank).get(cid).get_resource_bank_section(KEY)


def manifest(bank: Bank, cid: str) -> Manifest:
    return Manifest.from_json(section(bank, cid).get_object("manifest"), what=KEY)


def restore(bank: Bank, cid: str, target: Path) -> operations.OperationResult:
    return operations.restore(cid, bank=bank, executor="serial",
                              parameters={FS: {"target": str(target)}})


# -- a manifest and its chunks that do not agree ---------------------------------------------
@pytest.mark.parametrize(("delta", "said"), [(+100, "hold 10000 bytes, its manifest says 10100"),
                                             (-100, "hold 10000 bytes, its manifest says 9900"),
                                             (-5000, "hold 10000 bytes, its manifest says 5000")])
def test_a_file_whose_chunks_hold_other_bytes_than_its_size_is_an_error_never_padded(
        tmp_path: Path, delta: int, said: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(10_000))
    (src / "other.txt").write_text("intact")
    bank, cid = protect(src, pack_size=0)
    forged = section(bank, cid).get_object("manifest")
    entry = next(e for e in forged["entries"] if e["path"] == "big.bin")
    entry["size"] += delta  # what a key holder (or a bug) could write
    section(bank, cid).update_object("manifest", forged)
    result = restore(bank, cid, tmp_path / "out")
    assert not result.ok
    reason = result.resources[KEY].reason or ""
    assert "big.bin: bytes" in reason and said in reason, reason
    assert not (tmp_path / "out" / "src" / "big.bin").exists()  # not padded, not cut
    assert (tmp_path / "out" / "src" / "other.txt").read_text() == "intact"


def test_a_file_of_a_short_chunk_names_the_bytes_missing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3 * CHUNK))
    bank, cid = protect(src, pack_size=0)
    forged = section(bank, cid).get_object("manifest")
    entry = next(e for e in forged["entries"] if e["path"] == "big.bin")
    entry["size"] = 3 * CHUNK + 500
    section(bank, cid).update_object("manifest", forged)
    result = restore(bank, cid, tmp_path / "out")
    assert f"bytes {3 * CHUNK}-{3 * CHUNK + 499}" in (result.resources[KEY].reason or "")
    checked = operations.verify(cid, bank=bank, executor="serial")
    assert f"big.bin: bytes {3 * CHUNK}-{3 * CHUNK + 499}" in (checked.resources[KEY].reason
                                                              or "")


@pytest.mark.parametrize("length", ["same", "shorter"])
def test_a_chunk_whose_bytes_are_not_what_its_name_says_damages_its_file(
        tmp_path: Path, length: str) -> None:
    """Bytes sealed under a chunk's name by a holder of the key (or a bug)
    authenticate; only the chunk's keyed hash can tell, and restore checks it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3 * CHUNK))
    (src / "other.txt").write_text("intact")
    bank, cid = protect(src, pack_size=0)
    entry = manifest(bank, cid).get("big.bin")
    assert isinstance(entry, FileEntry) and entry.chunks is not None
    planted = os.urandom(CHUNK if length == "same" else CHUNK // 2)
    bank.update_object(chunk_key(entry.chunks[1]), planted)
    result = restore(bank, cid, tmp_path / "out")
    reason = result.resources[KEY].reason or ""
    assert not result.ok and f"big.bin: bytes {CHUNK}-{2 * CHUNK - 1}: chunk" in reason, reason
    assert "corrupt" in reason
    assert not (tmp_path / "out" / "src" / "big.bin").exists()
    assert (tmp_path / "out" / "src" / "other.txt").read_text() == "intact"


# -- a damaged checkpoint of 4,000 files ------------------------------------------------------
@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 4,000-file folder protected, then one pack corrupted and one chunk
    of a large file deleted."""
    root = tmp_path_factory.mktemp("damaged")
    src = root / "src"
    rng = random.Random(20)
    for i in range(4000):
        folder = src / f"d{i % 40:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:04d}.txt").write_bytes(rng.randbytes(rng.randrange(100, 2000)))
    (src / "large.bin").write_bytes(rng.randbytes(10 * CHUNK + 123))
    bank, cid = protect(src, pack_size=64 << 10)
    found = manifest(bank, cid)
    large = found.get("large.bin")
    assert isinstance(large, FileEntry) and large.chunks is not None
    packed = [e for e in found.file_entries() if e.pack is not None]
    victim = packed[len(packed) // 2].pack
    assert victim is not None
    in_pack = sorted(e.path for e in packed if e.pack is not None
                     and e.pack.digest == victim.digest)
    raw = Path(root / "bank" / chunk_key(victim.digest))
    data = bytearray(raw.read_bytes())
    data[len(data) // 2] ^= 0xFF  # fails authentication: corrupt
    raw.write_bytes(bytes(data))
    bank.delete_object(chunk_key(large.chunks[3]))  # missing
    return {"root": root, "src": src, "bank": bank, "cid": cid, "in_pack": in_pack,
            "files": sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())}


@pytest.mark.slow  # a 4,000-file folder
def test_a_damaged_checkpoint_restores_every_intact_file_and_names_the_damaged(
        damaged: dict[str, Any], tmp_path: Path) -> None:
    result = restore(damaged["bank"], damaged["cid"], tmp_path / "out")
    assert not result.ok
    reason = result.resources[KEY].reason or ""
    lost = set(damaged["in_pack"]) | {"large.bin"}
    assert f"{len(lost)} damaged file(s)" in reason, reason
    for path in lost:
        assert f"{path}: bytes" in reason
    assert f"large.bin: bytes {3 * CHUNK}-{4 * CHUNK - 1}: chunk" in reason
    assert "missing" in reason and "corrupt" in reason
    out, src = tmp_path / "out" / "src", damaged["src"]
    restored = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert restored == sorted(set(damaged["files"]) - lost)
    assert all((out / p).read_bytes() == (src / p).read_bytes() for p in restored)
    assert [p for p in os.listdir(tmp_path / "out") if p != "src"] == []  # no staging left


@pytest.mark.slow  # a 4,000-file folder
def test_the_cli_exits_1_and_prints_and_carries_the_damaged_files(
        damaged: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["restore", damaged["cid"], "--bank", str(damaged["root"] / "bank"),
            "--executor", "serial", "--target"]
    assert cli.main([*argv, str(tmp_path / "a")]) == 1
    printed = capsys.readouterr()
    assert "large.bin: bytes" in printed.out + printed.err
    assert cli.main([*argv, str(tmp_path / "b"), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert "large.bin: bytes" in json.dumps(document)
    assert all(f"{p}: bytes" in json.dumps(document) for p in damaged["in_pack"])


@pytest.mark.slow  # a 4,000-file folder
def test_verify_names_the_damaged_files_and_their_byte_ranges(
        damaged: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    result = operations.verify(damaged["cid"], bank=damaged["bank"], executor="serial")
    assert not result.ok
    reason = result.resources[KEY].reason or ""
    assert f"large.bin: bytes {3 * CHUNK}-{4 * CHUNK - 1}" in reason
    assert all(f"{p}: bytes 0-" in reason for p in damaged["in_pack"][:5])
    assert cli.main(["verify", damaged["cid"], "--bank", str(damaged["root"] / "bank"),
                     "--executor", "serial"]) == 1
    printed = capsys.readouterr()
    assert "large.bin: bytes" in printed.out + printed.err


# -- --force over a tree that only looks restored ---------------------------------------------
@pytest.mark.slow  # a second user
@needs.tool("runuser", "util-linux")
def test_force_fixes_added_attributes_acls_and_outside_hard_links(
        tmp_path: Path, second_user: tuple[str, int, int],
        request: pytest.FixtureRequest) -> None:
    """Contents that match are not enough: an ACL granting a second user
    read access, an extra or changed attribute, and a hard link from outside
    the tree are all undone, the file replaced by a new inode (never written
    through the old one), so writes through the outside link miss it."""
    if shutil.which("setfacl") is None:
        pytest.skip(needs.missing_tool("setfacl", "acl"))
    name = second_user[0]
    shared = Path(tempfile.mkdtemp(prefix="pf-force-"))  # pytest's folders are 0700
    request.addfinalizer(lambda: shutil.rmtree(shared))
    os.chmod(shared, 0o755)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "secret.txt").write_text("root's secret\n")
    os.chmod(src / "secret.txt", 0o600)
    (src / "sub" / "notes.txt").write_text("notes\n")
    os.setxattr(src / "sub" / "notes.txt", "user.colour", b"blue")
    bank, cid = protect(src)
    target = shared / "out"
    assert restore(bank, cid, target).ok
    dest = target / "src"
    os.chmod(target, 0o755)
    os.chmod(dest, 0o755)
    subprocess.run(["setfacl", "-m", f"u:{name}:r", str(dest / "secret.txt")], check=True)
    subprocess.run(["setfacl", "-m", f"u:{name}:rwx", str(dest / "sub")], check=True)
    os.setxattr(dest / "sub" / "notes.txt", "user.colour", b"red")
    os.setxattr(dest / "sub" / "notes.txt", "user.planted", b"x")
    outside = shared / "outside-link"
    os.link(dest / "sub" / "notes.txt", outside)
    assert _readable_by(name, dest / "secret.txt")
    result = operations.restore(cid, bank=bank, executor="serial",
                                parameters={FS: {"target": str(target), "force": True}})
    assert result.ok, result.report
    assert not _readable_by(name, dest / "secret.txt")
    for path in (dest / "secret.txt", dest / "sub"):
        assert "system.posix_acl_access" not in os.listxattr(path)
    notes = dest / "sub" / "notes.txt"
    assert dict((n, os.getxattr(notes, n)) for n in os.listxattr(notes)) == {
        "user.colour": b"blue"}
    assert os.stat(notes).st_nlink == 1 and os.stat(notes).st_ino != os.stat(outside).st_ino
    outside.write_text("written through the outside link\n")
    assert notes.read_text() == "notes\n"
    # and now it is restored: a rerun without force is a no-op that succeeds
    assert restore(bank, cid, target).ok


def _readable_by(user: str, path: Path) -> bool:
    """Whether ``user`` can read ``path`` (a real process as that user)."""
    done = subprocess.run(["runuser", "-u", user, "--", "cat", str(path)],
                          capture_output=True, check=False)
    return done.returncode == 0


# -- byte ranges, in the file's own offsets -------------------------------------------------
def _meta() -> Meta:
    return Meta(0o644, 0)


@pytest.mark.parametrize(("sparse", "bad", "ranges"), [
    (None, {1}, ((4096, 8192),)),
    (None, {0, 1}, ((0, 8192),)),
    (None, {2}, ((8192, 10000),)),
    # data at 0-4095 and 1 MiB-(1 MiB + 8191): the second chunk is the second extent's start
    (((0, 4096), (1 << 20, 8192 - 1808)), {1}, (((1 << 20), (1 << 20) + 4096),)),
])
def test_a_damaged_chunk_names_the_bytes_of_the_file_it_held(
        sparse: Any, bad: set[int], ranges: Any) -> None:
    digests = [f"{i:064x}" for i in range(3)]
    entry = FileEntry(path="f", meta=_meta(), size=10_000 if sparse is None else 2 << 20,
                      chunks=tuple(digests), sparse=sparse)
    found = damage_of(entry, chunk_size=CHUNK, bad={digests[i]: "gone" for i in bad},
                      length=lambda d: CHUNK if d != digests[2] else 10_000 - 2 * CHUNK)
    assert found is not None and found.ranges == ranges and found.reason == "gone"
