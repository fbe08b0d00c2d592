"""Parameters: merged per resource (type, then TYPE#ID) and checked against the
plugin's schema for the operation, every error at once, naming the resource."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import Resource
from protectflow.errors import ParameterError, PlanError, PluginError
from protectflow.plugins import ProtectionPlugin, Registry
from protectflow.plugins.builtin.sim import SimProtectionPlugin

VOL = "OS::Cinder::Volume"
SRV = "OS::Nova::Server"

PLAN = textwrap.dedent(
    f"""
    name: params
    resources:
      - {{type: {SRV}, id: s1, depends_on: ["{VOL}#v1", "{VOL}#v2"]}}
      - {{type: {VOL}, id: v1}}
      - {{type: {VOL}, id: v2}}
      - {{type: {VOL}, id: v3}}
    """
)


def sim() -> Registry:
    return Registry({"sim": SimProtectionPlugin()})


def compile_with(parameters: dict[str, Any], operation: str = "protect") -> Any:
    return compile_plan(
        parse_plan(PLAN), operation, registry=sim(), parameters=parameters
    )


def test_type_parameters_apply_to_every_resource_of_the_type_and_id_overrides_key_by_key() -> None:
    dag = compile_with(
        {
            VOL: {"main_seconds": 1, "prepare_begin_seconds": 2},
            f"{VOL}#v2": {"main_seconds": 5, "fail": ["main"]},
            f"{SRV}#s1": {"complete_seconds": 0.5},
        }
    )
    assert dag.parameters == {
        f"{VOL}#v1": {"main_seconds": 1, "prepare_begin_seconds": 2},
        f"{VOL}#v2": {"main_seconds": 5, "prepare_begin_seconds": 2, "fail": ["main"]},
        f"{VOL}#v3": {"main_seconds": 1, "prepare_begin_seconds": 2},
        f"{SRV}#s1": {"complete_seconds": 0.5},
    }


def test_the_plans_parameters_are_used_unless_others_are_given() -> None:
    plan = parse_plan(PLAN + f"parameters: {{'{VOL}#v3': {{main_seconds: 3}}}}\n")
    assert compile_plan(plan, registry=sim()).parameters == {f"{VOL}#v3": {"main_seconds": 3}}
    assert compile_plan(plan, registry=sim(), parameters={}).parameters == {}


def test_every_schema_error_is_reported_at_once_naming_its_resource() -> None:
    with pytest.raises(ParameterError) as info:
        compile_with(
            {
                VOL: {"main_seconds": -1},
                f"{VOL}#v2": {"bogus": 1},
                f"{SRV}#s1": {"fail": ["mian"]},
            }
        )
    err = info.value
    assert isinstance(err, PlanError) and isinstance(err, ValueError)
    assert str(err).startswith("the protect parameters are not valid:")
    shared = f"{VOL} (2 resources: {VOL}#v1, {VOL}#v3)"
    assert err.errors == [
        f"{shared}: parameters['{VOL}'].main_seconds: -1 is less than the minimum of 0",
        f"{VOL}#v2: parameters['{VOL}#v2']: unknown parameter 'bogus'; known: "
        "complete_seconds, fail, fail_attempts, main_seconds, payload_bytes, "
        "prepare_begin_seconds, prepare_finish_seconds",
        f"{VOL}#v2: parameters['{VOL}#v2'].main_seconds: -1 is less than the minimum of 0",
        f"{SRV}#s1: parameters['{SRV}#s1'].fail.0: 'mian' is not one of "
        "['prepare_begin', 'prepare_finish', 'main', 'complete']",
    ]


def test_unknown_parameter_keys_are_errors_with_a_suggestion() -> None:
    with pytest.raises(ParameterError) as info:
        compile_with({"OS::Cinder::Volum": {}, f"{SRV}#s9": {}, "Nothing::Like::It": {}})
    assert info.value.errors == [
        "parameters['OS::Cinder::Volum'] names no resource type or resource of the plan; "
        f"did you mean '{VOL}'?",
        f"parameters['{SRV}#s9'] names no resource type or resource of the plan; "
        f"did you mean '{SRV}#s1'?",
        "parameters['Nothing::Like::It'] names no resource type or resource of the plan",
    ]


class _PerOperation(ProtectionPlugin):
    supported_resource_types = ("T",)

    @classmethod
    def get_options_schema(cls, resource_type: str) -> dict[str, Any]:
        return {"type": "object", "required": ["level"]}

    @classmethod
    def get_restore_schema(cls, resource_type: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"level": {"type": "string"}}}


@pytest.mark.parametrize(
    ("operation", "ok"),
    [("protect", True), ("restore", False), ("verify", True), ("copy", True), ("delete", True)],
)
def test_each_operation_checks_its_own_schema(operation: str, ok: bool) -> None:
    plan = parse_plan("name: x\nresources: [{type: T, id: a}]\n")
    registry = Registry({"per-op": _PerOperation()})
    params = {"T": {"level": 3}}
    if ok:
        assert compile_plan(plan, operation, registry=registry, parameters=params).parameters
    else:
        with pytest.raises(ParameterError, match=r"T \(1 resource: T#a\).*3 is not of type"):
            compile_plan(plan, operation, registry=registry, parameters=params)


def test_a_required_parameter_is_missing_even_when_none_are_given() -> None:
    plan = parse_plan("name: x\nresources: [{type: T, id: a}, {type: T, id: b}]\n")
    with pytest.raises(ParameterError, match="'level' is a required property"):
        compile_plan(plan, "protect", registry=Registry({"per-op": _PerOperation()}))


class _BadSchema(ProtectionPlugin):
    supported_resource_types = ("T",)

    @classmethod
    def get_options_schema(cls, resource_type: str) -> dict[str, Any]:
        return {"type": "no-such-type"}


def test_an_invalid_plugin_schema_is_a_plugin_error_naming_the_plugin() -> None:
    plan = parse_plan("name: x\nresources: [{type: T, id: a}]\n")
    with pytest.raises(PluginError, match="plugin 'broken' gives an invalid protect schema for T"):
        compile_plan(plan, registry=Registry({"broken": _BadSchema()}))


def test_parameters_do_not_change_the_resources() -> None:
    dag = compile_with({VOL: {"main_seconds": 1}})
    assert Resource(VOL, "v1") in dag.resources
    assert all(r.extra_info == {} for r in dag.resources)
