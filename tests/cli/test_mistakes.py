"""The mistakes a new user makes, through the real command: each is refused
(or answered) with its exit code and a message that says what to do, and a
refused command leaves the bank (and a restore's target) byte for byte as
it was."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from protectflow.bank import Bank, CheckpointStore
from protectflow.cli import results
from tests import waits
from tests.robustness.robust_helpers import COMMAND, protectflow, tree_digest

ROOT = Path(__file__).resolve().parents[2]
SHOP_PLAN = ROOT / "examples" / "shop" / "plan.yaml"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A built shop, its plan naming its bank (``bank: bank``), and one checkpoint."""
    folder = tmp_path_factory.mktemp("shop")
    subprocess.run([sys.executable, str(ROOT / "examples" / "shop" / "make_shop.py"),
                    str(folder / "app")], check=True, capture_output=True)
    plan = folder / "app" / "plan.yaml"
    data = json.loads(plan.read_text())
    data["bank"] = "../bank"
    plan.write_text(json.dumps(data))
    done = protectflow(["protect", str(plan), "--executor", "serial"])
    assert done.returncode == 0, done.stderr
    found = re.search(r"checkpoint (\w+): available, in the bank (\S+)", done.stdout)
    assert found is not None, done.stdout
    assert Path(found.group(2)) == folder / "bank"  # protect says which bank
    return plan, folder / "bank", found.group(1)


