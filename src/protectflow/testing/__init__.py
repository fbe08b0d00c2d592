"""The conformance kit: proves a protection plugin honours the contract.

A plugin's test suite turns it on with a few lines::

    pytest_plugins = ["protectflow.testing"]

    from protectflow.testing import PluginConformance, PluginSubject

    class TestMyPlugin(PluginConformance):
        @pytest.fixture
        def plugin_subject(self):
            return PluginSubject(plugin="mine", make_resource=..., compare=...,
                                 restore_parameters=lambda folder: {"target": str(folder)})

and pytest runs every check on the plugin: its schemas are valid and the
sample parameters pass them; every hook of every operation is idempotent;
``on_failure`` is safe twice and with nothing to undo; protect -> restore
gives back an equal resource, and so does a protect killed at each hook
boundary and resumed -- on the serial, threads and dask executors (dask is
skipped, saying why, when it is not installed). A failure names the hook and
what broke. The checks are plain functions too (``check_*``), for a suite
that is not pytest's.

Only the library's public API is used: the operations, the registry, and
the plugin contract (:mod:`protectflow.plugins.contract`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from protectflow.executors import get_executor
from protectflow.executors.base import Executor
from protectflow.testing._checks import check_idempotent_hooks, check_on_failure, check_schemas
from protectflow.testing._runs import FAULTS, check_resume_after_kill, check_round_trip
from protectflow.testing._subject import ConformanceFailure, PluginSubject

__all__ = [
    "ConformanceFailure",
    "KitExecutor",
    "PluginConformance",
    "PluginSubject",
    "check_idempotent_hooks",
    "check_on_failure",
    "check_resume_after_kill",
    "check_round_trip",
    "check_schemas",
]

EXECUTORS = ("serial", "threads", "dask")


@attrs.frozen
class KitExecutor:
    """An executor the kit runs operations on, and the one a killed child
    process runs (a dask cluster is not worth starting to be killed)."""

    name: str
    executor: str | Executor
    child: str


@pytest.fixture(scope="session")
def conformance_dask_client() -> Iterator[Any]:
    """One in-process dask cluster for the whole session."""
    try:
        from distributed import Client, LocalCluster  # optional: only for the dask runs
    except ImportError:
        pytest.skip("the dask executor needs 'distributed': pip install 'protectflow[dask]'")
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1, threads_per_worker=4, processes=False, dashboard_address=":0")
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client


@pytest.fixture(params=EXECUTORS)
def conformance_executor(request: pytest.FixtureRequest) -> KitExecutor:
    """Each executor in turn."""
    name = request.param
    if name != "dask":
        return KitExecutor(name, name, name)
    client = request.getfixturevalue("conformance_dask_client")
    return KitExecutor(name, get_executor("dask", client=client), "threads")


class PluginConformance:
    """The kit's tests; subclass it as ``Test...`` and give the
    ``plugin_subject`` fixture."""

    @pytest.fixture
    def plugin_subject(self) -> PluginSubject:
        raise NotImplementedError("define a plugin_subject fixture returning a PluginSubject")

    def test_schemas_are_valid_and_take_the_sample_parameters(
            self, plugin_subject: PluginSubject, tmp_path: Path) -> None:
        check_schemas(plugin_subject, tmp_path)

    def test_every_hook_is_idempotent(self, plugin_subject: PluginSubject,
                                      tmp_path: Path) -> None:
        check_idempotent_hooks(plugin_subject, tmp_path)

    def test_on_failure_is_safe_twice_and_with_nothing_to_undo(
            self, plugin_subject: PluginSubject, tmp_path: Path) -> None:
        check_on_failure(plugin_subject, tmp_path)

    def test_protect_then_restore_gives_the_resource_back(
            self, plugin_subject: PluginSubject, tmp_path: Path,
            conformance_executor: KitExecutor) -> None:
        check_round_trip(plugin_subject, tmp_path, conformance_executor.executor)

    @pytest.mark.parametrize("fault", FAULTS)
    def test_a_protect_killed_at_each_hook_boundary_resumes_to_the_same_data(
            self, plugin_subject: PluginSubject, tmp_path: Path,
            conformance_executor: KitExecutor, fault: str) -> None:
        check_resume_after_kill(plugin_subject, tmp_path, conformance_executor.executor,
                                fault=fault, child_executor=conformance_executor.child)
