"""The service-wide LiteLLM entry point: offline answers, credentials, accounting."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from interface.llm_gateway import (
    MissingCredential,
    complete,
    completion_kwargs,
    offline_answer,
    offline_complete,
    provider_of,
)

# litellm lazily imports its github_copilot module on the first completion; pydantic
# warns there about ReadOnly TypedDict items (harmless, third-party).
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")

REACT_PROMPT = [
    {"role": "system", "content": "You are Clerk.\nThought: ...\nFinal Answer: the final answer"},
    {"role": "user", "content": "\nCurrent Task: Add the numbers [use calculator: 2+3]\n\nBegin!"},
]


class KeyRecorder(CustomLogger):
    """Sees the per-call parameters LiteLLM actually used."""

    def __init__(self) -> None:
        super().__init__()
        self.api_keys: list[str | None] = []

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        self.api_keys.append(kwargs.get("litellm_params", {}).get("api_key"))


@pytest.fixture
def key_recorder() -> Iterator[KeyRecorder]:
    recorder = KeyRecorder()
    previous = list(litellm.callbacks)
    litellm.callbacks = [*previous, recorder]
    yield recorder
    litellm.callbacks = previous


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-mini", "openai"),
        ("openai/gpt-4o", "openai"),
        ("anthropic/claude-3-5-sonnet-20240620", "anthropic"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini/gemini-2.0-flash", "gemini"),
        ("databricks/databricks-meta-llama-3-3-70b-instruct", "databricks"),
        ("offline/echo", "offline"),
    ],
)
def test_provider_of(model: str, provider: str) -> None:
    assert provider_of(model) == provider


def test_offline_answers_are_deterministic_and_prompt_dependent() -> None:
    first = offline_complete("offline/echo", "Summarise the history of tea")
    assert first == offline_complete("offline/echo", "Summarise the history of tea")
    assert first != offline_complete("offline/echo", "Summarise the history of coffee")
    assert "Summarise the history of tea" in first
    assert "Final Answer" not in first


def test_react_prompt_gets_a_tool_step_then_a_final_answer() -> None:
    step = offline_answer("offline/echo", REACT_PROMPT)
    assert step.endswith('Action: calculator\nAction Input: {"expression": "2+3"}')

    observed = [*REACT_PROMPT, {"role": "assistant", "content": step + "\nObservation: 5"}]
    final = offline_answer("offline/echo", observed)
    assert final.startswith("Thought: ")
    assert "\nFinal Answer: " in final and final.endswith("tool result: 5")


def test_structured_output_request_gets_a_schema_instance() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "Plan", "schema": {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}}},
        "$defs": {"Step": {"type": "object", "properties": {
            "number": {"type": "integer", "minimum": 1}, "text": {"type": "string"},
            "done": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}}}},
    }}}
    prompt = f"Format your final answer according to the following OpenAPI schema: {json.dumps(schema)}"
    answer = json.loads(offline_complete("offline/echo", prompt))
    assert answer["steps"][0]["number"] == 1 and answer["steps"][0]["done"] is True
    assert answer["steps"][0]["text"].startswith("[offline/echo] answer to: Format your final answer")


def test_offline_completion_counts_tokens_costs_nothing_and_reports_latency() -> None:
    messages = [{"role": "user", "content": "Describe honeybees in one sentence, please."}]
    for model in ("offline/echo", "offline/slow"):
        result = complete(model, messages, {})
        assert result.text == offline_complete(model, messages[0]["content"])
        assert result.prompt_tokens > 5 and result.completion_tokens > 5
        assert result.cost == 0.0  # served in-process: no provider bills it
        assert result.latency_ms >= 0


def test_offline_completion_uses_a_given_mock_payload() -> None:
    result = complete("offline/echo", [{"role": "user", "content": "Generate an agent"}], {},
                      mock_response='{"name": "Planner"}')
    assert result.text == '{"name": "Planner"}'
    assert result.completion_tokens > 0


def test_slow_offline_model_takes_time() -> None:
    result = complete("offline/slow", [{"role": "user", "content": "hi"}], {})
    assert result.latency_ms >= 150


def test_real_model_without_key_fails_before_any_call(key_recorder: KeyRecorder) -> None:
    with pytest.raises(MissingCredential, match="OPENAI_API_KEY") as caught:
        complete("gpt-4o-mini", [{"role": "user", "content": "hi"}], {"anthropic": "sk-ant-x"})
    assert caught.value.key_name == "OPENAI_API_KEY"
    assert key_recorder.api_keys == []


def test_real_model_key_is_passed_per_call_never_via_environment(key_recorder: KeyRecorder) -> None:
    assert "OPENAI_API_KEY" not in os.environ
    messages = [{"role": "user", "content": "hi"}]
    kwargs = completion_kwargs("gpt-4o-mini", messages, {"openai": "sk-test-123"})
    assert kwargs["model"] == "gpt-4o-mini" and kwargs["api_key"] == "sk-test-123"

    result = complete("gpt-4o-mini", messages, {"openai": "sk-test-123"}, mock_response="hello")

    assert result.text == "hello"
    assert key_recorder.api_keys == ["sk-test-123"]
    assert result.cost is not None and result.cost > 0
    assert "OPENAI_API_KEY" not in os.environ


def test_unknown_offline_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="offline/echo"):
        completion_kwargs("offline/nope", [{"role": "user", "content": "hi"}], {})


def test_random_offline_model_answers_differ_for_the_same_prompt() -> None:
    prompt = "Summarise the history of tea"
    first, second = offline_complete("offline/random", prompt), offline_complete("offline/random", prompt)

    assert first != second
    assert re.fullmatch(r"\[offline/random\] answer to: Summarise the history of tea \(digest [0-9a-f]{8}\)"
                        r" \(nonce [0-9a-f]{8}\)", first), first
    assert first.split(" (nonce")[0] == second.split(" (nonce")[0]


def test_random_offline_model_keeps_the_tool_step_and_react_form() -> None:
    step = offline_answer("offline/random", REACT_PROMPT)
    assert step == offline_answer("offline/echo", REACT_PROMPT)  # the action itself is not randomised
    assert step.endswith('Action: calculator\nAction Input: {"expression": "2+3"}')

    observed = [*REACT_PROMPT, {"role": "assistant", "content": step + "\nObservation: 5"}]
    finals = [offline_answer("offline/random", observed) for _ in range(2)]
    assert finals[0] != finals[1]
    for final in finals:
        assert final.startswith("Thought: ") and "\nFinal Answer: [offline/random] answer to: Add" in final
        assert "(nonce " in final and final.endswith("tool result: 5")


def test_random_offline_model_answers_a_schema_with_an_instance_of_it() -> None:
    schema = {"type": "object", "properties": {"headline": {"type": "string"}, "words": {"type": "integer"}}}
    prompt = f"Format your final answer according to the following OpenAPI schema: {json.dumps(schema)}"
    first, second = (json.loads(offline_complete("offline/random", prompt)) for _ in range(2))

    assert set(first) == {"headline", "words"} and first["words"] == 1
    assert "(nonce " in first["headline"] and first["headline"] != second["headline"]


def test_random_offline_model_is_served_offline_at_no_cost() -> None:
    messages = [{"role": "user", "content": "Describe honeybees in one sentence, please."}]
    kwargs = completion_kwargs("offline/random", messages, {})
    assert "api_key" not in kwargs and "mock_delay" not in kwargs

    first, second = complete("offline/random", messages, {}), complete("offline/random", messages, {})
    assert first.text != second.text and "(nonce " in first.text
    assert first.cost == 0.0 and first.completion_tokens > 5