def test_validate_checks_the_sources_and_says_how_to_build_them(tmp_path: Path) -> None:
    # The example plan before its shop is built: both paths at once, with the fix.
    done = protectflow(["validate", str(SHOP_PLAN)], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("does not exist; build the shop first: python "
                             "examples/shop/make_shop.py") == 2
    assert "#uploads" in done.stderr and "#orders" in done.stderr


def test_protect_of_a_missing_folder_writes_nothing(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    bank.mkdir()
    before = tree_digest(bank)
    done = protectflow(["protect", str(SHOP_PLAN), "--bank", str(bank)])
    assert done.returncode == 2, done.stderr
    assert "nothing was written" in done.stderr and "make_shop.py" in done.stderr
    assert tree_digest(bank) == before


def test_a_command_not_on_path_is_found_before_protect(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: app\nresources:\n  - type: protectflow::app::Application\n"
                    "    id: a\n    extra_info: {freeze: [no-such-freezer], thaw: 'true'}\n")
    done = protectflow(["validate", str(plan)])
    assert done.returncode == 2
    assert "the freeze command's program 'no-such-freezer' is not on PATH" in done.stderr


def test_a_restore_into_a_non_empty_target_writes_nothing(
        shop: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, bank, checkpoint = shop
    target = tmp_path / "target"
    (target / "uploads").mkdir(parents=True)
    (target / "uploads" / "mine.txt").write_text("the user's own file")
    before, bank_before = tree_digest(target), tree_digest(bank)
    done = protectflow(["restore", checkpoint, "--bank", str(bank), "--target", str(target)])
    assert done.returncode == 2, done.stderr
    assert "restore target" in done.stderr and "--force" in done.stderr
    assert "force: true" not in done.stderr
    # The database, whose destination is free, was not written either.
    assert tree_digest(target) == before and not (target / "orders").exists()
    assert tree_digest(bank) == bank_before


def test_checkpoint_commands_find_the_plans_bank(shop: tuple[Path, Path, str]) -> None:
    plan, bank, checkpoint = shop
    done = protectflow(["checkpoints", "show", checkpoint[:6], "--plan", str(plan)])
    assert done.returncode == 0, done.stderr
    assert f"checkpoint {checkpoint}, in the bank {bank}" in done.stdout
    listed = protectflow(["checkpoints", "list", "--plan", str(plan), "--json"])
    assert [c["id"] for c in json.loads(listed.stdout)["checkpoints"]] == [checkpoint]


def test_an_unknown_id_suggests_the_close_ones(shop: tuple[Path, Path, str]) -> None:
    _, bank, checkpoint = shop
    typo = ("0" if checkpoint[0] != "0" else "1") + checkpoint[1:]
    done = protectflow(["verify", typo, "--bank", str(bank)])
    assert done.returncode == 2
    assert f"did you mean {checkpoint}?" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["checkpoints", "list", "--bank", "s3:/bucket/x"], "write s3://bucket/x"),
    (["protect", "{plan}", "--bank", "s3:/bucket/x"], "write s3://bucket/x"),
    (["checkpoints", "list", "--bank", "{tmp}/no/such"], "there is no bank at"),
    (["checkpoints", "show", "x", "--bank", "{tmp}/no/such"], "there is no bank at"),
    (["checkpoints", "list", "--limit", "0"], "argument --limit: 0 is below 1"),
])
def test_bad_banks_and_numbers_exit_2_and_create_nothing(
        shop: tuple[Path, Path, str], tmp_path: Path, args: list[str], message: str) -> None:
    plan, _, _ = shop
    filled = [a.replace("{plan}", str(plan)).replace("{tmp}", str(tmp_path)) for a in args]
    done = protectflow(filled, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert list(tmp_path.iterdir()) == []  # no folder 's3:', no bank


def test_compile_and_run_take_parameters_for_restore_and_verify(
        shop: tuple[Path, Path, str], tmp_path: Path) -> None:
    plan, _, _ = shop
    params = tmp_path / "restore.yaml"
    params.write_text(f"protectflow::fs::Directory: {{target: {tmp_path}}}\n"
                      f"protectflow::sqlite::Database: {{target: {tmp_path}}}\n")
    done = protectflow(["compile", str(plan), "--operation", "restore", "--parameters",
                        str(params), "--format", "text"])
    assert done.returncode == 0, done.stderr
    assert protectflow(["compile", str(plan), "--operation", "verify"]).returncode == 0
    valid = protectflow(["validate", str(plan), "--operation", "restore", "--parameters",
                         str(params), "--json"])
    assert valid.returncode == 0, valid.stderr
    assert results.check("validate", json.loads(valid.stdout)) == []


def test_one_parameters_file_serves_validate_of_every_operation(
        shop: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A file keyed by operation gives restore its target and verify none, so
    ``validate --operation all`` passes (one flat file would fail verify)."""
    plan, _, _ = shop
    flat = tmp_path / "flat.yaml"
    flat.write_text(f"protectflow::fs::Directory: {{target: {tmp_path}}}\n")
    refused = protectflow(["validate", str(plan), "--operation", "all", "--parameters",
                           str(flat)])
    assert refused.returncode == 2 and "verify" in refused.stderr, refused.stderr
    split = tmp_path / "split.yaml"
    split.write_text(f"restore:\n  protectflow::fs::Directory: {{target: {tmp_path}}}\n"
                     f"  protectflow::sqlite::Database: {{target: {tmp_path}}}\n"
                     "verify: {}\n")
    valid = protectflow(["validate", str(plan), "--operation", "all", "--parameters",
                         str(split), "--json"])
    assert valid.returncode == 0, valid.stderr
    assert set(json.loads(valid.stdout)["operations"]) == {
        "protect", "restore", "verify", "copy", "delete"}
    twice = tmp_path / "twice.yaml"
    twice.write_text("restore: {}\nrestore: {}\n")
    bad = protectflow(["validate", str(plan), "--operation", "restore", "--parameters",
                       str(twice)])
    assert bad.returncode == 2 and "restore" in bad.stderr, bad.stderr


@pytest.mark.slow  # six commands, each a process
def test_the_next_page_hint_keeps_the_plan_the_limit_and_the_bank(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: one\nresources:\n  - {type: OS::Cinder::Volume, id: v}\n")
    for _ in range(3):
        assert protectflow(["protect", str(plan), "--bank", str(bank), "-q"]).returncode == 0
    first = protectflow(["checkpoints", "list", "--bank", str(bank), "--plan", "one",
                         "--limit", "2", "--json"])
    page = json.loads(first.stdout)
    assert results.check("checkpoints-list", page) == []
    assert len(page["checkpoints"]) == 2 and page["next_marker"] == page["checkpoints"][1]["id"]
    text = protectflow(["checkpoints", "list", "--bank", str(bank), "--plan", "one",
                        "--limit", "2"]).stdout
    hint = re.search(r"next page: (protectflow .*)", text)
    assert hint is not None, text
    follow = [*hint.group(1).split()[1:], "--json"]
    last = json.loads(protectflow(follow).stdout)
    assert len(last["checkpoints"]) == 1 and last["next_marker"] is None
    everything = json.loads(protectflow(["checkpoints", "list", "--bank", str(bank), "--all",
                                         "--json"]).stdout)
    assert len(everything["checkpoints"]) == 3


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: many\nresources:\n" + "".join(
        f"  - {{type: OS::Cinder::Volume, id: v{i}}}\n" for i in range(300)))
    proc = subprocess.Popen([*COMMAND, "compile", str(plan)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    # As `| head -1` does once it has its line: the reader goes away (now,
    # since how much a pipe holds varies from one system to another).
    proc.stdout.close()
    assert proc.wait(waits.LIMIT) == 141
    assert proc.stderr.read() == b""


def test_copied_from_reads_as_a_bank_and_a_checkpoint(
        shop: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, bank, checkpoint = shop
    other = tmp_path / "other"
    done = protectflow(["copy", checkpoint, "--bank", str(bank), "--to", str(other), "--json"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert results.check("result", result) == []
    copy = result["target"]["checkpoint"]
    shown = protectflow(["checkpoints", "show", copy, "--bank", str(other)]).stdout
    assert f"copied_from      bank {bank}, checkpoint {checkpoint}" in shown
    assert "{" not in shown.split("copied_from", 1)[1].splitlines()[0]


def test_no_arguments_list_the_commands_and_version_answers() -> None:
    done = protectflow([])
    assert done.returncode == 0
    assert "protect" in done.stdout and "checkpoints" in done.stdout
    version = protectflow(["--version"])
    assert version.returncode == 0 and re.fullmatch(r"protectflow \d+\.\d+\.\d+\S*\n",
                                                    version.stdout)


def test_quiet_and_verbose(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: two\nresources:\n  - {type: OS::Cinder::Volume, id: a}\n"
                    "  - {type: OS::Cinder::Volume, id: b}\n")
    bank = str(tmp_path / "bank")
    quiet = protectflow(["protect", str(plan), "--bank", bank, "-q"])
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    plain = protectflow(["protect", str(plan), "--bank", bank])
    assert "OS::Cinder::Volume#a" not in plain.stdout  # no table on success
    assert f"in the bank {bank}" in plain.stdout
    verbose = protectflow(["-v", "protect", str(plan), "--bank", bank])
    assert "OS::Cinder::Volume#a" in verbose.stdout and "OS::Cinder::Volume#b" in verbose.stdout


@pytest.mark.slow  # an operation of each kind, each a process
def test_every_operation_prints_json_that_follows_its_schema(
        shop: tuple[Path, Path, str], tmp_path: Path) -> None:
    plan, bank, checkpoint = shop
    calls = {
        "protect": ["protect", str(plan)],
        "verify": ["verify", checkpoint, "--bank", str(bank)],
        "restore": ["restore", checkpoint, "--bank", str(bank), "--target", str(tmp_path / "r")],
    }
    for name, args in calls.items():
        done = protectflow([*args, "--json", "--executor", "serial"])
        assert done.returncode == 0, (name, done.stderr)
        document = json.loads(done.stdout)
        assert results.check("result", document) == [], name
        assert document["operation"] == name and document["bank"] == str(bank)
    made = json.loads(protectflow([*calls["protect"], "--json"]).stdout)["checkpoint"]
    deleted = protectflow(["delete", made, "--plan", str(plan), "--json"])
    assert results.check("result", json.loads(deleted.stdout)) == []
    sim = tmp_path / "sim.yaml"
    sim.write_text("name: sim\nresources:\n  - {type: OS::Cinder::Volume, id: v}\n")
    ran = protectflow(["run", str(sim), "--operation", "verify", "--json"])
    assert ran.returncode == 0 and results.check("run", json.loads(ran.stdout)) == []
    shown = protectflow(["checkpoints", "show", checkpoint, "--bank", str(bank), "--json"])
    assert results.check("checkpoint-show", json.loads(shown.stdout)) == []
    assert CheckpointStore(Bank(str(bank))).get(checkpoint).status == "available"


def test_a_failed_protect_exits_1_with_json_and_the_bank_in_its_hint(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: bad\nresources:\n  - {type: OS::Cinder::Volume, id: v}\n"
                    "parameters:\n  OS::Cinder::Volume: {fail: [main]}\n")
    bank = str(tmp_path / "bank")
    done = protectflow(["protect", str(plan), "--bank", bank, "--json"])
    assert done.returncode == 1
    assert results.check("result", json.loads(done.stdout)) == []
    assert "protectflow checkpoints show" in done.stderr and f"--bank {bank}" in done.stderr
