"""What a model may add to its requests is checked when it is written (422), never at call time."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.context import Actor, acting_as
from domain.errors import InvalidError
from domain.model_config import ModelConfig, ModelSetting, builtin_model_id, effective_model, model_call
from domain.model_request import PARAMETERS, REFUSED

BASE: dict[str, Any] = {"key": "local", "name": "qwen", "provider": "openai"}


def refused(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidError) as caught:
        ModelConfig.prepare({**BASE, **fields})
    return list(caught.value.errors)


def fields_named(problems: list[tuple[str, str]]) -> set[str]:
    return {name for name, _ in problems}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_parameter_that_sets_a_key_endpoint_or_the_services_own_arguments_is_refused(name: str) -> None:
    problems = refused(parameters={"top_p": 0.5, name: "sk-live-abcdef0123456789"})

    assert fields_named(problems) == {f"parameters.{name}"}
    assert all("sk-live" not in message for _, message in problems)


@given(st.text(min_size=1, max_size=40).filter(lambda n: n not in PARAMETERS and n not in REFUSED))
def test_an_unknown_parameter_is_refused_naming_it(name: str) -> None:
    assert fields_named(refused(parameters={name: 1})) == {f"parameters.{name[:100]}"}


@given(st.sampled_from(["temperature", "top_p", "seed", "n", "max_tokens", "timeout"]),
       st.one_of(st.just(10**30), st.just(-(10**30)), st.text(max_size=5), st.booleans(), st.lists(st.integers())))
def test_a_known_parameter_with_a_value_out_of_its_range_or_type_is_refused(name: str, value: Any) -> None:
    assert f"parameters.{name}" in fields_named(refused(parameters={name: value}))


@given(st.fixed_dictionaries({}, optional={
    "top_p": st.floats(0, 1), "seed": st.integers(-(2**63), 2**63 - 1), "stop": st.lists(st.text(), max_size=4),
    "presence_penalty": st.floats(-2, 2), "response_format": st.just({"type": "json_object"}),
    "extra_body": st.dictionaries(st.text(max_size=10), st.integers(), max_size=3),
}))
def test_known_parameters_in_range_are_kept_and_reach_the_call(parameters: dict[str, Any]) -> None:
    stored = ModelConfig.prepare({**BASE, "parameters": parameters})

    assert model_call(effective_model(stored, None)).parameters == parameters


def test_parameters_nested_too_deeply_or_too_large_are_refused() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(20):
        inner["x"] = {}
        inner = inner["x"]
    assert fields_named(refused(parameters={"extra_body": deep})) == {"parameters"}
    assert fields_named(refused(parameters={"extra_body": {"x": "y" * 10_000}})) == {"parameters"}


@pytest.mark.parametrize("url", [
    "ftp://models.example/v1", "not a url", "http://", "//host/v1", "http://host:99999/v1",
    "http://me:pw@10.0.0.5:8000/v1", "https://token@vllm.internal/v1", "http://ho st/v1", "http://host/v1\x00", 5, "",
])
def test_an_api_base_that_is_not_a_plain_http_url_is_refused(url: Any) -> None:
    problems = refused(api_base=url) if url != "" else []
    if url == "":  # blank means "the provider's own endpoint"
        assert ModelConfig.prepare({**BASE, "api_base": "  "})["api_base"] is None
        return
    assert fields_named(problems) == {"api_base"}
    assert all("pw" not in message and "token@" not in message for _, message in problems)


@given(st.sampled_from(["http", "https", "HTTP"]), st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
       st.integers(1, 65535), st.text(string.ascii_letters + "/", max_size=20))
def test_an_http_api_base_is_kept_and_prefixes_the_litellm_name(scheme: str, host: str, port: int, path: str) -> None:
    url = f"{scheme}://{host}:{port}/{path}"
    stored = ModelConfig.prepare({**BASE, "api_base": url})
    seen = effective_model(stored, None)

    assert (seen["api_base"], seen["litellm_model"]) == (url, "openai/qwen")
    assert seen["api_key_name"] is None  # the group's OpenAI key does not follow it to another host


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer abc"}, {"X-Api-Key": "abc"}, {"X-Auth-Token": "abc"}, {"Cookie": "s=1"},
    {"X-Gateway": "Bearer abcdefgh"}, {"X-Custom": "sk-proj-abcdef0123456789"}, {"X-Custom": "dapi0123456789abcdef"},
])
def test_a_header_that_looks_like_a_credential_is_refused_and_not_echoed(headers: dict[str, str]) -> None:
    problems = refused(extra_headers=headers)

    assert [name for name, _ in problems] == [f"extra_headers.{next(iter(headers))}"]
    assert all(value not in message for _, message in problems for value in headers.values())
    assert "api_key_name" in problems[0][1]


@pytest.mark.parametrize("headers", [
    {"Bad Name": "x"}, {"": "x"}, {"X-Ok": "line\nbreak"}, {"X-Ok": "naïve"}, {"Host": "evil"},
    {"Content-Length": "1"}, {"X-Ok": 5}, {"X-Ok": "v" * 2000}, {f"X-{n}": "v" for n in range(40)},
])
def test_headers_that_cannot_be_sent_are_refused(headers: dict[str, Any]) -> None:
    assert refused(extra_headers=headers)


PLAIN_NAMES = st.sampled_from(
    ["X-Tenant", "x-tenant", "X-Region", "OpenAI-Organization", "X-Trace-Id", "Accept-Language"])
PLAIN_VALUES = st.sampled_from(["research", "eu-west-1", "de-CH, en;q=0.5", "hive 7"]) | st.text(
    string.digits + " .,:;=/", max_size=50)


@given(st.dictionaries(PLAIN_NAMES, PLAIN_VALUES, max_size=5))
def test_plain_headers_are_kept_one_per_name_and_reach_the_call(headers: dict[str, str]) -> None:
    stored = ModelConfig.prepare({**BASE, "extra_headers": headers})
    sent = model_call(effective_model(stored, None)).extra_headers

    assert {k.lower() for k in sent} == {k.lower() for k in headers}
    assert all(headers[k] == v for k, v in sent.items())


def test_a_group_pointing_a_built_in_at_its_own_endpoint_does_not_send_the_built_ins_key_there() -> None:
    builtin = ModelConfig.prepare({"key": "gpt-4o", "name": "gpt-4o", "provider": "openai"})
    with acting_as(Actor("group-a", "admin")):
        model = ModelConfig.new("__builtin__", builtin, id=builtin_model_id("gpt-4o"))
        wanted = model.override({"api_base": "http://10.0.0.5:8000/v1", "temperature": 0.1})
        setting = ModelSetting.for_model("group-a", model.id, wanted).fields

    call = model_call(effective_model(builtin, setting))

    assert (call.model, call.api_base, call.temperature, call.api_key_name) == (
        "openai/gpt-4o", "http://10.0.0.5:8000/v1", 0.1, None)
    assert model_call(effective_model(builtin, None)).api_key_name == "OPENAI_API_KEY"


def test_an_offline_model_has_no_endpoint() -> None:
    with pytest.raises(InvalidError) as caught:
        ModelConfig.prepare({"key": "offline/echo", "provider": "offline", "api_base": "http://10.0.0.5/v1"})
    assert fields_named(list(caught.value.errors)) == {"api_base"}


def test_parameters_stored_before_these_rules_never_reach_a_call() -> None:
    old = {**BASE, "litellm_model": "qwen", "parameters": {"api_key": "sk-old-0123456789", "top_p": 0.2}}

    assert model_call(old).parameters == {"top_p": 0.2}
