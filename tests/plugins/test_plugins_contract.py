"""The plugin contract: hooks called by keyword, the framework's defaults,
and Karbor's extras."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from protectflow.dag import HOOKS, Resource
from protectflow.errors import PluginError
from protectflow.plugins import Operation
from protectflow.plugins.contract import (
    OperationSettings,
    StatusRecorder,
    call_hook,
    get_operation,
    hook_extras,
    implemented_hooks,
    operation_settings,
    parameters_schema,
    supported_types,
)

R = Resource("T", "1")
ARGS = {"checkpoint": "the-checkpoint", "resource": R, "context": "the-context",
        "parameters": {"p": 1}}


class Shuffled:
    """Declares the guide's arguments in another order, and no **kwargs."""

    def on_main(self, parameters: Any, context: Any, resource: Any, checkpoint: Any) -> Any:
        return {"checkpoint": checkpoint, "resource": resource, "context": context,
                "parameters": parameters}


def test_hooks_are_called_by_keyword_whatever_their_parameter_order() -> None:
    assert call_hook(Shuffled(), "main", **ARGS, attempt=1) == ARGS


def test_only_the_extras_a_hook_names_are_passed() -> None:
    class Picky:
        def on_main(self, checkpoint: Any, resource: Any, context: Any, parameters: Any,
                    attempt: int) -> Any:
            return attempt

    assert call_hook(Picky(), "main", **ARGS, attempt=3, restore=StatusRecorder("restore"),
                     new_resources={}) == 3


def test_a_hook_with_kwargs_gets_every_extra() -> None:
    class Greedy:
        def on_complete(self, checkpoint: Any, resource: Any, context: Any,
                        parameters: Any, **kwargs: Any) -> Any:
            return sorted(kwargs)

    assert call_hook(Greedy(), "complete", **ARGS, attempt=1, new_resources={}) == [
        "attempt", "new_resources"]


def test_positional_only_hooks_get_the_guide_order() -> None:
    class Old:
        def on_main(self, checkpoint: Any, resource: Any, /, **kwargs: Any) -> Any:
            return checkpoint, resource, sorted(kwargs)

    assert call_hook(Old(), "main", **ARGS) == ("the-checkpoint", R, ["context", "parameters"])


def test_a_missing_hook_is_a_no_op() -> None:
    assert call_hook(object(), "prepare_begin", **ARGS) is None
    assert call_hook(object(), "failure", **ARGS) is None


def test_a_hook_requiring_an_unknown_parameter_is_a_plugin_error_naming_it() -> None:
    class Odd:
        def on_main(self, checkpoint: Any, resource: Any, context: Any, parameters: Any,
                    bucket: str) -> None:
            raise AssertionError("not called")

    with pytest.raises(PluginError, match=r"Odd\.on_main requires a parameter 'bucket'"):
        call_hook(Odd(), "main", **ARGS)


def test_a_hook_that_is_not_callable_is_a_plugin_error() -> None:
    class Broken:
        on_main = 3

    with pytest.raises(PluginError, match="not a method"):
        call_hook(Broken(), "main", **ARGS)


def test_the_hooks_own_errors_propagate() -> None:
    class Fails:
        def on_main(self, **kwargs: Any) -> None:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        call_hook(Fails(), "main", **ARGS)


def test_signatures_are_read_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    class Counted:
        def on_main(self, checkpoint: Any, resource: Any, context: Any,
                    parameters: Any) -> Any:
            return resource

    calls = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda f: calls.append(f) or real(f))
    for _ in range(3):
        assert call_hook(Counted(), "main", **ARGS) is R
    assert len(calls) == 1


def test_settings_default_for_an_object_that_sets_none() -> None:
    assert operation_settings(object()) == OperationSettings(0, 0.1, None, False)


def test_settings_are_read_from_the_operation() -> None:
    class Patient:
        retries = 2
        retry_delay = 0.5
        timeout = 30
        atomic_prepare = True

    assert operation_settings(Patient()) == OperationSettings(2, 0.5, 30.0, True)


