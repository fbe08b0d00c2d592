"""The kit fails deliberately broken plugins, naming the hook and what broke."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from notes_plugins import SPEC, compare_notes, make_note

from protectflow.testing import (
    ConformanceFailure,
    PluginSubject,
    check_idempotent_hooks,
    check_on_failure,
    check_resume_after_kill,
    check_round_trip,
    check_schemas,
)

pytest_plugins = ["pytester"]


def subject(plugin: str) -> PluginSubject:
    return PluginSubject(plugin=plugin, make_resource=make_note, compare=compare_notes,
                         restore_parameters=lambda folder: {"target": str(folder)},
                         registry=SPEC)


@pytest.mark.slow  # every check of the kit, kills included
def test_a_sound_plugin_passes_every_check(tmp_path: Path) -> None:
    s = subject("notes")
    check_schemas(s, tmp_path / "schemas")
    check_idempotent_hooks(s, tmp_path / "idempotent")
    check_on_failure(s, tmp_path / "failure")
    check_round_trip(s, tmp_path / "round-trip", "threads")
    check_resume_after_kill(s, tmp_path / "kill", "serial")


def test_a_hook_that_is_not_idempotent_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure) as info:
        check_idempotent_hooks(subject("not-idempotent"), tmp_path)
    assert str(info.value).startswith(
        "not-idempotent: protect on_prepare_finish of kit::Note#note is not idempotent: run "
        "twice in a row, the second run changed the bank (added: ")


def test_a_restore_that_loses_data_is_caught(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match=r"loses-data: restore after a protect on "
                       r"serial did not give back the resource kit::Note#note: 180 chars "
                       r"protected, 90 restored"):
        check_round_trip(subject("loses-data"), tmp_path, "serial")


def test_an_on_failure_that_crashes_when_called_twice_is_caught(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match=r"crashing-clean-up: on_failure of "
                       r"kit::Note#note with nothing to undo raised on its second call .*"
                       r"FileNotFoundError"):
        check_on_failure(subject("crashing-clean-up"), tmp_path)


def test_sample_parameters_that_fail_the_schema_are_caught(tmp_path: Path) -> None:
    bad = PluginSubject(plugin="notes", make_resource=make_note, compare=compare_notes,
                        registry=SPEC)
    with pytest.raises(ConformanceFailure, match=r"the sample parameters \{\} fail the "
                       r"restore schema of kit::Note: 'target' is a required property"):
        check_schemas(bad, tmp_path)


@pytest.mark.slow  # pytest in a process of its own
def test_the_pytest_plugin_reports_broken_plugins_by_hook(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH", "")) if p))
    pytester.makepyfile(test_broken="""
        import pytest
        from notes_plugins import SPEC, compare_notes, make_note
        from protectflow.testing import PluginConformance, PluginSubject

        pytest_plugins = ["protectflow.testing"]

        class TestNotIdempotent(PluginConformance):
            @pytest.fixture
            def plugin_subject(self):
                return PluginSubject(plugin="not-idempotent", make_resource=make_note,
                                     compare=compare_notes, registry=SPEC,
                                     restore_parameters=lambda f: {"target": str(f)})
    """)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", "hook_is_idempotent or schemas or on_failure",
        f"--rootdir={pytester.path}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*protect on_prepare_finish of kit::Note#note is not "
                                 "idempotent*"])
