"""The checks that call a plugin's methods directly: its schemas, each hook
run twice in a row, and ``on_failure``.

Here the kit is the framework: it calls every hook through
:func:`protectflow.plugins.contract.call_hook`, as the executors do, on a
checkpoint of a bank in a folder of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.dag.model import Resource
from protectflow.dag.outcomes import STATS_KEY
from protectflow.dag.plan import Plan, PlanResource
from protectflow.dag.resource_graph import from_edges
from protectflow.plugins.contract import (
    call_hook,
    get_operation,
    hook_extras,
    implemented_hooks,
    parameters_schema,
)
from protectflow.testing._subject import ConformanceFailure, PluginSubject

__all__ = ["check_idempotent_hooks", "check_on_failure", "check_schemas", "new_checkpoint"]

#: The order the idempotency check runs the operations in, each on what the
#: one before left (delete last).
ORDER = ("protect", "verify", "restore", "copy", "delete")


class _Log:
    """A stand-in for the run's operation log: messages are dropped."""

    def log(self, level: str, message: str) -> None:
        """Drop ``message``."""

    debug = info = warning = error = lambda self, message: None


def new_checkpoint(folder: Path, resource: Resource) -> Checkpoint:
    """A checkpoint of ``resource`` in a new bank at ``folder``."""
    store = CheckpointStore(Bank(str(folder)))
    plan = Plan("conformance", (PlanResource(resource),))
    return store.create(plan, from_edges([resource], []), "conformance", "protectflow.testing")


def check_schemas(subject: PluginSubject, folder: Path) -> None:
    """Every schema of every type is valid JSON Schema, and the sample
    protect, restore and verify parameters pass theirs.

    Raises
    ------
    ConformanceFailure
        Naming the schema and what is wrong.
    """
    plugin = subject.get_plugin()
    resource = subject.make_resource(folder)
    samples = {"protect": subject.protect_parameters,
               "restore": subject.restore_parameters(folder / "restored"),
               "verify": subject.verify_parameters}
    for operation, sample in samples.items():
        _check_one(parameters_schema(plugin, operation, resource.type), sample,
                   f"the {operation} schema of {resource.type}")
    getter = getattr(plugin, "get_saved_info_schema", None)
    if getter is not None:
        _check_one(getter(resource.type), None, f"the saved info schema of {resource.type}")


def _check_one(schema: Any, sample: Any, what: str) -> None:
    if not isinstance(schema, dict):
        raise ConformanceFailure(f"{what} is a {type(schema).__name__}, not a JSON Schema object")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as err:
        raise ConformanceFailure(f"{what} is not valid JSON Schema: {err.message}") from err
    if sample is not None:
        errors = sorted(e.message for e in cls(schema).iter_errors(sample))
        if errors:
            raise ConformanceFailure(f"the sample parameters {sample!r} fail {what}: "
                                     + "; ".join(errors))


def check_idempotent_hooks(subject: PluginSubject, folder: Path) -> None:
    """Run every hook of every operation twice in a row: the second run must
    succeed, leave the banks as the first left them, and give the same
    result (fields both results have, timing and ``volatile`` ones aside).

    Raises
    ------
    ConformanceFailure
        Naming the operation, the hook and what differed.
    """
    plugin = subject.get_plugin()
    resource = subject.make_resource(folder / "source")
    checkpoint = new_checkpoint(folder / "bank", resource)
    target = new_checkpoint(folder / "copy-bank", resource)
    params = {"protect": subject.protect_parameters, "verify": subject.verify_parameters,
              "restore": subject.restore_parameters(folder / "restored")}
    for operation in ORDER:
        op = get_operation(plugin, operation, resource)
        new_resources: dict[str, Any] = {}
        for hook in implemented_hooks(op):
            where = f"{subject.plugin}: {operation} on_{hook} of {resource.key}"
            outputs, states, published = [], [], []
            for call in ("first", "second"):
                published.append(dict(new_resources))
                extras, _ = hook_extras(operation, operation_log=_Log(), attempt=1,
                                        new_resources=published[-1],
                                        target_checkpoint=target if operation == "copy" else None)
                try:
                    outputs.append(call_hook(op, hook, checkpoint=checkpoint, resource=resource,
                                             context=None, parameters=params.get(operation, {}),
                                             **extras))
                except Exception as err:
                    raise ConformanceFailure(f"{where} raised on its {call} call"
                                             + (" in a row (hooks must be idempotent)"
                                                if call == "second" else "") + ": "
                                             f"{type(err).__name__}: {err}") from err
                states.append(bank_state([checkpoint.bank, target.bank], subject.ignored()))
            _same(where, "the bank", states[0], states[1])
            _same_output(where, outputs[0], outputs[1], subject.ignored())
            if published[0] != published[1]:
                raise ConformanceFailure(f"{where} is not idempotent: run twice in a row, it "
                                         f"published {published[0]!r}, then {published[1]!r} "
                                         "in new_resources")
            new_resources = published[1]