@pytest.mark.parametrize("field, value", [("retries", -1), ("timeout", "soon")])
def test_bad_settings_are_plugin_errors(field: str, value: Any) -> None:
    op = type("Op", (), {field: value})()
    with pytest.raises(PluginError, match=field if field == "retries" else "numbers"):
        operation_settings(op)


def test_implemented_hooks_of_a_plain_object_and_of_an_operation_subclass() -> None:
    class Plain:
        def on_main(self, **kwargs: Any) -> None: ...

    class Sub(Operation):
        def on_complete(self, checkpoint: Any, resource: Resource, context: Any,
                        parameters: dict[str, Any], **kwargs: Any) -> Any: ...

    assert implemented_hooks(Plain()) == ("main",)
    assert implemented_hooks(Sub()) == ("complete",)
    assert implemented_hooks(Operation()) == ()
    assert implemented_hooks(object()) == ()


def test_a_plain_plugin_without_optional_methods() -> None:
    class Minimal:
        def get_supported_resources_types(self) -> list[str]:
            return ["T"]

        def get_protect_operation(self, resource: Resource) -> Any:
            return Shuffled()

    plugin = Minimal()
    assert supported_types(plugin) == ("T",)
    assert implemented_hooks(get_operation(plugin, "protect", R)) == ("main",)
    assert implemented_hooks(get_operation(plugin, "restore", R)) == ()
    assert parameters_schema(plugin, "protect", "T") == {"type": "object"}
    with pytest.raises(PluginError, match="unknown operation 'protec'"):
        get_operation(plugin, "protec", R)


def test_supported_types_must_be_a_list_of_names() -> None:
    class Bad:
        def get_supported_resources_types(self) -> str:
            return "T"

    with pytest.raises(PluginError, match="list of resource type names"):
        supported_types(Bad())
    with pytest.raises(PluginError, match="no protection plugin"):
        supported_types(object())


@pytest.mark.parametrize("operation, extra", [
    ("restore", "restore"), ("verify", "verify"), ("copy", "checkpoint_copy")])
def test_each_operation_gets_its_karbor_extra(operation: str, extra: str) -> None:
    extras, recorder = hook_extras(operation, operation_log=None, attempt=1)
    assert extras[extra] is recorder
    assert ("new_resources" in extras) == (operation != "copy")


def test_protect_and_delete_have_no_recorder() -> None:
    for operation in ("protect", "delete"):
        extras, recorder = hook_extras(operation, operation_log=None, attempt=2,
                                       target_checkpoint="t")
        assert recorder is None
        assert extras == {"operation_log": None, "attempt": 2, "target_checkpoint": "t"}


def test_status_updates_are_collected_last_one_winning_and_travel_pickled() -> None:
    class Restores:
        def on_main(self, resource: Resource, restore: StatusRecorder, **kwargs: Any) -> None:
            restore.update_resource_status(resource.type, resource.id, "restoring")
            restore.update_resource_status(resource.type, resource.id, "error", "disk full")

    extras, recorder = hook_extras("restore", operation_log=None, attempt=1)
    call_hook(Restores(), "main", **ARGS, **extras)
    assert recorder is not None
    back = pickle.loads(pickle.dumps(recorder))
    assert back.statuses() == {"T#1": {"status": "error", "reason": "disk full"}}
    assert [u.status for u in back.updates] == ["restoring", "error"]
    with pytest.raises(PluginError, match="status must be a non-empty string"):
        recorder.update_resource_status("T", "1", "")


def test_every_hook_name_reaches_its_method() -> None:
    class All:
        def __getattr__(self, name: str) -> Any:
            if name.startswith("on_"):
                return lambda **kwargs: name
            raise AttributeError(name)

    for hook in (*HOOKS, "failure"):
        assert call_hook(All(), hook, **ARGS) == "on_" + hook
