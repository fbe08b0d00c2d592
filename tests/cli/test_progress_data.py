"""Progress in data: the model's ETA from bytes (which one large resource
does not fool), what the plugins report while they read, and the plain lines
of a real run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.cli.progress import DataProgress, PlainProgress
from protectflow.compiler import parse_plan
from protectflow.plugins.progress import watching
from tests import needs, waits
from tests.robustness.robust_helpers import COMMAND, protectflow


def test_one_large_resource_does_not_fool_the_eta_from_bytes() -> None:
    # 4 hooks; the first done, the second reads one large folder for the
    # whole run: the count of hooks stands still while the bytes move.
    by_bytes = DataProgress(0.0, hooks_total=4, hooks_done=1, bytes_total=1000)
    by_hooks = DataProgress(0.0, hooks_total=4, hooks_done=1)
    etas_bytes: list[float] = []
    etas_hooks: list[float] = []
    for now, done in ((10.0, 100), (20.0, 300), (30.0, 600), (40.0, 900)):
        for model in (by_bytes, by_hooks):
            model.bytes_done = done
        eta_bytes, eta_hooks = by_bytes.eta(now), by_hooks.eta(now)
        assert eta_bytes is not None and eta_hooks is not None
        etas_bytes.append(eta_bytes)
        etas_hooks.append(eta_hooks)
    assert etas_bytes == [pytest.approx(90.0), pytest.approx(700 / 15),
                          pytest.approx(20.0), pytest.approx(400 / 90)]
    assert etas_bytes == sorted(etas_bytes, reverse=True)  # it only falls
    assert etas_hooks == sorted(etas_hooks)  # from hooks it kept rising: 30, 60, 90, 120


def test_more_bytes_than_the_estimate_is_no_eta_below_zero() -> None:
    model = DataProgress(0.0, hooks_total=2, bytes_total=100)
    model.add(150, 3)
    assert model.eta(10.0) is None
    assert model.data(10.0) == "3 files, 150 B, 15 B/s"
    model = DataProgress(0.0, bytes_total=4 << 20)
    model.add(1 << 20, 1)
    assert model.data(2.0) == "1 files, 1.0 MiB of ~4.0 MiB (25%), 512.0 KiB/s"
    assert model.eta(2.0) == pytest.approx(6.0)


def test_a_line_before_any_data_counts_hooks_only() -> None:
    plain = PlainProgress("protect (threads)")
    try:
        plain.model.hooks_total = 8
        plain.model.hooks_done = 2
        line = plain.line(plain.model.start + 4.0)
        assert line == ("protect (threads): 2/8 hooks done, 0 failed, 4 s elapsed, "
                        "about 12 s left")
        plain.model.bytes_total = 1000
        plain.model.add(250, 5)
        line = plain.line(plain.model.start + 5.0)
        assert line == ("protect (threads): 2/8 hooks done, 0 failed, 5 files, 250 B of "
                        "~1000 B (25%), 50 B/s, 5 s elapsed, about 15 s left")
    finally:
        plain.stop()


def _tree(root: Path) -> dict[str, int]:
    root.mkdir()
    sizes = {"big.bin": 9 << 20, "small.txt": 100, "other.txt": 2000}
    for name, size in sizes.items():
        (root / name).write_bytes(os.urandom(size))
    return sizes


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_the_fs_plugin_reports_every_byte_and_file_as_it_goes(tmp_path: Path,
                                                              executor: str) -> None:
    sizes = _tree(tmp_path / "data")
    plan = parse_plan(f"name: p\nresources:\n  - {{type: protectflow::fs::Directory, id: d, "
                      f"extra_info: {{path: {tmp_path / 'data'}}}}}\n", source="p.yaml")
    bank = Bank(str(tmp_path / "bank"))
    for round_ in range(2):  # read, then found unchanged: both count
        seen: list[tuple[int, int]] = []

        def sink(n: int, f: int, seen: list[tuple[int, int]] = seen) -> None:
            seen.append((n, f))

        with watching(sink):
            operations.protect(plan, bank=bank, executor=executor)
        assert sum(n for n, _ in seen) == sum(sizes.values()), round_
        assert sum(f for _, f in seen) == len(sizes), round_
        if round_ == 0:  # the big file came in chunks, not at its end
            assert max(n for n, _ in seen) < sizes["big.bin"]


def test_a_piped_protect_prints_files_bytes_and_an_eta_from_the_last_size(
        tmp_path: Path) -> None:
    sizes = _tree(tmp_path / "data")
    plan = tmp_path / "plan.yaml"
    # the sim volume keeps the run going after the tree is read: lines come
    plan.write_text(f"name: slow\nresources:\n  - {{type: protectflow::fs::Directory, id: d, "
                    f"extra_info: {{path: {tmp_path / 'data'}}}}}\n"
                    "  - {type: OS::Cinder::Volume, id: v}\n"
                    "parameters:\n  OS::Cinder::Volume: {main_seconds: 1.0}\n")
    bank = str(tmp_path / "bank")
    env = {"PROTECTFLOW_PROGRESS_INTERVAL": "0.2"}
    first = protectflow(["protect", str(plan), "--bank", bank, "--executor", "threads"], env=env)
    assert first.returncode == 0, first.stderr
    total = sum(sizes.values())
    assert re.search(r"protect \(threads\): \d+/8 hooks done, 0 failed, 3 files, 9\.0 MiB, "
                     r"[\d.]+ \w+/s, \d+ s elapsed", first.stderr), first.stderr
    second = protectflow(["protect", str(plan), "--bank", bank, "--executor", "threads"],
                         env=env)
    assert second.returncode == 0, second.stderr
    # the estimate is the last checkpoint's size: the bytes reach 100% of it
    assert "9.0 MiB of ~9.0 MiB (100%)" in second.stderr, second.stderr
    assert total == 9 * (1 << 20) + 2100


def test_a_restore_reports_every_byte_and_file_it_writes(tmp_path: Path) -> None:
    sizes = _tree(tmp_path / "data")
    plan = parse_plan(f"name: p\nresources:\n  - {{type: protectflow::fs::Directory, id: d, "
                      f"extra_info: {{path: {tmp_path / 'data'}}}}}\n", source="p.yaml")
    bank = Bank(str(tmp_path / "bank"))
    checkpoint = operations.protect(plan, bank=bank).checkpoint.id
    seen: list[tuple[int, int]] = []

    def sink(n: int, f: int) -> None:
        seen.append((n, f))

    with watching(sink):
        operations.restore(checkpoint, bank=bank, parameters={
            "protectflow::fs::Directory": {"target": str(tmp_path / "out")}})
    assert sum(n for n, _ in seen) == sum(sizes.values())
    assert sum(f for _, f in seen) == len(sizes)


@pytest.mark.slow
def test_the_terminal_bar_shows_files_bytes_and_the_size_it_expects(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect", reason=f"pexpect {needs.TEST_EXTRA}")
    _tree(tmp_path / "data")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: slow\nresources:\n  - {{type: protectflow::fs::Directory, id: d, "
                    f"extra_info: {{path: {tmp_path / 'data'}}}}}\n"
                    "  - {type: OS::Cinder::Volume, id: v}\n"
                    "parameters:\n  OS::Cinder::Volume: {main_seconds: 1.0}\n")
    bank = str(tmp_path / "bank")
    assert protectflow(["protect", str(plan), "--bank", bank, "-q"]).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "PROTECTFLOW_BANK"}
    env.update(COLUMNS="200", LINES="40", TERM="xterm")
    child = pexpect.spawn(COMMAND[0], [*COMMAND[1:], "protect", str(plan), "--bank", bank],
                          cwd=str(tmp_path), env=env, encoding="utf-8", timeout=waits.LIMIT,
                          dimensions=(40, 200))
    # the tree is read while the volume's hook sleeps: the bar says so
    child.expect(r"3 files, 9\.0 MiB of ~9\.0 MiB \(100%\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
