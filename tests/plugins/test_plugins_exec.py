"""The exec plugin: commands per operation and hook, streams into and out of
the bank, failures, timeouts and secrets -- with real commands (sh, tar,
python) through the command line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.objects import _keystore as keystore
from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin.exec import COMMAND, _cdc
from protectflow.plugins.builtin.exec._record import StreamManifest
from protectflow.plugins.builtin.exec._spec import read_spec

KEY = f"{COMMAND}#dump"
SECRET = "s3cr3t-Value-9f8e7d"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


def run(*argv: str) -> int:
    code = cli.main(list(argv))
    keystore.forget_unlocked()
    return code


def write_plan(tmp_path: Path, extra: dict[str, Any], params: dict[str, Any] | None = None,
               name: str = "plan.yaml") -> Path:
    plan = tmp_path / name
    plan.write_text(yaml.safe_dump({
        "name": "exec", "resources": [{"type": COMMAND, "id": "dump", "name": "a dump",
                                       "extra_info": {"base_dir": str(tmp_path), **extra}}],
        "parameters": {COMMAND: params or {}}}))
    return plan


def protect(plan: Path, bank: Path) -> str:
    assert run("protect", str(plan), "--bank", str(bank), "--executor", "serial") == 0
    return newest(bank)


def newest(bank: Path) -> str:
    return max(CheckpointStore(Bank(bank)).list(), key=lambda c: c.created_at).id


def record_of(bank: Path, checkpoint: str) -> Any:
    cp = CheckpointStore(Bank(bank)).get(checkpoint)
    return cp.resources[KEY]


def everything_stored(bank: Path) -> str:
    """Every object of the bank but the chunks, decrypted, as text."""
    store = Bank(bank)
    out = []
    for key in store.list_objects():
        if key.startswith("chunks/"):
            continue
        try:
            value = store.get_object(key)
        except Exception:
            continue
        out.append(value.decode(errors="replace") if isinstance(value, bytes)
                   else json.dumps(value, default=str))
    return "\n".join(out)


TAR_EXTRA = {
    "protect": {"main": {"argv": ["tar", "-C", "data", "-cf", "-", "."], "stdout": "store"}},
    "restore": {"main": {"argv": ["sh", "-c", 'tar -C "$PROTECTFLOW_RESTORE_TARGET" -xf -'],
                         "stdin": "stored"}},
    "verify": {"main": {"argv": ["tar", "-tf", "-"], "stdin": "stored"}},
}


def make_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    return data


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_tar_through_stdout_round_trips(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    plan, bank = write_plan(tmp_path, TAR_EXTRA), tmp_path / "bank"
    cp = protect(plan, bank)
    out = tmp_path / "out"
    assert run("restore", cp, "--bank", str(bank), "--target", str(out)) == 0
    assert tree(out) == tree(data)
    assert run("verify", cp, "--bank", str(bank)) == 0
    entry = record_of(bank, cp)
    assert entry.status == "available"


def test_the_restored_stream_is_byte_identical_and_stats_are_reported(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3_000_000) + b"\0" * 5_000_000)
    extra = {"protect": {"main": {"argv": ["cat", "blob.bin"], "stdout": "store"}},
             "restore": {"main": {"argv": ["sh", "-c", 'cat > "$PROTECTFLOW_RESTORE_TARGET/x"'],
                                  "stdin": "stored"}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    cp = protect(plan, bank)
    out = tmp_path / "out"
    assert run("restore", cp, "--bank", str(bank), "--target", str(out)) == 0
    assert hashlib.sha256((out / "x").read_bytes()).digest() == \
        hashlib.sha256(blob.read_bytes()).digest()
    bank_obj = Bank(bank)
    section = CheckpointStore(bank_obj).get(cp).get_resource_bank_section(
        Resource(COMMAND, "dump"))
    manifest = section.get_object("manifest")
    assert manifest["size"] == 8_000_000
    assert manifest["sha256"] == hashlib.sha256(blob.read_bytes()).hexdigest()


def test_a_second_dump_that_changed_little_adds_little(tmp_path: Path) -> None:
    rng = io.BytesIO(os.urandom(20_000_000))
    blob = tmp_path / "blob.bin"
    original = rng.getvalue()
    blob.write_bytes(original)
    extra = {"protect": {"main": {"argv": ["cat", "blob.bin"], "stdout": "store"}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    protect(plan, bank)
    before = sum(p.stat().st_size for p in (bank / "chunks").rglob("*") if p.is_file())
    # a few bytes inserted near the start: everything after shifts
    blob.write_bytes(original[:1_000_000] + b"inserted row" + original[1_000_000:])
    protect(plan, bank)
    after = sum(p.stat().st_size for p in (bank / "chunks").rglob("*") if p.is_file())
    assert after - before < 0.25 * before, (before, after)


def test_chunks_follow_content_not_offsets() -> None:
    data = os.urandom(12_000_000)
    first = list(_cdc.chunks(io.BytesIO(data)))
    second = list(_cdc.chunks(io.BytesIO(b"x" * 777 + data)))
    assert b"".join(first) == data and b"".join(second) == b"x" * 777 + data
    assert len(set(first) & set(second)) >= len(first) - 2
    assert all(len(c) <= _cdc.DEFAULT_MAX for c in first)


def test_exit_code_fails_the_hook_with_the_tail_of_stderr(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    extra = {"protect": {"main": {"argv": [
        sys.executable, "-c",
        "import sys\nfor i in range(500): print('noise', i, file=sys.stderr)\n"
        "print('pg_dump: error: connection refused', file=sys.stderr); sys.exit(3)"],
        "stdout": "store"}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    assert run("protect", str(plan), "--bank", str(bank), "--executor", "serial") != 0
    entry = record_of(bank, newest(bank))
    assert entry.status == "error"
    reason = entry.reason or ""
    assert "exit code 3" in reason and "connection refused" in reason
    assert "noise 10 " not in reason + " "  # only the tail
    # nothing was committed: no stream manifest
    section = CheckpointStore(Bank(bank)).get(newest(bank)).get_resource_bank_section(
        Resource(COMMAND, "dump"))
    assert not section.has_object("manifest")


def test_a_timeout_kills_the_process_group_and_says_so(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    extra = {"protect": {"prepare_begin": {
        "argv": ["sh", "-c", f'sleep 300 & echo $! > {pidfile}; wait'], "timeout": 1}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    assert run("protect", str(plan), "--bank", str(bank), "--executor", "serial") != 0
    entry = record_of(bank, newest(bank))
    reason = entry.reason or ""
    assert "timed out" in reason and "did not finish in 1 s" in reason and "killed" in reason
    child = int(pidfile.read_text())
    try:
        os.kill(child, 0)
        with open(f"/proc/{child}/stat") as f:
            alive = f.read().split()[2] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive, "the grandchild survived the timeout"


def test_secrets_come_from_the_environment_and_are_never_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", "bank-pass-123456")
    seen = tmp_path / "seen.json"
    extra = {"env_from": ["DB_PASSWORD"], "env": {"PGHOST": "localhost"},
             "protect": {"main": {"argv": [sys.executable, "-c",
                 "import os, json, sys\n"
                 f"json.dump(dict(os.environ), open({str(seen)!r}, 'w'))\n"
                 "print('using', os.environ['DB_PASSWORD'], file=sys.stderr)\n"
                 "print('dump data')"], "stdout": "store"}},
             "verify": {"main": {"argv": [sys.executable, "-c",
                 "import os, sys\nprint('bad', os.environ['DB_PASSWORD'], file=sys.stderr)\n"
                 "sys.exit(1)"]}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    cp = protect(plan, bank)
    env = json.loads(seen.read_text())
    assert env["DB_PASSWORD"] == SECRET and env["PGHOST"] == "localhost"
    assert "PROTECTFLOW_PASSWORD" not in env
    assert env["PROTECTFLOW_CHECKPOINT_ID"] == cp
    assert env["PROTECTFLOW_RESOURCE_ID"] == "dump"
    assert env["PROTECTFLOW_RESOURCE_TYPE"] == COMMAND
    assert env["PROTECTFLOW_OPERATION"] == "protect" and env["PROTECTFLOW_HOOK"] == "main"
    assert json.loads(env["PROTECTFLOW_RESOURCE_EXTRA_INFO"])["env_from"] == ["DB_PASSWORD"]
    assert run("verify", cp, "--bank", str(bank)) != 0  # its reason holds the stderr tail
    stored = everything_stored(bank)
    assert "DB_PASSWORD" in stored  # the name is in the plan ...
    assert SECRET not in stored  # ... its value nowhere
    assert "***" in stored  # masked in the failure reason


def test_a_secret_as_a_plain_value_is_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    extra = {"env": {"PGPASSWORD": "hunter2"},
             "protect": {"main": ["true"]}}
    plan = write_plan(tmp_path, extra)
    assert run("protect", str(plan), "--bank", str(tmp_path / "bank")) != 0
    err = capsys.readouterr().err
    assert "PGPASSWORD looks like a secret" in err and "env_from" in err
    assert not (tmp_path / "bank").exists() or not list((tmp_path / "bank").rglob("plan*"))


def test_a_missing_env_from_variable_is_named(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    plan = write_plan(tmp_path, {"env_from": ["NOT_SET_ANYWHERE"],
                                 "protect": {"main": ["true"]}})
    assert run("protect", str(plan), "--bank", str(tmp_path / "bank")) != 0
    assert "NOT_SET_ANYWHERE is not set in your environment" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "says"), [
    ({"protect": {"main": "pg_dump shop"}}, "give an argv list"),
    ({"protect": {"main": {"argv": "pg_dump shop | gzip"}}}, "add shell: true"),
    ({"protect": {"mian": ["true"]}}, "'mian' is not a hook"),
    ({"protect": {"main": {"argv": ["true"], "stdout": "keep"}}}, "stdout must be"),
    ({"restore": {"main": {"argv": ["true"], "stdin": "stored"}}}, "no protect hook"),
    ({"protect": {"main": ["true"]}, "timeout": -1}, "timeout must be"),
    ({"protect": {"main": ["true"]}, "comand": 1}, "comand is not an exec field"),
])
def test_bad_commands_are_refused_naming_the_field(extra: dict[str, Any], says: str) -> None:
    with pytest.raises(LocalPluginError, match="not valid") as err:
        read_spec(Resource(COMMAND, "x", extra_info=extra))
    assert says in str(err.value)


def test_a_bad_command_is_refused_before_anything_runs(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    marker = tmp_path / "ran"
    extra = {"protect": {"prepare_begin": ["touch", str(marker)],
                         "main": {"argv": "echo hi", "stdout": "store"}}}
    plan = write_plan(tmp_path, extra)
    assert run("protect", str(plan), "--bank", str(tmp_path / "bank")) != 0
    assert "add shell: true" in capsys.readouterr().err
    assert not marker.exists()


def test_shell_true_runs_a_shell_string(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("hello\n")
    extra = {"protect": {"main": {"argv": "cat f.txt | tr a-z A-Z", "shell": True,
                                  "stdout": "store"}},
             "restore": {"main": {"argv": 'cat > "$PROTECTFLOW_RESTORE_TARGET/got"',
                                  "shell": True, "stdin": "stored"}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    cp = protect(plan, bank)
    assert run("restore", cp, "--bank", str(bank), "--target", str(tmp_path / "o")) == 0
    assert (tmp_path / "o" / "got").read_text() == "HELLO\n"


def test_hooks_run_in_order_and_delete_releases_the_chunks(tmp_path: Path) -> None:
    log = tmp_path / "log"
    def note(what: str) -> list[str]:
        return ["sh", "-c", f'echo "{what} $PROTECTFLOW_HOOK" >> {log}']
    extra = {"protect": {"prepare_begin": note("maintenance on"),
                         "main": {"argv": ["sh", "-c", "head -c 2000000 /dev/urandom"],
                                  "stdout": "store"},
                         "complete": note("maintenance off")},
             "delete": {"complete": note("deleted")}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    cp = protect(plan, bank)
    assert log.read_text().splitlines() == ["maintenance on prepare_begin",
                                            "maintenance off complete"]
    assert any((bank / "chunks").rglob("*"))
    assert run("delete", cp, "--bank", str(bank)) == 0
    assert log.read_text().splitlines()[-1] == "deleted complete"
    assert not [p for p in (bank / "chunks").rglob("*") if p.is_file()]


def test_verify_finds_a_damaged_stream(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(os.urandom(1_000_000))
    extra = {"protect": {"main": {"argv": ["cat", "f"], "stdout": "store"}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    cp = protect(plan, bank)
    assert run("verify", cp, "--bank", str(bank)) == 0
    chunk = max((p for p in (bank / "chunks").rglob("*") if p.is_file()),
                key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 1
    chunk.write_bytes(bytes(data))
    assert run("verify", cp, "--bank", str(bank)) != 0


GENERATE = """
import hashlib, random, sys
rng, total, digest = random.Random(7), int(sys.argv[1]), hashlib.sha256()
out = sys.stdout.buffer
for _ in range(total // (1 << 20)):
    piece = rng.randbytes(1 << 20)
    digest.update(piece)
    out.write(piece)
out.flush()
print(digest.hexdigest(), file=open(sys.argv[2], "w"))
"""
PROTECT_AND_REPORT_RSS = """
import resource, sys
from protectflow import cli
code = cli.main(sys.argv[1:])
print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _protect_rss(tmp_path: Path, size: int, name: str) -> tuple[Path, float]:
    """Protect a generated stream of ``size`` bytes in a process of its own;
    its bank and the process's peak RSS in MiB."""
    (tmp_path / "gen.py").write_text(GENERATE)
    extra = {"protect": {"main": {"argv": [sys.executable, "gen.py", str(size),
                                           f"{name}.sha"], "stdout": "store"}},
             "restore": {"main": {"argv": ["sh", "-c",
                                           'sha256sum > "$PROTECTFLOW_RESTORE_TARGET/got.sha"'],
                                  "stdin": "stored"}}}
    plan, bank = write_plan(tmp_path, extra, name=f"{name}.yaml"), tmp_path / f"bank-{name}"
    done = subprocess.run(
        [sys.executable, "-c", PROTECT_AND_REPORT_RSS, "protect", str(plan), "--bank",
         str(bank), "--executor", "serial"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return bank, int(done.stderr.split("maxrss_kib")[1].split()[0]) / 1024


@pytest.mark.slow  # a 256 MiB stream through the bank and back
def test_a_large_stream_goes_through_in_bounded_memory(tmp_path: Path) -> None:
    size = 256 << 20
    _, small_rss = _protect_rss(tmp_path, 1 << 20, "small")
    bank, rss = _protect_rss(tmp_path, size, "large")
    print(f"protect peak RSS: {small_rss:.0f} MiB for a 1 MiB stream, {rss:.0f} MiB for "
          f"{size >> 20} MiB")
    # what the stream costs beside a protect of almost nothing: a few chunks
    assert rss - small_rss < 64, (small_rss, rss)
    cp = newest(bank)
    assert run("restore", cp, "--bank", str(bank), "--target", str(tmp_path / "out")) == 0
    sent = (tmp_path / "large.sha").read_text().split()[0]
    assert (tmp_path / "out" / "got.sha").read_text().split()[0] == sent


def test_ls_shows_the_stored_stream_and_its_size(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_bytes(b"z" * 12345)
    extra = {"protect": {"main": {"argv": ["cat", "f"], "stdout": "store"}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    cp = protect(plan, bank)
    capsys.readouterr()
    assert run("ls", cp, KEY, "--bank", str(bank), "-l") == 0
    out = capsys.readouterr().out
    assert "main.stdout" in out and "12.1 KiB" in out.replace("12 KiB", "12.1 KiB")


def test_the_stream_manifest_reads_back_what_it_wrote_and_refuses_the_rest() -> None:
    manifest = StreamManifest(hook="main", size=7, sha256="ab" * 32,
                              chunks=("0123456789abcdef0123", "fedcba9876543210fedc"),
                              lengths=(3, 4), taken_at=1.5)
    data = manifest.to_json()
    assert StreamManifest.from_json(json.loads(json.dumps(data)), what="x") == manifest
    for broken, says in [({"version": 2}, "version 2; this protectflow reads version 1"),
                         ({"lengths": [3]}, "one positive length per chunk"),
                         ({"size": 8}, "not the sum"),
                         ({"chunks": ["../etc", "x"]}, "not a list of chunk names"),
                         ({"hook": "later"}, "is not one of"),
                         ({"sha256": "zz"}, "not a SHA-256")]:
        with pytest.raises(LocalPluginError, match="x: its stream manifest") as err:
            StreamManifest.from_json({**data, **broken}, what="x")
        assert says in str(err.value)


def test_deleting_a_failed_protect_releases_what_its_command_had_stored(tmp_path: Path) -> None:
    extra = {"protect": {"main": {"argv": ["sh", "-c", "head -c 3000000 /dev/urandom; exit 1"],
                                  "stdout": "store"}}}
    plan, bank = write_plan(tmp_path, extra), tmp_path / "bank"
    assert run("protect", str(plan), "--bank", str(bank), "--executor", "serial") != 0
    assert [p for p in (bank / "chunks").rglob("*") if p.is_file()]
    assert run("delete", newest(bank), "--bank", str(bank)) == 0
    assert not [p for p in (bank / "chunks").rglob("*") if p.is_file()]


def test_a_copy_to_another_bank_restores_the_same_stream(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    plan, bank, other = write_plan(tmp_path, TAR_EXTRA), tmp_path / "bank", tmp_path / "other"
    cp = protect(plan, bank)
    assert run("copy", cp, "--bank", str(bank), "--to", str(other)) == 0
    copied = newest(other)
    assert run("verify", copied, "--bank", str(other)) == 0
    assert run("restore", copied, "--bank", str(other), "--target", str(tmp_path / "o")) == 0
    assert tree(tmp_path / "o") == tree(data)
