"""``forget`` and ``prune`` on real folders: the policy applied per plan,
its dry run, the guards, the data freed exactly, tombstones purged; and
protects in other processes racing a ``forget --prune``."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.bank.chunks.store import ChunkStore
from protectflow.compiler import Plan, parse_plan
from protectflow.errors import BankError
from protectflow.operations.forget import forget, prune
from protectflow.retention import RetentionPolicy
from protectflow.states import AVAILABLE, DELETED

SIM = """\
name: {name}
resources:
  - {{type: OS::Cinder::Volume, id: v1}}
"""


def tree_plan(tmp_path: Path, name: str = "tree", retention: str = "") -> Plan:
    src = tmp_path / f"src-{name}"
    src.mkdir(exist_ok=True)
    (src / "shared.bin").write_bytes(b"s" * 300_000)
    return parse_plan(f"""\
name: {name}
resources:
  - type: protectflow::fs::Directory
    id: src
    extra_info: {{path: {src}}}
{retention}""", source=str(tmp_path / f"{name}.yaml"))


def files(bank: Bank, top: str) -> set[str]:
    root = Path(bank.url) / top
    return {p.name for p in root.rglob("*") if p.is_file() and not p.name.startswith(".pftmp")}


def _protect_changed(tmp_path: Path, plan: Plan, bank: Bank, n: int) -> str:
    (tmp_path / f"src-{plan.name}" / "own.bin").write_bytes(os.urandom(200_000) + bytes([n]))
    return operations.protect(plan, bank=bank, executor="serial").checkpoint.id


def test_forget_keeps_last_n_per_plan_and_frees_exactly_what_went(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    plan = tree_plan(tmp_path)
    other = tree_plan(tmp_path, "other")
    ids = [_protect_changed(tmp_path, plan, bank, n) for n in range(4)]
    others = [_protect_changed(tmp_path, other, bank, n) for n in range(2)]
    before = files(bank, "chunks")
    report = forget(CheckpointStore(bank), RetentionPolicy(last=2), owner="t", prune_after=True)
    assert report.ok
    by_plan = {p.plan: p for p in report.plans}
    assert set(by_plan["tree"].removed) == set(ids[:2])
    assert by_plan["other"].removed == ()  # grouped by plan: both of "other" kept
    store = CheckpointStore(bank)
    assert [store.get(i).status for i in ids] == [DELETED, DELETED, AVAILABLE, AVAILABLE]
    after = files(bank, "chunks")
    assert after < before
    for kept in (*ids[2:], *others):
        assert operations.verify(kept, bank=bank, executor="serial").ok
    # a second prune finds nothing more to free: the first was exact
    assert prune(store).freed_chunks == 0
    assert files(bank, "chunks") == after


def test_dry_run_changes_nothing_and_says_why_each_stays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    plan = parse_plan(SIM.format(name="sim"), source="p")
    ids = [operations.protect(plan, bank=bank, tags=["gold"] if n == 0 else []).checkpoint.id
           for n in range(4)]
    assert cli.main(["forget", "--bank", bank.url, "--keep-last", "1", "--keep-tag", "gold",
                     "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is True
    (group,) = doc["plans"]
    assert {k["id"]: k["reasons"] for k in group["keep"]} == {
        ids[3]: ["last snapshot"], ids[0]: ["has tags [gold]"]}
    assert {r["id"] for r in group["remove"]} == {ids[1], ids[2]}
    store = CheckpointStore(bank)
    assert all(store.get(i).status == AVAILABLE for i in ids)
    assert cli.main(["forget", "--bank", bank.url, "--keep-last", "1", "-n"]) == 0
    out = capsys.readouterr().out
    assert "would remove 3 checkpoint(s)" in out and "last snapshot" in out


def test_the_plans_own_retention_and_a_plan_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    text = SIM.format(name="kept") + "retention: {keep_last: 2}\n"
    plan_path = tmp_path / "kept.yaml"
    plan_path.write_text(text + f"bank: {bank.url}\n")
    plan = parse_plan(text, source="p")
    ids = [operations.protect(plan, bank=bank).checkpoint.id for _ in range(3)]
    free = parse_plan(SIM.format(name="free"), source="p")
    free_ids = [operations.protect(free, bank=bank).checkpoint.id for _ in range(2)]
    # every plan: "kept" by the retention in its checkpoints, "free" by no rule
    report = forget(CheckpointStore(bank), owner="t")
    assert {p.plan: p.removed for p in report.plans} == {"kept": (ids[0],), "free": ()}
    # a plan file: its retention and its bank; the command line's rules win
    assert cli.main(["forget", "--plan", str(plan_path), "--keep-last", "1", "--json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)["plans"]
    assert group["plan"] == "kept" and group["removed"] == [ids[1]]
    assert all(CheckpointStore(bank).get(i).status == AVAILABLE for i in free_ids)


def test_no_rule_unknown_plan_and_bad_values_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    operations.protect(parse_plan(SIM.format(name="sim"), source="p"), bank=bank)
    assert cli.main(["forget", "--bank", bank.url]) == 2
    assert "no rule given" in capsys.readouterr().err
    assert cli.main(["forget", "--bank", bank.url, "--plan", "nope", "--keep-last", "1"]) == 2
    assert "plan 'nope' has no checkpoint" in capsys.readouterr().err
    for bad in (["--keep-within", "2d1y"], ["--keep-daily", "-2"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(["forget", "--bank", bank.url, *bad])
        assert exited.value.code == 2
    assert "not a span" in capsys.readouterr().err
    assert cli.main(["forget", "--bank", str(tmp_path / "none"), "--keep-last", "1"]) == 2
    assert "no bank" in capsys.readouterr().err


def test_busy_and_last_available_are_never_removed(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    plan = parse_plan(SIM.format(name="sim"), source="p")
    ids = [operations.protect(plan, bank=bank).checkpoint.id for _ in range(3)]
    held = CheckpointStore(bank).get(ids[0])
    held.acquire("verify", "someone")
    try:
        report = forget(CheckpointStore(bank), RetentionPolicy(last=1), owner="t")
    finally:
        held.release()
    (group,) = report.plans
    assert group.removed == (ids[1],)
    assert dict((k.id, k.reasons) for k in group.decision.keep)[ids[0]] == ("busy",)
    far = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    report = forget(CheckpointStore(bank), RetentionPolicy.from_json(
        {"retention_duration": 30}, BankError), owner="t", now=far)
    (group,) = report.plans
    assert group.removed == (ids[0],)
    assert [k.reasons for k in group.decision.keep] == [
        ("last available checkpoint of its plan",)]


def test_prune_frees_leaked_chunks_and_orphan_refs_and_purges_tombstones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = Bank(tmp_path / "bank")
    plan = tree_plan(tmp_path)
    first = _protect_changed(tmp_path, plan, bank, 1)
    second = _protect_changed(tmp_path, plan, bank, 2)
    leak = ChunkStore(bank, "gone@x")
    digest = leak.chunk_id(b"leaked bytes")
    leak.add(digest, b"leaked bytes")  # a ref of a checkpoint that does not exist
    assert digest in files(bank, "chunks")
    assert operations.delete(first, bank=bank, executor="serial").ok
    assert cli.main(["prune", "--bank", bank.url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["freed_chunks"] == 1 and doc["dropped_refs"] == 1 and doc["purged"] == []
    assert digest not in files(bank, "chunks")
    assert operations.verify(second, bank=bank, executor="serial").ok
    # tombstones: kept by default, removed once older than --purge-after
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)
    assert prune(CheckpointStore(bank), purge_after=30 * 86400.0, now=later).purged == (first,)
    assert [c.id for c in CheckpointStore(bank).list(limit=None)] == [second]
    assert not bank.has_object(f"checkpoints/{first}/record")
    assert operations.verify(second, bank=bank, executor="serial").ok


def test_purge_after_from_the_config_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bank = Bank(tmp_path / "bank")
    plan = parse_plan(SIM.format(name="sim"), source="p")
    ids = [operations.protect(plan, bank=bank).checkpoint.id for _ in range(2)]
    assert operations.delete(ids[0], bank=bank).ok
    config = tmp_path / "config.toml"
    config.write_text('purge_after = "1s"\n')
    monkeypatch.setenv("PROTECTFLOW_CONFIG", str(config))
    record = bank.get_object(f"checkpoints/{ids[0]}/record")
    record["updated_at"] = "2000-01-01T00:00:00.000000Z"
    bank.update_object(f"checkpoints/{ids[0]}/record", record)
    assert cli.main(["forget", "--bank", bank.url, "--keep-last", "1", "-q"]) == 0
    assert [c.id for c in CheckpointStore(bank).list(limit=None)] == [ids[1]]
    config.write_text('purge_after = "soon"\n')
    assert cli.main(["prune", "--bank", bank.url]) == 2


_PROTECTS = """\
import os, sys
from protectflow import operations
from protectflow.compiler import load_plan
plan = load_plan(sys.argv[1])
src = sys.argv[2]
for n in range(int(sys.argv[3])):
    with open(os.path.join(src, "own.bin"), "wb") as f:
        f.write(os.urandom(100_000))
    result = operations.protect(plan, bank=sys.argv[4], executor="serial")
    assert result.ok, result
