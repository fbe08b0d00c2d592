"""Bank URLs are checked where they enter: a scheme with one slash, an unknown
scheme and a missing file-system package are errors that say how to fix them;
a read command's bank must exist."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import pytest

from protectflow._urls import check_bank_url, require_backend
from protectflow.bank import Bank, CheckpointStore, open_existing_bank
from protectflow.cli.outcome import exit_code
from protectflow.compiler import load_plan
from protectflow.errors import BankError, BankNotFoundError, MissingDependencyError, PlanError


@pytest.mark.parametrize(("url", "right"), [
    ("s3:/bucket/x", "s3://bucket/x"),
    ("s3:bucket/x", "s3://bucket/x"),
    ("gs:/b", "gs://b"),
    ("file:/tmp/bank", "file:///tmp/bank"),
])
def test_a_scheme_with_one_slash_shows_the_right_form(url: str, right: str,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BankError, match=f"write {right};"):
        Bank(url)
    assert list(tmp_path.iterdir()) == []  # no folder called 's3:'


@pytest.mark.parametrize(("url", "meant"), [
    ("file://tmp/x", "file:///tmp/x"), ("FILE://tmp", "file:///tmp"),
    ("s3//bucket/x", "s3://bucket/x"), ("memory//b", "memory://b"),
])
def test_two_slashes_without_a_colon_or_a_path_say_what_was_meant(
        url: str, meant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BankError, match=f"did you mean {re.escape(meant)}"):
        Bank(url)
    assert list(tmp_path.iterdir()) == []  # no folder 'tmp' or 's3' made here


def test_a_folder_with_double_slashes_is_still_a_folder() -> None:
    for url in ("backups//x", "./s3//bucket", "file:///tmp/x"):
        assert check_bank_url(url) == url


def test_a_local_folder_with_a_colon_is_reached_through_dot_slash(tmp_path: Path) -> None:
    with pytest.raises(BankError, match=r"write \./odd:name"):
        check_bank_url("odd:name")
    bank = Bank(str(tmp_path / "odd:name"))
    bank.update_object("k", b"v")
    assert (tmp_path / "odd:name" / "k").is_file()


def test_an_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(BankError) as info:
        Bank("s4://bucket/x")
    message = str(info.value)
    assert "unknown scheme 's4'" in message
    assert "did you mean s3" in message
    for scheme in ("file", "memory", "s3", "gs"):
        assert scheme in message


@pytest.mark.parametrize("url", ["memory://x", "file:///tmp/x", "/abs/path", "rel/path", "C:/x",
                                 "s3://bucket/x"])
def test_good_urls_pass(url: str) -> None:
    assert check_bank_url(url) == url


def test_an_empty_url_is_refused() -> None:
    with pytest.raises(BankError, match="empty"):
        check_bank_url("")


def test_a_missing_s3fs_says_pip_install_and_never_suggests_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "s3fs" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingDependencyError) as info:
        CheckpointStore(Bank("s3://bucket/bank"))
    assert "pip install s3fs" in str(info.value)
    assert "memory" not in str(info.value)


def test_require_backend_accepts_installed_and_local() -> None:
    require_backend("memory://x")
    require_backend("/tmp/x")


def test_open_errors_do_not_suggest_memory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BankError) as info:
        Bank(tmp_path / "file").backend  # noqa: B018
    assert "memory" not in str(info.value)


def test_a_bank_that_is_not_there_is_an_error_for_readers(tmp_path: Path) -> None:
    with pytest.raises(BankNotFoundError, match="there is no bank at") as info:
        open_existing_bank(tmp_path / "no" / "such")
    assert exit_code(info.value) == 2
    assert not (tmp_path / "no").exists()


def test_an_existing_bank_opens_for_readers(tmp_path: Path) -> None:
    Bank(tmp_path / "b").update_object("k", b"v")
    assert open_existing_bank(tmp_path / "b").get_object("k") == b"v"
    (tmp_path / "empty").mkdir()
    assert open_existing_bank(tmp_path / "empty").list_objects() == []


def test_an_existing_memory_bank_opens_and_a_missing_one_does_not() -> None:
    Bank("memory://s14-exists").update_object("k", b"v")
    try:
        assert open_existing_bank("memory://s14-exists").get_object("k") == b"v"
        with pytest.raises(BankError, match="no bank"):
            open_existing_bank("memory://s14-never-written")
    finally:
        Bank("memory://s14-exists").backend.fs.rm("/s14-exists", recursive=True)  # type: ignore[union-attr]


def _plan(folder: Path, bank: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.yaml"
    path.write_text(f"name: p\nbank: {bank!r}\nresources:\n  - {{type: sim.server, id: s1}}\n")
    return path


def test_a_plans_relative_bank_resolves_against_its_folder(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = _plan(tmp_path / "plans", "./banks/one")
    monkeypatch.chdir(tmp_path)
    assert load_plan(path).bank == str(tmp_path / "plans" / "banks" / "one")
    assert load_plan(os.path.relpath(path)).bank == str(tmp_path / "plans" / "banks" / "one")


@pytest.mark.parametrize("bank", ["/abs/bank", "s3://bucket/x", "memory://m"])
def test_absolute_and_remote_banks_stay_as_written(tmp_path: Path, bank: str) -> None:
    assert load_plan(_plan(tmp_path, bank)).bank == bank


def test_a_plans_malformed_bank_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="bank: bad bank URL 's3:/bucket/x'"):
        load_plan(_plan(tmp_path, "s3:/bucket/x"))

