"""The plugin registry, the protectables' expansion of a plan, and the sim plugins."""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any

import pytest

from protectflow.compiler import build_resource_graph, compile_plan, parse_plan
from protectflow.dag import HOOKS, OPERATIONS, Resource
from protectflow.errors import PlanError, PluginError
from protectflow.plugins import (
    Protectable,
    ProtectionPlugin,
    Registry,
    get_registry,
    implemented_hooks,
)
from protectflow.plugins.builtin.sim import SIM_TYPES, SimFailure, SimProtectionPlugin
from tests.strategies import full_registry, operation_class


class _XY(ProtectionPlugin):
    supported_resource_types = ("X", "Y")


class _Y(ProtectionPlugin):
    supported_resource_types = ("Y",)


def test_a_type_without_a_plugin_names_the_type_and_its_resources() -> None:
    plan = parse_plan(
        textwrap.dedent(
            """
            name: x
            resources:
              - {type: X, id: a, depends_on: ["Nope#1", "Nope#2", "Other#z"]}
              - {type: Nope, id: "1"}
              - {type: Nope, id: "2"}
              - {type: Other, id: z}
            """
        )
    )
    with pytest.raises(PluginError) as info:
        compile_plan(plan, registry=Registry({"xy": _XY()}))
    text = str(info.value)
    assert "no protection plugin handles Nope (resources: Nope#1, Nope#2)" in text
    assert "no protection plugin handles Other (resources: Other#z)" in text
    assert "installed plugins handle: X, Y" in text
    assert isinstance(info.value, LookupError)


def test_two_plugins_claiming_one_type_are_listed_and_an_error_only_when_chosen() -> None:
    registry = Registry({"b-plugin": _Y(), "a-plugin": _XY()})
    assert registry.claims() == {"X": ("a-plugin",), "Y": ("a-plugin", "b-plugin")}
    assert registry.conflicts() == {"Y": ("a-plugin", "b-plugin")}
    assert registry.plugin_name_for("X") == "a-plugin"
    with pytest.raises(PluginError) as info:
        registry.plugin_name_for("Y")
    assert str(info.value).startswith(
        "protection plugins 'a-plugin' and 'b-plugin' both claim resource type 'Y'; "
        "choose one with a provider in the plan")
    assert "provider:\n      plugins:\n        Y: a-plugin" in str(info.value)


def test_two_protectables_claiming_one_type_is_an_error_naming_both_when_used() -> None:
    class First(Protectable):
        resource_type = "X"

    class Second(Protectable):
        resource_type = "X"

    registry = Registry({"xy": _XY()}, [First(), Second()])
    with pytest.raises(PluginError, match=r"'First' and 'Second' both claim resource type 'X'"):
        registry.protectable_for("X")


def test_a_fallback_protectable_yields_to_another() -> None:
    class Fallback(Protectable):
        resource_type = "X"
        fallback = True

    class Real(Protectable):
        resource_type = "X"

    real = Real()
    assert Registry({}, [Fallback(), real]).protectable_for("X") is real
    assert isinstance(Registry({}, [Fallback()]).protectable_for("X"), Fallback)


def test_an_unknown_plugin_name_lists_the_installed_ones() -> None:
    with pytest.raises(PluginError, match=r"unknown protection plugin 'nope'; installed: xy"):
        Registry({"xy": _XY()}).plugin("nope")


def test_a_registry_spec_that_does_not_load_says_how_to_give_one() -> None:
    with pytest.raises(PluginError, match=r"give it as 'module:function'"):
        get_registry("no_such_module_here:factory")


class _Discovering(Protectable):
    """Servers depend on two volumes and a shared image; volumes on a key."""

    resource_type = "Server"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def get_dependent_resources(self, context: Any, parent_resource: Resource) -> list[Resource]:
        self.calls[parent_resource.key] += 1
        assert context == {"token": "t"}
        n = parent_resource.id
        return [Resource("Volume", f"{n}-v1"), Resource("Volume", f"{n}-v2"),
                Resource("Image", "shared", name="the image")]


class _VolumeKeys(Protectable):
    resource_type = "Volume"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def get_dependent_resources(self, context: Any, parent_resource: Resource) -> list[Resource]:
        self.calls[parent_resource.key] += 1
        return [Resource("Key", "kms")]