"""


@pytest.mark.slow
def test_forget_prune_while_protects_run_in_other_processes(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank")
    workers = []
    for name in ("a", "b"):
        src = tmp_path / f"src-{name}"
        src.mkdir()
        (src / "shared.bin").write_bytes(b"s" * 300_000)
        (src / "own.bin").write_bytes(os.urandom(100_000))
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"name: {name}\nresources:\n  - type: protectflow::fs::Directory\n"
                        f"    id: src\n    extra_info: {{path: {src}}}\n")
        operations.protect(path, bank=bank, executor="serial")
        workers.append(subprocess.Popen(
            [sys.executable, "-c", _PROTECTS, str(path), str(src), "6", bank.url],
            env={**os.environ}))
    rounds = 0
    while any(w.poll() is None for w in workers) or rounds < 2:
        report = forget(CheckpointStore(bank), RetentionPolicy(last=2), owner="t",
                        prune_after=True)
        assert all(why.startswith("kept: it became busy") for p in report.plans
                   for _, why in p.failed)
        rounds += 1
    assert [w.wait() for w in workers] == [0, 0]
    forget(CheckpointStore(bank), RetentionPolicy(last=2), owner="t", prune_after=True)
    store = CheckpointStore(bank)
    available = [c.id for c in store.list(limit=None) if c.status == AVAILABLE]
    assert len(available) == 4
    for checkpoint_id in available:
        assert cli.main(["verify", checkpoint_id, "--bank", bank.url, "--read-data", "-q",
                         "--executor", "serial"]) == 0
