"""Tools and models without a database: rules, catalogues, schemas and idempotent seeding."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.catalogue_seed import (
    BUILTIN_MODELS,
    BUILTIN_TOOLS,
    BuiltinTool,
    model_catalogue,
    seed_catalogue,
    seed_models,
    seed_tools,
    tool_catalogue,
)
from application.models import ModelsService
from application.store import KasalStore, memory_env
from application.tools import ToolsService
from domain.context import Actor, acting_as
from domain.errors import ConflictError, InvalidError
from domain.model_config import (
    KNOWN_PROVIDERS,
    ModelConfig,
    builtin_model_id,
    effective_model,
    litellm_model,
)
from domain.tool import Tool, builtin_tool_id, config_schema, effective_tool, tool_setting_id

GROUP = Actor(group_id="g1", actor="tester", role="admin", correlation_id="c1")
OTHER = Actor(group_id="g2", actor="tester", role="admin", correlation_id="c2")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
configs = st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=6)


@pytest.fixture
def store() -> KasalStore:
    return KasalStore(memory_env())


def test_every_known_provider_is_one_litellm_knows() -> None:
    import litellm

    known = {str(getattr(p, "value", p)) for p in litellm.provider_list}
    assert known >= KNOWN_PROVIDERS, sorted(KNOWN_PROVIDERS - known)


def test_litellm_model_strings_follow_each_providers_prefix() -> None:
    assert litellm_model("openai", "gpt-4o") == "gpt-4o"
    assert litellm_model("anthropic", "claude-sonnet-4-20250514") == "anthropic/claude-sonnet-4-20250514"
    assert litellm_model("ollama", "llama3.2:latest") == "ollama/llama3.2:latest"
    assert litellm_model("databricks", "databricks/dbrx") == "databricks/dbrx"
    assert litellm_model("offline", "offline/echo") == "offline/echo"


def test_the_catalogues_are_valid_and_their_ids_distinct() -> None:
    assert 15 <= len(BUILTIN_TOOLS) <= 30 and 20 <= len(BUILTIN_MODELS) <= 40
    assert len(tool_catalogue()) == len(BUILTIN_TOOLS) and len(model_catalogue()) == len(BUILTIN_MODELS)
    for fields in tool_catalogue().values():
        assert "result_as_answer" in Tool.prepare(fields)["config"]
    providers = {ModelConfig.prepare(fields)["provider"] for fields in model_catalogue().values()}
    assert {"openai", "anthropic", "deepseek", "ollama", "databricks", "gemini", "offline"} == providers
    assert {"calculator", "current_datetime"} <= {tool.name for tool in BUILTIN_TOOLS}


def test_a_tool_needs_a_name_and_an_object_config() -> None:
    with pytest.raises(InvalidError):
        Tool.prepare({"description": "nameless"})
    with pytest.raises(InvalidError):
        Tool.prepare({"name": "t", "config": ["not", "an", "object"]})
    assert Tool.prepare({"name": " t "}) == {
        "name": "t", "description": "", "tool_type": "custom", "icon": "custom", "config": {}, "enabled": True,
    }


def test_the_contracts_parameters_fill_temperature_and_output_tokens() -> None:
    config = {"key": "k", "provider": "openai", "parameters": {"temperature": 0.3, "max_tokens": 99}}
    fields = ModelConfig.prepare(config)
    assert fields["temperature"] == 0.3 and fields["max_output_tokens"] == 99 and fields["name"] == "k"
    assert fields["api_key_name"] == "OPENAI_API_KEY"


@pytest.mark.parametrize("bad", [{"provider": "acme"}, {"temperature": 2.5}, {"context_window": 0},
                                 {"max_output_tokens": "many"}, {"key": "  "}])
def test_an_invalid_model_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidError):
        ModelConfig.prepare({"key": "k", "provider": "openai", **bad})


def test_a_built_in_model_keeps_its_identity_and_offline_ones_stay_on(store: KasalStore) -> None:
    seed_models(store)
    gpt = store.find(builtin_model_id("gpt-4"))
    echo = store.find(builtin_model_id("offline/echo"))
    assert gpt.override({"temperature": 0.2, "key": "gpt-4"}) == {"temperature": 0.2}
    with pytest.raises(ConflictError):
        gpt.override({"provider": "anthropic"})
    with pytest.raises(ConflictError):
        echo.override({"enabled": False})
    with pytest.raises(ConflictError):
        echo.check_removable()


@given(defaults=configs, override=configs, enabled=st.none() | st.booleans())
def test_a_groups_setting_lays_over_a_built_ins_defaults(defaults, override, enabled) -> None:
    tool = {"name": "t", "enabled": True, "config": defaults}
    seen = effective_tool(tool, {"enabled": enabled, "config": override})
    assert set(seen["config"]) == set(defaults) | set(override)
    assert all(seen["config"][k] == v for k, v in override.items())
    assert seen["enabled"] is (True if enabled is None else enabled)
    assert effective_tool(tool, None) == tool


@given(config=configs)
def test_a_config_is_valid_against_its_own_schema(config) -> None:
    schema = config_schema("t", config)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(config, schema, cls=jsonschema.Draft202012Validator)
    assert set(schema["properties"]) == set(config)


def test_hints_add_what_values_cannot_say() -> None:
    schema = config_schema("DallETool", {"size": "1024x1024", "result_as_answer": False},
                           {"size": {"enum": ["1024x1024", "1792x1024"]}})
    assert schema["properties"]["size"]["enum"] == ["1024x1024", "1792x1024"]
    assert "description" in schema["properties"]["result_as_answer"]


def test_seeding_twice_records_nothing_the_second_time(store: KasalStore) -> None:
    assert seed_tools(store) is not None and seed_models(store) is not None
    position = store.max_position()
    assert seed_tools(store) is None and seed_models(store) is None
    assert store.max_position() == position


def test_a_reseed_with_a_new_built_in_keeps_each_groups_choices(store: KasalStore) -> None:
    seed_tools(store)
    serper = builtin_tool_id("SerperDevTool")
    with acting_as(GROUP):
        ToolsService(store).toggle(serper)
    upgraded = {**tool_catalogue(), builtin_tool_id("NewTool"): BuiltinTool("NewTool", "new", "utility").fields()}
    assert seed_catalogue(store, Tool, upgraded) is not None
    assert store.find(builtin_tool_id("NewTool")).builtin
    assert seed_catalogue(store, Tool, upgraded) is None
    assert store.find(tool_setting_id("g1", serper)).fields["enabled"] is False
    assert store.find(serper).fields["enabled"] is True  # the shared definition is untouched


def test_toggling_a_built_in_tool_records_a_setting_for_that_group_only(store: KasalStore) -> None:
    seed_tools(store)
    serper = builtin_tool_id("SerperDevTool")
    with acting_as(GROUP):
        ToolsService(store).toggle(serper)
    mine = store.find(tool_setting_id("g1", serper))
    assert mine.fields["enabled"] is False and mine.group_id == "g1"
    assert store.find(tool_setting_id("g2", serper)) is None


def test_a_model_key_cannot_shadow_a_built_in(store: KasalStore) -> None:
    seed_models(store)
    with acting_as(GROUP), pytest.raises(ConflictError):
        ModelsService(store).create({"key": "GPT-4", "provider": "openai"})


def test_the_effective_model_carries_its_litellm_string() -> None:
    seen = effective_model({"key": "c", "name": "claude-x", "provider": "anthropic", "enabled": True},
                           {"model_id": "m", "enabled": False})
    assert seen["litellm_model"] == "anthropic/claude-x" and seen["enabled"] is False
