"""``protectflow report``: what the page holds, read from a real checkpoint
and run; the bank's text is escaped; the command's mistakes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from protectflow import cli, operations
from protectflow.bank import Bank, Checkpoint
from protectflow.compiler import parse_plan
from protectflow.dag.outcomes import ResourceStatus
from protectflow.report import RunNotFoundError, build_report, gather
from protectflow.report.stats import dedup_summary, human_size, resource_stats
from protectflow.states import AVAILABLE, ERROR, FAILED, SUCCEEDED

DIRECTORY = "protectflow::fs::Directory"
#: Markup planted in a resource's name and reason: it must show as text.
PLANTED = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


def sim_plan(*, fail: bool) -> str:
    return json.dumps({"name": "tenant", "resources": [
        {"type": "OS::Nova::Server", "id": "web", "name": PLANTED,
         "depends_on": ["OS::Cinder::Volume#root", "OS::Cinder::Volume#data"]},
        {"type": "OS::Cinder::Volume", "id": "root"},
        {"type": "OS::Cinder::Volume", "id": "data"}],
        "parameters": {"OS::Cinder::Volume#data": {"fail": ["main"]} if fail else {}}})


def failed_checkpoint(bank: Path) -> Checkpoint:
    """A protect of three sim resources whose volume 'data' failed, with
    markup planted in the server's name and, as a damaged bank might, reason."""
    plan = parse_plan(sim_plan(fail=True), source="tenant.json")
    result = operations.protect(plan, bank=Bank(str(bank)), executor="threads", workers=2,
                                keep_going=True)
    assert not result.ok
    statuses = result.checkpoint.resources
    statuses["OS::Cinder::Volume#root"] = ResourceStatus(AVAILABLE, PLANTED)
    result.checkpoint.set_resource_statuses(statuses)
    return result.checkpoint


def test_the_report_reads_statuses_hooks_and_the_timeline(tmp_path: Path) -> None:
    checkpoint = failed_checkpoint(tmp_path / "bank")
    report = gather(checkpoint)
    rows = {r.key: r for r in report.resources}
    assert sorted(rows) == ["OS::Cinder::Volume#data", "OS::Cinder::Volume#root",
                            "OS::Nova::Server#web"]
    assert rows["OS::Cinder::Volume#data"].status == ERROR
    assert "main" in (rows["OS::Cinder::Volume#data"].reason or "")
    assert rows["OS::Cinder::Volume#data"].hooks["main"] == FAILED
    assert rows["OS::Cinder::Volume#root"].hooks == dict.fromkeys(
        ("prepare_begin", "prepare_finish", "main", "complete"), SUCCEEDED)
    assert report.run is not None and report.run.operation == "protect"
    assert [r.id for r in report.runs] == [report.run.id]
    # Every attempt the journal holds, on the worker threads that ran them.
    assert {s.node for s in report.spans} >= {"OS::Cinder::Volume#data/main"}
    assert all(s.start <= s.end and s.worker for s in report.spans)
    assert report.dag is not None and len(report.dag.nodes) == 12


def test_everything_from_the_bank_is_escaped(tmp_path: Path) -> None:
    html = build_report(failed_checkpoint(tmp_path / "bank"))
    assert PLANTED not in html and "<img" not in html
    # The name and the reason, in the table and in the boxes' tooltips.
    assert html.count("&lt;script&gt;window.pwned=1&lt;/script&gt;") >= 4
    assert len(re.findall(r"<script[ >]", html)) == 1  # the page's own, and no other
    rest = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http:" not in rest and "https:" not in rest  # nothing to fetch


def test_a_run_is_chosen_by_a_prefix_of_its_id(tmp_path: Path) -> None:
    checkpoint = failed_checkpoint(tmp_path / "bank")
    run = gather(checkpoint).runs[0].id
    assert gather(checkpoint, run=run[:12]).run is not None
    with pytest.raises(RunNotFoundError, match=rf"no run of this checkpoint starts with "
                                               rf"'nope'; its runs: {run}"):
        gather(checkpoint, run="nope")


def test_file_statistics_and_what_was_deduplicated(tmp_path: Path) -> None:
    tree = tmp_path / "docs"
    tree.mkdir()
    for i in range(3):
        (tree / f"f{i}.txt").write_bytes(b"x" * 1000 * (i + 1))
    plan = parse_plan(json.dumps({"name": "t", "resources": [
        {"type": DIRECTORY, "id": "docs", "extra_info": {"path": str(tree)}}]}), source="t.json")
    bank = Bank(str(tmp_path / "bank"))
    operations.protect(plan, bank=bank, executor="serial")
    (tree / "f0.txt").write_bytes(b"y" * 1500)  # one changed, two unchanged
    second = operations.protect(plan, bank=bank, executor="serial").checkpoint
    row = gather(second).resources[0]
    stats = dict(row.stats)
    assert stats["files"] == 3 and stats["bytes"] == 1500 + 2000 + 3000
    assert stats["reused_files"] == 2
    html = build_report(second)
    assert "2 of 3 files unchanged and reused from the previous checkpoint" in html
    assert "size of the files: 6.3 KiB" in html


def test_stats_come_from_the_status_first_and_only_numbers_count() -> None:
    class WithStats:
        stats = {"files": 2, "bytes": 10, "note": "text"}
    assert resource_stats(WithStats(), {"main": {"files": 9}}) == (("files", 2), ("bytes", 10))
    assert resource_stats(None, {"main": {"files": 9, "hook": "main", "ok": True,
                                          "started_at": 1.0}}) == (("files", 9),)
    assert resource_stats(None, {"main": ["not", "stats"]}) == ()
    assert dedup_summary([(), ()]) is None
    assert human_size(512) == "512 B" and human_size(1536) == "1.5 KiB"


def test_the_command_writes_the_page_and_names_the_run_it_lacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = failed_checkpoint(tmp_path / "bank")
    out = tmp_path / "report.html"
    bank = str(tmp_path / "bank")
    assert cli.main(["report", checkpoint.id[:8], "--bank", bank, "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert f"written to {out}" in capsys.readouterr().err
    assert cli.main(["report", checkpoint.id, "--bank", bank, "--run", "x", "-o", "-"]) == 2
    assert "no run of this checkpoint starts with 'x'" in capsys.readouterr().err
    assert cli.main(["report", "feed", "--bank", bank, "-o", str(out)]) == 2
    assert "feed" in capsys.readouterr().err