def test_protectables_expand_the_plan_once_per_resource() -> None:
    servers, volumes = _Discovering(), _VolumeKeys()
    registry = Registry(full_registry(["Server", "Volume", "Image", "Key"]).protections,
                        [servers, volumes])
    plan = parse_plan(
        textwrap.dedent(
            """
            name: x
            resources:
              - {type: Server, id: s1}
              - {type: Server, id: s2}
              - {type: Volume, id: s1-v1, name: listed in the plan}
            """
        )
    )
    graph = build_resource_graph(plan, registry, context={"token": "t"})
    assert servers.calls == {"Server#s1": 1, "Server#s2": 1}
    assert volumes.calls == {f"Volume#{s}-{v}": 1 for s in ("s1", "s2") for v in ("v1", "v2")}
    assert graph.children["Server#s1"] == ("Image#shared", "Volume#s1-v1", "Volume#s1-v2")
    assert graph.children["Volume#s2-v2"] == ("Key#kms",)
    assert graph.children["Key#kms"] == ()
    # The plan's own resource wins over the discovered one of the same identity.
    assert graph.resources["Volume#s1-v1"].name == "listed in the plan"
    assert graph.resources["Image#shared"].name == "the image"
    # A plan resource that turns out to be a dependent is not a root.
    assert graph.roots() == ["Server#s1", "Server#s2"]
    assert list(graph.resources) == sorted(graph.resources)

    dag = compile_plan(plan, registry=registry, context={"token": "t"})
    assert dag.roots() == ["Server#s1", "Server#s2"]
    assert len(graph.resources) == 8 and len(dag.nodes) == 4 * 8
    shared = [e for e in dag.edges if e.target == "Image#shared/prepare_begin"]
    assert sorted(e.source for e in shared) == ["Server#s1/prepare_begin",
                                                 "Server#s2/prepare_begin"]


def test_a_failing_protectable_is_a_plan_error_naming_the_resource() -> None:
    class Broken(Protectable):
        resource_type = "X"

        def get_dependent_resources(self, context: Any, parent_resource: Resource) -> list[Any]:
            raise ConnectionError("cloud unreachable")

    registry = Registry({"xy": _XY()}, [Broken()])
    plan = parse_plan("name: x\nresources: [{type: X, id: a}]\n")
    with pytest.raises(PlanError, match=r"protectable for X failed .* X#a: cloud unreachable"):
        compile_plan(plan, registry=registry)


def test_a_protectable_that_discovers_a_cycle_is_a_cycle_error() -> None:
    class Loop(Protectable):
        resource_type = "X"

        def get_dependent_resources(self, context: Any, parent_resource: Resource) -> list[Any]:
            return [Resource("X", "b" if parent_resource.id == "a" else "a")]

    registry = Registry({"xy": _XY()}, [Loop()])
    plan = parse_plan("name: x\nresources: [{type: X, id: a}]\n")
    with pytest.raises(PlanError, match=r"^cycle: X#a -> X#b -> X#a\n"):
        compile_plan(plan, registry=registry)


def test_implemented_hooks_sees_only_overrides() -> None:
    assert implemented_hooks(operation_class(["main", "complete"])()) == ("main", "complete")
    assert implemented_hooks(operation_class([])()) == ()
    plugin = SimProtectionPlugin()
    for op in OPERATIONS:
        assert implemented_hooks(plugin.get_operation(op, Resource("T", "a"))) == HOOKS


def test_the_sim_plugins_are_installed_through_entry_points() -> None:
    registry = get_registry()
    assert set(SIM_TYPES) <= set(registry.resource_types())  # other plugins may be installed
    assert {registry.plugin_name_for(t) for t in SIM_TYPES} == {"sim"}
    assert isinstance(registry.plugin("sim"), SimProtectionPlugin)
    assert all(registry.protectable_for(t) is not None for t in SIM_TYPES)
    assert get_registry() is registry  # built once per process


def test_sim_hooks_fail_when_asked_and_publish_restored_ids() -> None:
    plugin = SimProtectionPlugin()
    res = Resource("OS::Cinder::Volume", "v1")
    protect = plugin.get_operation("protect", res)
    assert protect.on_main(None, res, None, {}) == {"resource": res.key, "hook": "main"}
    with pytest.raises(SimFailure, match=r"protect main of OS::Cinder::Volume#v1 failed"):
        protect.on_main(None, res, None, {"fail": ["main"]})
    # fail_attempts: only the first N attempts fail.
    params = {"fail": ["complete"], "fail_attempts": 1}
    with pytest.raises(SimFailure):
        protect.on_complete(None, res, None, params, attempt=1)
    assert protect.on_complete(None, res, None, params, attempt=2)["hook"] == "complete"
    new: dict[str, str] = {}
    plugin.get_operation("restore", res).on_main(None, res, None, {}, new_resources=new)
    assert new == {res.key: "restored-v1"}
