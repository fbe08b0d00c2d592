"""The corpus of bad input (tests/data/bad/cases.yaml), run through the real CLI.

Every case must be refused with its exit code and a message naming the culprit,
without a traceback, without writing its output file, and with the bank it ran
against byte-for-byte unchanged. The cases run in parallel, each on its own
copy of a real bank, so that a case that writes to its bank is caught by name.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from protectflow.bank import Bank, CheckpointStore
from protectflow.errors import BankError
from tests.robustness.robust_helpers import DATA, protectflow, tree_digest

CORPUS = yaml.safe_load((DATA / "cases.yaml").read_text(encoding="utf-8"))
CASES: dict[str, dict[str, Any]] = {c["id"]: c for c in CORPUS["cases"]}
API_CASES: dict[str, dict[str, Any]] = {c["id"]: c for c in CORPUS["api_cases"]}


@attrs.frozen
class Outcome:
    args: list[str]
    done: subprocess.CompletedProcess[str]
    bank_before: str
    bank_after: str
    out: Path
    stderr_patterns: list[str]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _plant_record(bank_dir: Path, checkpoint: str, raw: bytes) -> None:
    """Seal a bad record under the bank's own key, as a writer with the key
    (a bug, an older release) could have written it: the corpus files are
    ``PFB1`` + kind + newline + body; a file without that header is bytes."""
    key = f"checkpoints/{checkpoint}/record"
    kind, body = (raw[4:5], raw[6:]) if raw[:4] == b"PFB1" else (b"b", raw)
    bank = Bank(bank_dir)
    bank.backend.write(key, bank.keyring.seal(key, kind, body))


def _run_case(case: dict[str, Any], root: Path, bank: Path, checkpoint: str,
              closed_port: int) -> Outcome:
    folder = root / case["id"]
    case_bank, tmp = folder / "bank", folder / "tmp"
    shutil.copytree(bank, case_bank)
    tmp.mkdir()
    if "record" in case:
        _plant_record(case_bank, checkpoint, (DATA / case["record"]).read_bytes())
    values = {"data": str(DATA), "bank": str(case_bank), "ckpt": checkpoint,
              "out": str(tmp / "out.json"), "tmp": str(tmp), "closed_port": str(closed_port)}
    args = [_fill(a, values) for a in case["args"]]
    before = tree_digest(case_bank)
    done = protectflow(args, bank=case_bank, cwd=tmp)
    return Outcome(args, done, before, tree_digest(case_bank), tmp / "out.json",
                   [_fill(p, values) for p in case["stderr"]])


@pytest.fixture(scope="module")
def outcomes(session_bank: tuple[Path, str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Every case, run once, in parallel (each is a ~0.5 s process start)."""
    bank, checkpoint = session_bank
    root = tmp_path_factory.mktemp("bad-input")
    port = _closed_port()
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        futures = {cid: pool.submit(_run_case, case, root, bank, checkpoint, port)
                   for cid, case in CASES.items()}
        yield {cid: f.result() for cid, f in futures.items()}


@pytest.mark.slow  # a hundred commands, each a process
@pytest.mark.parametrize("case_id", sorted(CASES))
def test_bad_input_is_refused(case_id: str, outcomes: dict[str, Outcome]) -> None:
    case, outcome = CASES[case_id], outcomes[case_id]
    stderr = outcome.done.stderr
    context = f"protectflow {' '.join(outcome.args)}\n--- stderr:\n{stderr}"
    assert "Traceback (most recent call last)" not in stderr, context
    assert outcome.done.returncode == case.get("exit", 2), context
    assert stderr.startswith("protectflow: error: ") or "validate" in outcome.args, context
    for pattern in outcome.stderr_patterns:
        assert re.search(pattern, stderr), f"no match for {pattern!r} in\n{context}"
    assert outcome.bank_after == outcome.bank_before, f"the bank changed\n{context}"
    assert not outcome.out.exists(), f"{outcome.out} was written\n{context}"
    leftovers = sorted(p.name for p in outcome.out.parent.iterdir())
    assert not [n for n in leftovers if ".tmp-" in n], leftovers


def test_corpus_is_complete() -> None:
    """Every file of the corpus is used by a case, and every case names one."""
    used = {Path(a.split("{data}/", 1)[1]).as_posix()
            for c in CASES.values() for a in c["args"] if "{data}/" in a}
    used |= {c["record"] for c in CASES.values() if "record" in c}
    files = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*")
             if p.is_file() and p.name != "cases.yaml"}
    assert files <= used, f"corpus files no case uses: {sorted(files - used)}"
    assert len(CASES) == len(CORPUS["cases"]), "two cases share an id"


def _api_call(bank: Bank, call: str, key: str) -> None:
    if call == "put":
        bank.update_object(key, b"x")
    elif call == "get":
        bank.get_object(key)
    elif call == "delete":
        bank.delete_object(key)
    elif call == "list":
        bank.list_objects(key)
    elif call == "checkpoint":
        CheckpointStore(bank).get(key)
    else:
        raise AssertionError(f"unknown call {call!r}")


@pytest.mark.parametrize("case_id", sorted(API_CASES))
def test_bad_bank_key_is_refused(case_id: str, session_bank: tuple[Path, str],
                                 tmp_path: Path) -> None:
    case = API_CASES[case_id]
    # A bank inside a folder of its own: a key that escaped would land beside it.
    shutil.copytree(session_bank[0], tmp_path / "inner" / "bank")
    before = tree_digest(tmp_path)
    with pytest.raises(BankError, match=case["error"]) as info:
        _api_call(Bank(tmp_path / "inner" / "bank"), case["call"], case["key"])
    assert repr(case["key"]) in str(info.value) or not case["key"]
    assert tree_digest(tmp_path) == before
