"""Bank format 2: sealed objects, keys, passwords, privacy, the old format."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.catalog.check import check_checkpoint
from protectflow.bank.objects import _keystore as keystore
from protectflow.bank.objects import keys
from protectflow.bank.objects._backend import ReadBuffers
from protectflow.cli import main as cli_main
from protectflow.dag import Plan, ResourceGraph
from protectflow.errors import BankError, BankLockedError, CorruptObjectError
from tests import needs

#: A checkpoint of no resources, for tests of the catalog itself.
NO_GRAPH = ResourceGraph({}, {})

SECRET = b"card 4111-1111-1111-1111 exp 12/29"


@pytest.fixture(autouse=True)
def _fresh_unlocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROTECTFLOW_PASSWORD", raising=False)
    monkeypatch.delenv("PROTECTFLOW_PASSWORD_FILE", raising=False)
    keystore.forget_unlocked()


def _forget(bank: Bank) -> Bank:
    """The same bank as a new process would open it."""
    keystore.forget_unlocked()
    return Bank(bank.url)


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_no_stored_byte_reveals_a_secret(bank: Bank) -> None:
    bank.update_object("data/a", SECRET * 100)  # compressible
    bank.update_object("data/b", {"note": SECRET.decode()})
    bank.update_object("data/c", SECRET.decode())
    if bank.url.startswith("memory://"):
        fs = bank.backend.fs  # type: ignore[union-attr]
        stored = b"".join(fs.cat_file(p) for p in fs.find(bank.backend.root))
    else:
        stored = _all_bytes(Path(bank.url))
    assert SECRET not in stored and b"4111" not in stored
    assert bank.get_object("data/a") == SECRET * 100
    assert bank.get_object("data/b") == {"note": SECRET.decode()}
    a_size = len(bank.backend.read("data/a"))
    assert a_size < len(SECRET) * 20  # compressed before it was sealed


def test_large_objects_are_compressed_only_where_a_sample_shrinks(bank: Bank) -> None:
    random_bytes = os.urandom(1 << 20)
    text = (SECRET + b" order shipped 2024-05-17 EUR ") * 40_000
    # random and text in 16 KiB runs, as a pack of small files is
    mixed = b"".join(random_bytes[i:i + 16384] + text[i:i + 16384]
                     for i in range(0, 1 << 20, 32768))
    for key, body in (("data/random", random_bytes), ("data/text", text),
                      ("data/mixed", mixed)):
        bank.update_object(key, body)
        assert bank.get_object(key) == body
    stored = {key: bank.backend.read(key) for key in ("data/random", "data/text", "data/mixed")}
    assert stored["data/random"][5:6] == b"-"  # stored as is: its sample did not shrink
    assert len(stored["data/text"]) < len(text) // 10
    assert len(stored["data/mixed"]) < len(mixed) * 3 // 4


def test_an_object_moved_to_another_key_fails_authentication(bank: Bank) -> None:
    bank.update_object("checkpoints/a/record", {"status": "available"})
    bank.update_object("checkpoints/b/record", {"status": "deleted"})
    stolen = bank.backend.read("checkpoints/a/record")
    bank.backend.write("checkpoints/b/record", (stolen,))
    with pytest.raises(CorruptObjectError, match="'checkpoints/b/record' failed authentication"):
        bank.get_object("checkpoints/b/record")


def test_an_edited_header_or_byte_fails_authentication(bank: Bank) -> None:
    bank.update_object("k", "text")
    sealed = bytearray(bank.backend.read("k"))
    for i in (4, 5, 10, len(sealed) - 1):  # kind, codec, nonce, tag
        edited = bytearray(sealed)
        edited[i] ^= 0x01
        bank.backend.write("k", (bytes(edited),))
        with pytest.raises(CorruptObjectError, match="'k' failed authentication"):
            bank.get_object("k")


def test_a_marker_stands_in_for_nothing_outside_its_area(bank: Bank) -> None:
    bank.create_object("refs/aa/h/owner", b"", durable=False)
    bank.update_object("index/in-progress/x", b"")
    marker = bank.backend.read("refs/aa/h/owner")
    assert bank.get_object("refs/aa/h/owner") == b""
    bank.update_object("checkpoints/x/data/flag", b"payload")
    for target in ("checkpoints/x/data/flag", "index/in-progress/x"):
        bank.backend.write(target, (marker,))
        with pytest.raises(CorruptObjectError, match="failed authentication"):
            bank.get_object(target)


def test_the_bank_keeps_its_key_material_to_itself(bank: Bank) -> None:
    bank.update_object("a", b"x")
    for key in ("config", "keys/abc"):
        with pytest.raises(BankError, match="key material"):
            bank.update_object(key, b"x")
    assert bank.list_objects() == ["a"]


def test_a_new_bank_keeps_its_key_in_a_private_key_file(local_bank: Bank) -> None:
    local_bank.update_object("a", b"x")
    info = keys.show_fingerprint(local_bank)
    assert info.key_file is not None and info.passwords == ()
    assert stat.S_IMODE(os.stat(info.key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(info.key_file)).st_mode) == 0o700
    master = keystore.read_key_file(info.key_file, info.bank_id)
    assert master is not None and master not in _all_bytes(Path(local_bank.url))
    assert json.loads(Path(local_bank.url, "config").read_bytes())["id"] == info.bank_id


def test_missing_key_is_a_clear_error_and_exit_2(local_bank: Bank,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    CheckpointStore(local_bank).create(Plan("p", ()), NO_GRAPH, "f", "me").release()
    key_file = keys.show_fingerprint(local_bank).key_file
    assert key_file is not None
    os.unlink(key_file)
    with pytest.raises(BankLockedError, match=r"no key for bank .* key import") as info:
        CheckpointStore(_forget(local_bank)).list()[0].record  # noqa: B018
    assert info.value.problem == BankLockedError.MISSING
    keystore.forget_unlocked()
    assert cli_main(["checkpoints", "list", "--bank", local_bank.url]) == 2
    assert "no key for bank" in capsys.readouterr().err


def test_a_password_locked_bank(local_bank: Bank, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "correct horse")
    CheckpointStore(local_bank).create(Plan("p", ()), NO_GRAPH, "f", "me").release()
    info = keys.show_fingerprint(local_bank)
    assert info.key_file is None and len(info.passwords) == 1
    assert b"correct horse" not in _all_bytes(Path(local_bank.url))
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "wrong")
    with pytest.raises(BankLockedError, match="wrong password for bank") as info:
        CheckpointStore(_forget(local_bank)).list()[0].record  # noqa: B018
    assert info.value.problem == BankLockedError.WRONG
    assert cli_main(["checkpoints", "list", "--bank", local_bank.url]) == 2
    assert "wrong password" in capsys.readouterr().err
    monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    with pytest.raises(BankLockedError, match="locked by a password") as info:
        _forget(local_bank).keyring  # noqa: B018
    assert info.value.problem == BankLockedError.MISSING
    password_file = Path(local_bank.url).parent / "pw"
    password_file.write_text("correct horse\n")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", str(password_file))
    assert CheckpointStore(_forget(local_bank)).list()[0].record.plan_name == "p"


@pytest.mark.parametrize("problem", [BankLockedError.WRONG, BankLockedError.MISSING])
def test_a_bank_that_will_not_unlock_is_not_taken_for_a_corrupt_record(
        local_bank: Bank, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        problem: str) -> None:
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "correct horse")
    checkpoint = CheckpointStore(local_bank).create(Plan("p", ()), NO_GRAPH, "f", "me")
    checkpoint.release()
    if problem == BankLockedError.WRONG:
        monkeypatch.setenv("PROTECTFLOW_PASSWORD", "wrong")
    else:
        monkeypatch.delenv("PROTECTFLOW_PASSWORD")
    with pytest.raises(BankLockedError) as info:
        CheckpointStore(_forget(local_bank)).get(checkpoint.id)
    assert info.value.problem == problem
    keystore.forget_unlocked()
    assert cli_main(["checkpoints", "show", checkpoint.id, "--bank", local_bank.url]) == 2
    err = capsys.readouterr().err
    assert ("wrong password" if problem == BankLockedError.WRONG else "locked by a password") in err
    assert "corrupt" not in err and "remove the folder" not in err


def test_add_and_change_a_password(local_bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    local_bank.update_object("a", b"x")
    fingerprint = keys.show_fingerprint(local_bank).fingerprint
    keys.add_password(local_bank, "first")
    key_file = keys.show_fingerprint(local_bank).key_file
    assert key_file is not None
    os.unlink(key_file)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "first")
    assert _forget(local_bank).get_object("a") == b"x"
    keys.change_password(_forget(local_bank), "second")
    with pytest.raises(BankLockedError):
        _forget(local_bank).get_object("a")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "second")
    again = _forget(local_bank)
    assert again.get_object("a") == b"x"
    assert keys.show_fingerprint(again).fingerprint == fingerprint


def test_export_import_round_trip(local_bank: Bank, tmp_path: Path) -> None:
    local_bank.update_object("a", b"x")
    exported = tmp_path / "bank.key"
    fingerprint = keys.export_key(local_bank, str(exported))
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    key_file = keys.show_fingerprint(local_bank).key_file
    assert key_file is not None
    os.unlink(key_file)  # another machine: no key file
    with pytest.raises(BankLockedError, match="no key for bank"):
        _forget(local_bank).get_object("a")
    info = keys.import_key(_forget(local_bank), str(exported))
    assert info.fingerprint == fingerprint and info.key_file == key_file
    assert _forget(local_bank).get_object("a") == b"x"
    other = Bank(tmp_path / "other")
    other.update_object("b", b"y")
    with pytest.raises(BankLockedError, match="not the key of bank"):
        keys.import_key(other, str(exported))


def test_a_bank_of_the_old_format_is_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    (old / "checkpoints" / "c1").mkdir(parents=True)
    (old / "checkpoints" / "c1" / "record").write_bytes(b'PFB1j\n{"version":1}')
    (old / "index" / "by-date" / "2024" / "01" / "01").mkdir(parents=True)
    (old / "index" / "by-date" / "2024" / "01" / "01" / "000000000000-c1").write_bytes(b"")
    before = _all_bytes(old)
    bank = Bank(old)
    with pytest.raises(BankError, match=r"older than bank format 2.*new bank"):
        bank.get_object("checkpoints/c1/record")
    with pytest.raises(BankError, match="older than bank format 2"):
        bank.update_object("checkpoints/c1/other", b"x")
    assert cli_main(["checkpoints", "show", "c1", "--bank", str(old)]) == 2
    assert "older than bank format 2" in capsys.readouterr().err
    assert _all_bytes(old) == before and not (old / "config").exists()


def test_a_bank_pickles_with_its_derived_keys_not_its_master_key(
        local_bank: Bank, tmp_path: Path) -> None:
    local_bank.update_object("a", SECRET)
    info = keys.show_fingerprint(local_bank)
    master = keystore.read_key_file(str(info.key_file), info.bank_id)
    assert master is not None
    shipped = pickle.dumps(local_bank)
    assert master not in shipped
    # A process with no key file and no password reads it with what it was sent.
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "elsewhere")}
    code = ("import pickle, sys; b = pickle.loads(sys.stdin.buffer.read()); "
            "sys.stdout.buffer.write(b.get_object('a'))")
    done = subprocess.run([sys.executable, "-c", code], input=shipped, env=env,
                          capture_output=True, check=True)
    assert done.stdout == SECRET
    assert not (tmp_path / "elsewhere").exists()


def test_folders_0700_and_objects_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        bank = Bank(tmp_path / "a" / "bank")
        bank.update_object("x/y/z", b"data")
        bank.create_object("refs/aa/h/o", b"", durable=False)
        bank.sync()
        bank.create_object("x/q", {"k": 1})
    finally:
        os.umask(old)
    root = Path(bank.url)
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.slow  # a second user
@needs.root("making a second local user")
def test_a_second_local_user_reads_nothing(tmp_path: Path) -> None:
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip(needs.missing_tool("runuser", "util-linux"))
    if shutil.which("useradd") is None:
        pytest.skip(needs.missing_tool("useradd", "passwd"))
    user = "pftest" + os.urandom(3).hex()
    subprocess.run(["useradd", "--no-create-home", user], check=True, capture_output=True)
    # Outside pytest's own 0700 folder, so that only the bank's modes stand
    # between the second user and the bank.
    top = Path(tempfile.mkdtemp(prefix="pf-second-user-"))
    try:
        os.chmod(top, 0o755)
        bank = Bank(top / "bank")
        bank.update_object("checkpoints/c/data/db", SECRET)
        control = top / "control"
        control.write_bytes(b"x")
        control.chmod(0o644)
        files = [str(p) for p in Path(bank.url).rglob("*") if p.is_file()]
        script = ('for f; do cat "$f" >/dev/null 2>&1 && echo "READ $f"; '
                  'ls "$(dirname "$f")" >/dev/null 2>&1 && echo "LISTED $f"; done; echo done')
        done = subprocess.run([runuser, "-u", user, "--", "/bin/sh", "-c", script, "sh",
                               str(control), *files], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        # The control file shows the user can read what it may; nothing of the bank.
        assert done.stdout.split("\n") == [f"READ {control}", f"LISTED {control}", "done", ""]
    finally:
        shutil.rmtree(top, ignore_errors=True)
        subprocess.run(["userdel", user], check=False, capture_output=True)


def test_check_reports_every_problem(local_bank: Bank) -> None:
    store = CheckpointStore(local_bank)
    cp = store.create(Plan("p", ()), NO_GRAPH, "f", "me")
    section = cp.get_resource_bank_section("fs#x")
    section.update_object("manifest", {"entries": []})
    section.update_object("other", b"y")
    local_bank.create_object("refs/ab/abcd/" + cp.id + "@1", b"")
    cp.release()
    assert check_checkpoint(local_bank, cp.id).problems == (
        f"chunk abcd is missing from bank {local_bank.url}",)
    for key in section.list_objects():
        path = Path(local_bank.backend.path(section.prefix + key))
        data = bytearray(path.read_bytes())
        data[-3] ^= 0x40
        path.write_bytes(bytes(data))
    report = check_checkpoint(local_bank, cp.id, read_data=True)
    assert not report.ok and len(report.problems) == 3
    assert sum("failed authentication" in p for p in report.problems) == 2


def test_reads_into_reused_buffers_authenticate_as_reads_do(bank: Bank) -> None:
    """The restore's read path (one thread's buffers, reused object after
    object) gives what get_object gives, and refuses what it refuses."""
    bodies = {"data/small": b"x", "data/text": SECRET * 5000, "data/big": os.urandom(3 << 20),
              "data/after": os.urandom(1 << 20)}
    for key, body in bodies.items():
        bank.update_object(key, body)
    buffers = ReadBuffers()
    for key, body in bodies.items():  # buffers grow for the big one, then are reused
        assert bytes(bank.get_bytes_into(key, buffers)) == body
    assert len(buffers.plain) >= 3 << 20
    bank.update_object("data/json", {"a": 1})
    with pytest.raises(BankError, match=r"'data/json' .*does not hold bytes"):
        bank.get_bytes_into("data/json", buffers)
    sealed = bytearray(bank.backend.read("data/big"))
    sealed[-1] ^= 0x01
    bank.backend.write("data/big", (bytes(sealed),))
    with pytest.raises(CorruptObjectError, match="'data/big' failed authentication"):
        bank.get_bytes_into("data/big", buffers)
    bank.backend.write("data/big", (bytes(sealed[:20]),))  # truncated below a header
    with pytest.raises(CorruptObjectError, match="'data/big' failed authentication"):
        bank.get_bytes_into("data/big", buffers)
    with pytest.raises(BankError, match="no bank object 'data/none'"):
        bank.get_bytes_into("data/none", buffers)


def test_a_read_into_buffers_takes_an_object_that_grew_since_its_fstat(
        local_bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects are replaced, never grown, but a read must not cut one short
    if its file is longer than its fstat said: it reads to the end, and the
    bytes then authenticate as usual."""
    body = os.urandom(200_000)
    local_bank.update_object("data/x", body)
    real_fstat = os.fstat

    class Short:
        def __init__(self, st: os.stat_result) -> None:
            self.st_size = st.st_size // 3
            self.st_mode = st.st_mode

    monkeypatch.setattr("protectflow.bank.objects._backend.os.fstat",
                        lambda fd: Short(real_fstat(fd)))
    assert bytes(local_bank.get_bytes_into("data/x", ReadBuffers())) == body
