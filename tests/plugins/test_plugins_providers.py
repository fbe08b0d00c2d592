"""Providers choose which plugin serves which type; fallbacks yield; plans
name resources by discovery."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest

from protectflow.compiler import compile_plan, parse_plan
from protectflow.errors import PlanError, PluginError
from protectflow.plugins import ProtectionPlugin, Registry
from protectflow.plugins.builtin.sim import IMAGE, SERVER, ImageProtectable, SimProtectionPlugin
from protectflow.plugins.providers import Provider, load_providers, resolve_provider


class Glance(ProtectionPlugin):
    supported_resource_types = (IMAGE,)


class OtherGlance(ProtectionPlugin):
    supported_resource_types = (IMAGE,)


class Configurable(ProtectionPlugin):
    supported_resource_types = ("T",)

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config or {}


def registry(**extra: Any) -> Registry:
    return Registry({"sim": SimProtectionPlugin(), **extra}, [ImageProtectable()])


def plan(body: str) -> Any:
    return parse_plan(textwrap.dedent(body), source="<test>.yaml")


def plugins_of(dag: Any) -> dict[str, str]:
    return {n.resource.type: n.plugin for n in dag.nodes}


IMAGE_AND_SERVER = """
    name: p
    resources:
      - {type: OS::Glance::Image, id: i}
      - {type: OS::Nova::Server, id: s}
