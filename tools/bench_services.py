"""Benchmark PostgreSQL protected through the exec plugin beside the plain tools.

Run: ``python tools/bench_services.py [--scale 70] [--rounds 3]`` (as root it
runs the server as a user of its own; needs the ``postgresql`` package).

A server of its own is started in a temporary folder, ``pgbench -i -s
SCALE`` fills a database (scale 70: about 1 GB), then, side by side in each
round (its bank made beforehand by a tiny protect: making a bank's key is not
what is measured):

- dump: ``pg_dump -Fc > file`` vs ``protectflow protect`` of
  ``examples/postgres/plan.yaml`` (the same ``pg_dump -Fc``, its output
  chunked, deduplicated, encrypted into a bank);
- load: ``pg_restore -d new`` from that file, and from a pipe (``cat file |
  pg_restore``: how protectflow feeds it), vs ``protectflow restore --target
  new`` (the stored stream fed to the same ``pg_restore``).

Medians of the rounds are printed, with protectflow's time as a ratio of the
plain tool's (the target is at most 1.3x).
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAN = Path(__file__).resolve().parents[1] / "examples" / "postgres" / "plan.yaml"
PASSWORD = "bench-pass"


def _pf(*argv: str) -> None:
    subprocess.run([sys.executable, "-c", "import sys; from protectflow import cli; "
                    "sys.exit(cli.main(sys.argv[1:]))", *argv], check=True,
                   stdout=subprocess.DEVNULL)


def _timed(argv: list[str], **kw: object) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=70)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        print("initdb not found: apt-get install postgresql", file=sys.stderr)
        return 2
    bindir = os.path.dirname(found[-1])
    home = tempfile.mkdtemp(prefix="pfbench-pg-")
    os.chmod(home, 0o755)
    kw: dict[str, object] = {"cwd": home}
    user = None
    if os.geteuid() == 0:
        user = f"pfbench{os.getpid() % 100000}"
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                       check=True)
        entry = pwd.getpwnam(user)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        kw.update(user=entry.pw_uid, group=entry.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    pwfile = Path(home, "pw")
    pwfile.write_text(PASSWORD + "\n")
    if user:
        shutil.chown(pwfile, user)
    env = {"PGHOST": home, "PGPORT": port, "PGUSER": "postgres", "PGDATABASE": "bench",
           "PGPASSWORD": PASSWORD}
    os.environ.update(env)
    server = None
    try:
        subprocess.run([f"{bindir}/initdb", "-D", f"{home}/data", "-U", "postgres", "-A",
                        "scram-sha-256", "--pwfile", str(pwfile)], check=True,
                       capture_output=True, **kw)  # type: ignore[call-overload]
        server = subprocess.Popen([f"{bindir}/postgres", "-D", f"{home}/data", "-k", home,
                                   "-p", port, "-c", "listen_addresses="],
                                  stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        while subprocess.run(["pg_isready", "-q"], check=False).returncode != 0:
            time.sleep(0.1)
        subprocess.run(["createdb", "bench"], check=True)
        print(f"pgbench -i -s {args.scale} ...", flush=True)
        subprocess.run(["pgbench", "-q", "-i", "-s", str(args.scale)], check=True,
                       capture_output=True)
        size = subprocess.run(["psql", "-XAtc", "select pg_database_size('bench')"],
                              check=True, capture_output=True, text=True).stdout.strip()
        print(f"database: {int(size) / 1e6:.0f} MB", flush=True)
        work = Path(tempfile.mkdtemp(prefix="pfbench-out-"))
        shutil.copy(PLAN, work / "plan.yaml")
        (work / "tiny.yaml").write_text(  # a first protect makes each round's bank (its key)
            "name: tiny\nresources:\n- type: protectflow::exec::Command\n  id: t\n"
            "  extra_info: {protect: {main: {argv: [echo, hi], stdout: store}}}\n")
        times: dict[str, list[float]] = {k: [] for k in ("pg_dump", "protect", "pg_restore",
                                                          "piped", "restore")}
        dump_size = 0
        for n in range(args.rounds):
            dump = work / "dump.fc"
            with open(dump, "wb") as out:
                times["pg_dump"].append(_timed(["pg_dump", "-Fc", "--no-password"],
                                               stdout=out))
            dump_size = dump.stat().st_size
            bank = work / f"bank{n}"
            _pf("protect", str(work / "tiny.yaml"), "--bank", str(bank))  # makes the bank
            before = set(os.listdir(bank / "checkpoints"))
            started = time.perf_counter()
            _pf("protect", str(work / "plan.yaml"), "--bank", str(bank), "--executor",
                "serial")
            times["protect"].append(time.perf_counter() - started)
            subprocess.run(["createdb", f"plain{n}"], check=True)
            times["pg_restore"].append(_timed(["pg_restore", "--no-owner", "-d", f"plain{n}",
                                               str(dump)]))
            subprocess.run(["createdb", f"piped{n}"], check=True)
            times["piped"].append(_timed(["sh", "-c", f'cat "{dump}" | pg_restore --no-owner '
                                          f'-d piped{n}']))
            (cp,) = set(os.listdir(bank / "checkpoints")) - before
            started = time.perf_counter()
            _pf("restore", cp, "--bank", str(bank), "--target", f"pf{n}")
            times["restore"].append(time.perf_counter() - started)
            for db in (f"plain{n}", f"piped{n}", f"pf{n}"):
                subprocess.run(["dropdb", db], check=True)
            shutil.rmtree(bank)
        med = {k: statistics.median(v) for k, v in times.items()}
        mb = dump_size / 1e6
        print(f"dump of {mb:.0f} MB (pg_dump -Fc), medians of {args.rounds} rounds:")
        print(f"  pg_dump > file      {med['pg_dump']:7.2f} s  {mb / med['pg_dump']:7.1f} MB/s")
        print(f"  protectflow protect {med['protect']:7.2f} s  {mb / med['protect']:7.1f} MB/s"
              f"  ({med['protect'] / med['pg_dump']:.2f}x)")
        print(f"  pg_restore < file   {med['pg_restore']:7.2f} s")
        print(f"  cat file | pg_restore {med['piped']:5.2f} s  (from a pipe, as protectflow "
              "feeds it)")
        print(f"  protectflow restore {med['restore']:7.2f} s"
              f"  ({med['restore'] / med['pg_restore']:.2f}x the file, "
              f"{med['restore'] / med['piped']:.2f}x the pipe)")
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        if user:
            subprocess.run(["userdel", user], check=False)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
