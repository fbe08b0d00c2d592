"""The checks that run whole operations through the library, on an
executor: protect -> restore, and a protect killed at each hook boundary and
resumed.

A killed protect runs in a child process with ``PROTECTFLOW_FAULTS`` (the
project's fault injection), which SIGKILLs it right after a hook's end is
journaled (``kill-after-hooks``) or right before (``kill-before-journal``:
the hook ran, but the resumed run does not know it). The resume runs here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from protectflow import operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.compiler import compile_plan, load_plan
from protectflow.dag.model import Resource
from protectflow.executors.base import Executor
from protectflow.operations import OperationResult
from protectflow.plugins.registry import using_registry
from protectflow.testing._subject import ConformanceFailure, PluginSubject

__all__ = ["FAULTS", "check_resume_after_kill", "check_round_trip"]

#: The fault injections the kill check uses.
FAULTS = ("kill-after-hooks", "kill-before-journal")

_CHILD = """
import sys
from protectflow import operations
from protectflow.compiler import load_plan
from protectflow.plugins.registry import get_registry, using_registry
plan, bank, spec, executor = sys.argv[1:5]
options = {"registry": spec} if spec else {}
with using_registry(get_registry(spec or None)):
    operations.protect(load_plan(plan), bank=bank, executor=executor, **options)
"""


@contextmanager
def _plugins(subject: PluginSubject, resource: Resource) -> Iterator[dict[str, Any]]:
    """The subject's registry as this process's default, the subject's
    plugin chosen for the resource's type (restore and resume compile the
    checkpoint's graph with the default choice), and the options that name
    the registry to executors in other processes (they look plugins up by
    name only)."""
    registry = subject.get_registry().with_choices({resource.type: subject.plugin})
    with using_registry(registry):
        yield {"registry": subject.registry} if subject.registry else {}


def _write_plan(subject: PluginSubject, folder: Path) -> tuple[Resource, Path]:
    resource = subject.make_resource(folder / "source")
    path = folder / "plan.json"
    path.write_text(json.dumps({"name": "conformance", "resources": [resource.to_json()],
                                "provider": {"plugins": {resource.type: subject.plugin}},
                                "parameters": {resource.key: subject.protect_parameters}}))
    return resource, path


def _failure(result: OperationResult) -> str:
    failed = result.report.failed()
    if not failed:
        return f"the run ended {result.report.state}"
    first = failed[0]
    return f"{first.node} {first.state}: {first.error.message if first.error else ''}"


def _restore_and_compare(subject: PluginSubject, checkpoint_id: str, *, bank: Path,
                         folder: Path, executor: str | Executor, options: dict[str, Any],
                         resource: Resource, what: str) -> None:
    restored = operations.restore(
        checkpoint_id, bank=bank, executor=executor,
        parameters={resource.key: subject.restore_parameters(folder)}, **options)
    if not restored.ok:
        raise ConformanceFailure(f"{subject.plugin}: restore after {what} failed: "
                                 f"{_failure(restored)}")
    if resource.key not in restored.new_resources:
        raise ConformanceFailure(
            f"{subject.plugin}: restore after {what} published nothing for {resource.key} in "
            "new_resources, so there is nothing to compare: a restore hook should set "
            "new_resources[resource.key] to the restored resource")
    try:
        diff = subject.compare(resource, restored.new_resources[resource.key])
    except AssertionError as err:
        diff = str(err) or "the comparator failed"
    if diff:
        raise ConformanceFailure(f"{subject.plugin}: restore after {what} did not give back "
                                 f"the resource {resource.key}: {diff}")


def check_round_trip(subject: PluginSubject, folder: Path, executor: str | Executor) -> None:
    """Protect the sample resource, restore it, and compare.

    Raises
    ------
    ConformanceFailure
        When either operation fails or the restored resource differs.
    """
    resource, plan = _write_plan(subject, folder)
    name = executor if isinstance(executor, str) else executor.name
    with _plugins(subject, resource) as options:
        result = operations.protect(load_plan(plan), bank=folder / "bank", executor=executor,
                                    **options)
        if not result.ok:
            raise ConformanceFailure(f"{subject.plugin}: protect on {name} failed: "
                                     f"{_failure(result)}")
        _restore_and_compare(subject, result.checkpoint.id, bank=folder / "bank",
                             folder=folder / "restored", executor=executor, options=options,
                             resource=resource, what=f"a protect on {name}")


def check_resume_after_kill(subject: PluginSubject, folder: Path, executor: str | Executor, *,
                            fault: str = FAULTS[0], child_executor: str | None = None) -> None:
    """Kill a protect at each hook boundary (``fault`` at 1, 2, ... hook
    ends), resume it on ``executor``, restore and compare.

    ``child_executor`` runs the killed protect (default: ``executor``'s name).

    Raises
    ------
    ConformanceFailure
        Naming the boundary and what went wrong.
    """
    resource, plan = _write_plan(subject, folder)
    child = child_executor or (executor if isinstance(executor, str) else executor.name)
    with _plugins(subject, resource) as options:
        hooks = [n.hook for n in compile_plan(load_plan(plan), "protect").nodes]
        for n, hook in enumerate(hooks, start=1):
            bank = folder / f"bank-{n}"
            moment = (f"killed right after on_{hook} ended" if fault == "kill-after-hooks"
                      else f"killed after on_{hook} ran, before its end was recorded")
            what = f"a protect {moment} and resumed on {child}"
            checkpoint_id = _killed_protect(plan, bank, subject, child, f"{fault}={n}")
            if checkpoint_id is None:
                continue  # died before its checkpoint existed: nothing to resume
            resumed = operations.resume(checkpoint_id, bank=bank, executor=executor, **options)
            if not resumed.ok:
                raise ConformanceFailure(f"{subject.plugin}: {what}: the resumed protect "
                                         f"failed: {_failure(resumed)}")
            _restore_and_compare(subject, checkpoint_id, bank=bank, folder=folder / f"out-{n}",
                                 executor=executor, options=options, resource=resource,
                                 what=what)


def _killed_protect(plan: Path, bank: Path, subject: PluginSubject, executor: str,
                    faults: str) -> str | None:
    env = {**os.environ, "PROTECTFLOW_FAULTS": faults,
           # the child imports the subject's registry by name, as the tests do
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(plan), str(bank), subject.registry or "", executor],
        env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        raise ConformanceFailure(f"the fault {faults} never fired: the protect ended before "
                                 "it (a kit error, not the plugin's)")
    if proc.returncode != -9:
        raise ConformanceFailure(f"{subject.plugin}: the protect to be killed ({faults}) "
                                 f"failed by itself (exit {proc.returncode}): "
                                 f"{proc.stderr.strip()[-2000:]}")
    store = CheckpointStore(Bank(str(bank)))
    found = store.list(limit=None) if os.path.isdir(bank) else []
    return found[0].id if found else None
