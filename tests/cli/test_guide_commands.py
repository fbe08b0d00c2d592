"""The commands with plugins written to the guide alone: every operation of
a plain plugin, a restore's status updates in ``checkpoints show``, a
resource's saved info (``checkpoints show ID --resource``), what a
protectable finds (``protectables``), and ``plugins`` marking a type several
plugins claim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli, operations
from protectflow.cli import results
from protectflow.plugins import Registry
from protectflow.plugins.registry import using_registry
from tests.operations import guide_plugins
from tests.operations.guide_plugins import NOTE, plan_json

N1 = f"{NOTE}#n1"


@pytest.fixture(autouse=True)
def plugins() -> Iterator[Registry]:
    with using_registry(guide_plugins.registry()) as registry:
        yield registry


def _plan_file(tmp_path: Path, chosen: str = "notes-a") -> str:
    path = tmp_path / "notes.json"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan_json({"plugins": {NOTE: chosen}})))
    return str(path)


def _protect(tmp_path: Path, chosen: str = "notes-a") -> tuple[str, str]:
    """Protect through the command; the bank and the checkpoint's id."""
    bank = str(tmp_path / "bank")
    assert cli.main(["protect", _plan_file(tmp_path, chosen), "--bank", bank,
                     "--executor", "serial"]) == 0
    (checkpoint,) = operations.open_store(bank).list()
    return bank, checkpoint.id


def _json(capsys: pytest.CaptureFixture[str], kind: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert results.check(kind, document) == []
    return document


def test_a_plain_plugin_runs_every_command(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bank, cid = _protect(tmp_path)
    for command in (["restore", cid], ["verify", cid], ["delete", cid]):
        assert cli.main([*command, "--bank", bank, "--executor", "serial"]) == 0, command
    checkpoint = operations.open_store(bank).get(cid)
    assert checkpoint.status == "deleted"
    restore = next(run for run in checkpoint.list_runs() if run.operation == "restore")
    assert {v["text"] for v in restore.new_resources.values()} == {"hello", "world!"}


def test_a_restores_status_updates_show_in_checkpoints_show(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank, cid = _protect(tmp_path)
    assert cli.main(["restore", cid, "--bank", bank]) == 0
    capsys.readouterr()
    assert cli.main(["checkpoints", "show", cid, "--bank", bank]) == 0
    out = capsys.readouterr().out
    assert f"{N1}  restored  (by a)" in out
    assert cli.main(["checkpoints", "show", cid, "--bank", bank, "--json"]) == 0
    (run,) = _json(capsys, "checkpoint-show")["runs"]
    assert run["operation"] == "restore"
    assert run["status_updates"][N1]["status"] == "restored"
    assert run["status_updates"][N1]["reason"] == "by a"


def test_checkpoints_show_a_resources_saved_info(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bank, cid = _protect(tmp_path, "notes-b")
    capsys.readouterr()
    assert cli.main(["checkpoints", "show", cid, "--bank", bank, "--resource", N1]) == 0
    out = capsys.readouterr().out
    assert "plugin notes-b" in out and '"chars": 5' in out
    assert cli.main(["checkpoints", "show", cid, "--bank", bank, "--resource", N1,
                     "--json"]) == 0
    document = _json(capsys, "saved-info")
    assert (document["checkpoint"], document["resource"], document["plugin"]) == (
        cid, N1, "notes-b")
    assert document["info"] == {"chars": 5, "by": "b"}


def test_saved_info_of_an_unknown_resource_or_one_breaking_its_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank, cid = _protect(tmp_path)
    capsys.readouterr()
    assert cli.main(["checkpoints", "show", cid, "--bank", bank, "--resource",
                     f"{NOTE}#n3"]) == 2
    assert f"did you mean '{NOTE}#n" in capsys.readouterr().err
    bad_bank, bad = _protect(tmp_path / "bad", "notes-bad")
    capsys.readouterr()
    assert cli.main(["checkpoints", "show", bad, "--bank", bad_bank, "--resource", N1]) == 2
    err = capsys.readouterr().err
    assert "'notes-bad'" in err and "get_saved_info_schema" in err and "chars" in err


def test_protectables_lists_and_shows(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    parameters = tmp_path / "shelf.yaml"
    parameters.write_text("notes: {b: second, a: first}\n")
    assert cli.main(["protectables", NOTE, "--parameters", str(parameters)]) == 0
    out = capsys.readouterr().out
    assert "note a" in out and "note b" in out and "discover" in out
    assert cli.main(["protectables", NOTE, "--parameters", str(parameters), "--json"]) == 0
    document = _json(capsys, "protectables")
    assert [r["id"] for r in document["resources"]] == ["a", "b"]  # sorted
    assert document["resources"][0]["extra_info"] == {"text": "first"}
    assert cli.main(["protectables", NOTE, "b", "--parameters", str(parameters),
                     "--json"]) == 0
    assert [r["id"] for r in _json(capsys, "protectables")["resources"]] == ["b"]


def test_protectables_refuses_what_it_cannot_find(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["protectables", NOTE, "zz"]) == 2
    assert "no resource 'zz'" in capsys.readouterr().err
    assert cli.main(["protectables", "Guide::Nope"]) == 2
    assert f"did you mean '{NOTE}'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    assert cli.main(["protectables", NOTE, "--parameters", str(bad)]) == 2
    assert "must be a mapping" in capsys.readouterr().err


def test_plugins_marks_a_type_several_plugins_claim(
        plugins: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"{NOTE} (!)" in out
    assert "'notes-a', 'notes-b' and 'notes-bad' all claim" in out and "provider:" in out
    document = results.plugins_result(plugins)
    assert results.check("plugins", document) == []
    assert document["conflicts"] == {NOTE: ["notes-a", "notes-b", "notes-bad"]}
    # Plain plugins (no get_parameters_schema) are described through the contract.
    assert document["plugins"]["notes-a"]["schemas"][NOTE]["protect"]["properties"] == {
        "tag": {"type": "string"}}
    assert cli.main(["plugins", "--json"]) == 0
    assert NOTE in json.loads(capsys.readouterr().out)["plugins"]["notes-b"]["resource_types"]
