"""PostgreSQL through the exec plugin, for real: a server from the
distribution's packages started in a temporary data folder as an
unprivileged user, ``pg_dump -Fc`` into the bank while a writer keeps
inserting, ``pg_restore`` into a new database, ``pg_restore --list`` as the
verify -- with the example plan of ``examples/postgres``."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.objects import _keystore as keystore
from tests import needs, waits
from tests.plugins.test_plugins_exec import everything_stored

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "postgres" / "plan.yaml"
PASSWORD = "pg-Secret-4711"
BATCH = 50  # rows per insert transaction of the writer


def _bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A PostgreSQL server of its own; yields the libpq environment."""
    bindir = _bin()
    if bindir is None or shutil.which("pg_dump") is None:
        pytest.skip(needs.missing_tool("initdb", "postgresql"))
    if os.geteuid() != 0:
        pytest.skip(needs.missing_root("running PostgreSQL as a user of its own"))
    user = f"pfpg{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                   check=True, capture_output=True)
    entry = pwd.getpwnam(user)
    home = tempfile.mkdtemp(prefix="pfpg-")
    os.chmod(home, 0o755)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    data, pwfile = os.path.join(home, "data"), os.path.join(home, "pw")
    Path(pwfile).write_text(PASSWORD + "\n")
    os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "cwd": home}
    port = str(_free_port())
    proc = None
    try:
        subprocess.run([f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A",
                        "scram-sha-256", "--pwfile", pwfile], check=True,
                       capture_output=True, **as_user)  # type: ignore[call-overload]
        proc = subprocess.Popen(
            [f"{bindir}/postgres", "-D", data, "-k", home, "-p", port,
             "-c", "listen_addresses="], stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(home, "log"), "wb"), **as_user)  # noqa: SIM115
        env = {"PGHOST": home, "PGPORT": port, "PGUSER": "postgres", "PGDATABASE": "shop",
               "PGPASSWORD": PASSWORD}
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        def ready() -> bool:
            assert proc is not None and proc.poll() is None, Path(home, "log").read_text()
            return subprocess.run(["pg_isready", "-q"], check=False).returncode == 0

        waits.wait_until(ready, "the PostgreSQL server accepts connections")
        yield env
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        subprocess.run(["userdel", user], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def psql(sql: str, db: str = "shop") -> str:
    return subprocess.run(["psql", "-XAtq", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def run(*argv: str) -> int:
    code = cli.main(list(argv))
    keystore.forget_unlocked()
    return code


WRITER = f"""
set -e
while :; do
  psql -XAtq -c "insert into t (pad) select md5(random()::text) from generate_series(1, {BATCH})"
done
"""


@pytest.mark.slow  # starts a server, dumps while a writer writes, restores
def test_pg_dump_while_a_writer_inserts_restores_a_consistent_new_database(
        server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROTECTFLOW_PASSWORD", "PROTECTFLOW_PASSWORD_FILE", "PROTECTFLOW_BANK"):
        monkeypatch.delenv(name, raising=False)
    subprocess.run(["createdb", "shop"], check=True)
    psql("create table t (id bigserial primary key, pad text not null)")
    psql(f"insert into t (pad) select md5(i::text) from generate_series(1, {BATCH * 2000}) i")
    writer = subprocess.Popen(["sh", "-c", WRITER], stderr=subprocess.DEVNULL)
    try:
        start = int(psql("select count(*) from t"))
        waits.wait_until(lambda: int(psql("select count(*) from t")) > start,
                         "the writer inserts")
        plan = tmp_path / "plan.yaml"
        shutil.copy(EXAMPLE, plan)
        bank = tmp_path / "bank"
        assert run("protect", str(plan), "--bank", str(bank), "--executor", "serial") == 0
        waits.wait_until(lambda: int(psql("select count(*) from t")) > start + 5 * BATCH,
                         "the writer goes on")
    finally:
        writer.terminate()
        writer.wait()
    after = int(psql("select count(*) from t"))
    cp = CheckpointStore(Bank(bank)).list()[0].id
    assert run("restore", cp, "--bank", str(bank), "--target", "shop_restored") == 0
    restored = int(psql("select count(*) from t", db="shop_restored"))
    assert start <= restored <= after
    assert restored % BATCH == 0  # whole transactions only: one snapshot
    assert psql("select count(*) = max(id) from t", db="shop_restored") == "t"
    assert run("verify", cp, "--bank", str(bank)) == 0
    assert PASSWORD not in everything_stored(bank)  # the plan, records, reports
    # an existing database is not overwritten: createdb refuses, the restore fails
    assert run("restore", cp, "--bank", str(bank), "--target", "shop_restored") != 0
