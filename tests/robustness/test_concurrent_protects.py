"""Eight ``protectflow protect`` processes writing to one bank at once."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protectflow.bank import CheckpointStore
from tests import waits
from tests.robustness.robust_helpers import COMMAND, protectflow

pytestmark = pytest.mark.slow  # eight protects, each a process

N = 8

PLAN = """\
name: crowd-{n}
resources:
  - type: OS::Keystone::Project
    id: tenant-{n}
    depends_on: [OS::Nova::Server#web-{n}, OS::Nova::Server#db-{n}]
  - type: OS::Nova::Server
    id: web-{n}
    depends_on: [OS::Cinder::Volume#shared, OS::Glance::Image#base]
  - type: OS::Nova::Server
    id: db-{n}
    depends_on: [OS::Cinder::Volume#data-{n}, OS::Glance::Image#base]
  - {{type: OS::Cinder::Volume, id: shared}}
  - {{type: OS::Cinder::Volume, id: data-{n}}}
  - {{type: OS::Glance::Image, id: base}}
parameters:
  OS::Cinder::Volume: {{payload_bytes: 200000}}
  OS::Glance::Image: {{payload_bytes: 50000}}
"""


def test_eight_protects_at_once(session_bank: tuple[Path, str], tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    # A bank that already holds a checkpoint, as users' banks do.
    subprocess.run(["cp", "-a", str(session_bank[0]), str(bank)], check=True)
    plans = []
    for n in range(N):
        plan = tmp_path / f"crowd-{n}.yaml"
        plan.write_text(PLAN.format(n=n), encoding="utf-8")
        plans.append(plan)
    env = {**os.environ, "PROTECTFLOW_BANK": str(bank), "COLUMNS": "200"}
    # Popen all of them first, then wait: they start together.
    procs = [subprocess.Popen([*COMMAND, "protect", str(p), "--executor", "threads"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
             for p in plans]
    results = [(p.communicate(timeout=waits.LIMIT), p.returncode) for p in procs]
    for (out, err), code in results:
        assert code == 0, f"exit {code}\n{out}\n{err}"
        assert "Traceback" not in err, err

    listed = protectflow(["checkpoints", "list", "--json", "--limit", "100"], bank=bank)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["checkpoints"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == N + 1
    assert session_bank[1] in ids
    assert sorted(r["plan"] for r in rows if r["id"] != session_bank[1]) == [
        f"crowd-{n}" for n in range(N)
    ]
    assert {r["status"] for r in rows} == {"available"}
    store = CheckpointStore(bank)
    for cid in ids:  # every process's data whole, none mixed up with another's
        checkpoint = store.get(cid)
        if cid == session_bank[1]:
            continue
        n = checkpoint.plan.name.rsplit("-", 1)[1]
        for key, size in ((f"OS::Cinder::Volume#data-{n}", 200_000),
                          ("OS::Cinder::Volume#shared", 200_000),
                          ("OS::Glance::Image#base", 50_000)):
            section = checkpoint.get_resource_bank_section(key)
            assert section.get_object("data") == b"\0" * size
            assert section.get_object("metadata")["id"] == key.split("#")[1]

    with ThreadPoolExecutor(max_workers=4) as pool:
        verified = list(pool.map(
            lambda cid: protectflow(["verify", cid, "--executor", "serial"], bank=bank), ids
        ))
    for cid, done in zip(ids, verified, strict=True):
        assert done.returncode == 0, f"verify {cid}: exit {done.returncode}\n{done.stderr}"
        assert "Traceback" not in done.stderr