def bank_state(banks: list[Bank], ignored: frozenset[str]) -> dict[str, Any]:
    """Every object of ``banks``, JSON values without ``ignored`` fields."""
    state: dict[str, Any] = {}
    for index, bank in enumerate(banks):
        for key in bank.iter_objects(""):
            state[f"{index}:{key}"] = _without(bank.get_object(key), ignored)
    return state


def _without(value: Any, ignored: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, ignored) for k, v in value.items() if k not in ignored}
    if isinstance(value, list):
        return [_without(v, ignored) for v in value]
    return value


def _same(where: str, what: str, first: dict[str, Any], second: dict[str, Any]) -> None:
    added = sorted(set(second) - set(first))
    removed = sorted(set(first) - set(second))
    changed = sorted(k for k in set(first) & set(second) if first[k] != second[k])
    if added or removed or changed:
        parts = [f"{name}: {', '.join(k.split(':', 1)[1] for k in keys[:5])}"
                 for name, keys in (("added", added), ("removed", removed),
                                    ("changed", changed)) if keys]
        raise ConformanceFailure(f"{where} is not idempotent: run twice in a row, the second "
                                 f"run changed {what} ({'; '.join(parts)})")


def _same_output(where: str, first: Any, second: Any, ignored: frozenset[str]) -> None:
    if isinstance(first, dict) and isinstance(second, dict):
        # A hook's stats count the work that call did (a second call finds the
        # files unmodified): they are no part of its result.
        differ = sorted(k for k in set(first) & set(second)
                        if k not in ignored and k != STATS_KEY and first[k] != second[k])
        if differ:
            shown = {k: (first[k], second[k]) for k in differ[:5]}
            raise ConformanceFailure(f"{where} is not idempotent: run twice in a row, it "
                                     f"returned other values for {', '.join(differ)}: "
                                     f"{json.dumps(shown, default=str)} (first, second)")
    elif first != second and not (isinstance(first, dict) or isinstance(second, dict)):
        raise ConformanceFailure(f"{where} is not idempotent: it returned {first!r}, then "
                                 f"{second!r}")


def check_on_failure(subject: PluginSubject, folder: Path) -> None:
    """``on_failure`` succeeds with nothing to undo, after a protect's
    prepare hooks, and each time when called twice.

    Raises
    ------
    ConformanceFailure
        Naming the case and the error.
    """
    plugin = subject.get_plugin()
    resource = subject.make_resource(folder / "source")
    checkpoint = new_checkpoint(folder / "bank", resource)
    where = f"{subject.plugin}: on_failure of {resource.key}"
    _fail_twice(plugin, checkpoint, resource, subject, f"{where} with nothing to undo")
    op = get_operation(plugin, "protect", resource)
    for hook in [h for h in implemented_hooks(op) if h.startswith("prepare")]:
        extras, _ = hook_extras("protect", operation_log=_Log(), attempt=1)
        call_hook(op, hook, checkpoint=checkpoint, resource=resource, context=None,
                  parameters=subject.protect_parameters, **extras)
    _fail_twice(plugin, checkpoint, resource, subject, f"{where} after the prepare hooks")


def _fail_twice(plugin: Any, checkpoint: Checkpoint, resource: Resource,
                subject: PluginSubject, where: str) -> None:
    for call in ("first", "second"):
        try:
            call_hook(plugin, "failure", checkpoint=checkpoint, resource=resource, context=None,
                      parameters=subject.protect_parameters)
        except Exception as err:
            raise ConformanceFailure(f"{where} raised on its {call} call (it must be safe "
                                     f"to call again, and with nothing to undo): "
                                     f"{type(err).__name__}: {err}") from err