"""


def with_provider(provider: Any) -> Any:
    """The image-and-server plan, naming ``provider``."""
    return parse_plan(json.dumps({
        "name": "p", "provider": provider,
        "resources": [{"type": IMAGE, "id": "i"}, {"type": SERVER, "id": "s"}]}),
        source="<test>.json")


def test_an_installed_plugin_wins_over_the_sim_fallback() -> None:
    reg = registry(glance=Glance())
    assert reg.conflicts() == {}
    assert plugins_of(compile_plan(plan(IMAGE_AND_SERVER), registry=reg)) == {
        IMAGE: "glance", SERVER: "sim"}


def test_the_sim_provider_opts_in_to_the_sim_plugins() -> None:
    reg = registry(glance=Glance())
    dag = compile_plan(with_provider("sim"), registry=reg)
    assert plugins_of(dag) == {IMAGE: "sim", SERVER: "sim"}


def test_two_real_plugins_need_a_choice_naming_both_and_how() -> None:
    reg = registry(glance=Glance(), other=OtherGlance())
    with pytest.raises(PluginError) as info:
        compile_plan(plan(IMAGE_AND_SERVER), registry=reg)
    text = str(info.value)
    assert "'glance' and 'other' both claim resource type 'OS::Glance::Image'" in text
    assert "OS::Glance::Image: glance" in text


def test_an_inline_provider_picks_between_two_plugins() -> None:
    reg = registry(glance=Glance(), other=OtherGlance())
    for choice in ("glance", "other"):
        dag = compile_plan(with_provider({"plugins": {IMAGE: choice}}), registry=reg)
        assert plugins_of(dag) == {IMAGE: choice, SERVER: "sim"}


def test_a_conflict_on_a_type_the_plan_does_not_use_is_no_error() -> None:
    reg = registry(glance=Glance(), other=OtherGlance())
    dag = compile_plan(plan("name: p\nresources: [{type: OS::Nova::Server, id: s}]\n"),
                       registry=reg)
    assert plugins_of(dag) == {SERVER: "sim"}


@pytest.mark.parametrize("plugins, message", [
    ({IMAGE: "nope"}, "chooses plugin 'nope' for OS::Glance::Image, but no such plugin"),
    ({SERVER: "glance"}, "chooses plugin 'glance' for OS::Nova::Server, which that plugin "
                         "does not handle"),
])
def test_a_provider_choosing_a_plugin_that_cannot_serve_is_refused(
        plugins: dict[str, str], message: str) -> None:
    with pytest.raises(PluginError, match=message):
        resolve_provider({"plugins": plugins}, registry(glance=Glance()))


def test_named_providers_come_from_the_providers_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(textwrap.dedent(f"""
        providers:
          production:
            bank: {tmp_path / 'bank'}
            plugins: {{"OS::Glance::Image": other}}
    """))
    monkeypatch.setenv("PROTECTFLOW_PROVIDERS", str(path))
    reg = registry(glance=Glance(), other=OtherGlance())
    dag = compile_plan(with_provider("production"), registry=reg)
    assert plugins_of(dag)[IMAGE] == "other"
    assert load_providers()["production"].bank == str(tmp_path / "bank")
    with pytest.raises(PluginError, match=r"unknown provider 'prod'; known: default, "
                                          r"production, sim"):
        resolve_provider("prod", reg)


def test_a_missing_providers_file_holds_none_and_a_bad_one_lists_every_error(
        tmp_path: Path) -> None:
    assert load_providers(tmp_path / "absent.yaml") == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  a: {plugins: {T: 3}, bnak: x}\n")
    with pytest.raises(PlanError) as info:
        load_providers(bad)
    assert len(info.value.errors) == 2


def test_a_plans_provider_is_checked_by_the_schema_and_kept() -> None:
    with pytest.raises(PlanError, match="provider"):
        with_provider({"plugins": {"T": 3}})
    p = with_provider({"bank": "/b", "plugins": {"T": "x"}})
    assert p.to_json()["provider"] == {"bank": "/b", "plugins": {"T": "x"}}
    assert Provider.from_json(p.to_json()["provider"]).bank == "/b"


def test_a_provider_configures_its_plugins_once_per_configuration() -> None:
    reg = Registry({"c": Configurable(), "g": Glance()})
    made = reg.configured("c", {"endpoint": "x"})
    assert made.config == {"endpoint": "x"}
    assert reg.configured("c", {"endpoint": "x"}) is made
    assert reg.configured("c", {}) is reg.plugin("c")
    with pytest.raises(PluginError, match="'g' takes no configuration"):
        reg.configured("g", {"a": 1})


def test_the_installed_sim_plugins_are_fallbacks() -> None:
    from protectflow.plugins import get_registry

    reg = get_registry()
    assert reg.plugin_name_for(SERVER) == "sim"
    assert reg.plugin("sim").fallback is True


# -- discovery ----------------------------------------------------------------


def test_a_plan_names_resources_by_discovery() -> None:
    p = plan("""
        name: p
        resources:
          - {type: OS::Nova::Server, id: s, depends_on: []}
          - discover: {type: OS::Glance::Image, parameters: {count: 2}}
    """)
    dag = compile_plan(p, registry=registry())
    assert sorted(r.key for r in dag.resources) == [
        "OS::Glance::Image#image-1", "OS::Glance::Image#image-2", "OS::Nova::Server#s"]
    assert p.to_json()["resources"][-1] == {
        "discover": {"type": IMAGE, "parameters": {"count": 2}}}
    assert parse_plan(json.dumps(p.to_json()), source="x.json") == p


def test_a_discovery_of_a_type_without_a_protectable_is_a_plan_error() -> None:
    p = plan("name: p\nresources: [{discover: {type: OS::Nova::Server}}]\n")
    with pytest.raises(PlanError, match="no protectable lists resources of that type"):
        compile_plan(p, registry=registry())


def test_a_discovery_that_finds_nothing_leaves_no_resources() -> None:
    p = plan("name: p\nresources: [{discover: {type: OS::Glance::Image, "
             "parameters: {count: 0}}}]\n")
    with pytest.raises(PlanError, match="its discoveries found none"):
        compile_plan(p, registry=registry())


def test_a_misspelt_discovery_is_reported_with_its_field() -> None:
    with pytest.raises(PlanError, match=r"unknown field 'tpye'; did you mean 'type'"):
        plan("name: p\nresources: [{discover: {tpye: X}}]\n")


class _Lists(ImageProtectable):
    items: ClassVar[list[Any]] = []

    def list_resources(self, context: Any, parameters: Any = None) -> list[Any]:
        return self.items


def test_a_protectable_listing_something_else_is_a_plan_error() -> None:
    _Lists.items = ["not a resource"]
    reg = Registry({"sim": SimProtectionPlugin()}, [_Lists()])
    with pytest.raises(PlanError, match="listed 'not a resource', not a resource of type"):
        compile_plan(plan("name: p\nresources: [{discover: {type: OS::Glance::Image}}]\n"),
                     registry=reg)


def test_with_choices_leaves_the_chosen_plugin_alone_on_its_type() -> None:
    reg = registry(glance=Glance(), other=OtherGlance())
    chosen = reg.with_choices({IMAGE: "other"})
    assert chosen.claims()[IMAGE] == ("other",)
    assert chosen.plugin_name_for(IMAGE) == "other"
    assert chosen.plugin("glance").get_supported_resources_types() == ()
    assert chosen.plugin("sim").get_restore_schema(SERVER) == reg.plugin(
        "sim").get_restore_schema(SERVER)
    with pytest.raises(PluginError, match="unknown protection plugin 'nope'"):
        reg.with_choices({IMAGE: "nope"})
