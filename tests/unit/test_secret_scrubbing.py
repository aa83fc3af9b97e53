"""Secrets never recorded: scrubbing known values from whatever a run records, and inputs of
any shape (however deep) answered with the domain's validation error, never a crash."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.content import MemoryContentStore
from application.executions import ExecutionService
from application.schedules import ScheduleService
from application.store import KasalStore, memory_env
from domain.context import Actor, acting_as
from domain.errors import InvalidError
from domain.execution import Execution
from domain.execution_progress import AgentStarted, LlmCall, LogLine, TaskCompleted, TaskFailed, TaskStarted, ToolUsed
from domain.redaction import (
    MAX_INPUT_DEPTH,
    MIN_SECRET_CHARS,
    REDACTED,
    KnownSecrets,
    check_nesting,
    redact,
    scrub,
    secret_values,
)
from domain.schedule import Schedule
from tests.fakes import FakeClock, FakeCrewCheck, FakeSecretBox, ListedExecutionIndex

SECRET = "hunter2-Correct-Horse-Battery"
PROVIDER_KEY = "sk-test-0123456789abcdefABCDEF"
AGENTS = {"auditor": {"role": "Auditor", "goal": "Log in with {db_password}", "backstory": "b"}}
TASKS = {"audit": {"description": "Audit using {db_password}", "expected_output": "A report", "agent": "auditor"}}

leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=40,
)


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """A chain of mappings and lists, 1 to 1,200 deep, with secret-looking names on the way."""
    value: Any = draw(leaves)
    levels = draw(st.integers(min_value=1, max_value=1200))
    for as_list in draw(st.lists(st.booleans(), min_size=levels, max_size=levels)):
        value = [value] if as_list else {draw(st.sampled_from(["a", "api_key", "x"])): value}
    return value


def depth(value: Any) -> int:
    """How many mappings and lists nest in ``value`` (counted without recursion)."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level + 1)
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def chain(levels: int) -> dict[str, Any]:
    value: Any = "bottom"
    for level in range(levels - 1):
        value = {"nested": value} if level % 2 else [value]
    return {"inputs": value}


# -- by value ------------------------------------------------------------------


@given(st.text(), st.text(alphabet="abcdefghXYZ0123456789-", min_size=MIN_SECRET_CHARS, max_size=40), st.text())
def test_a_known_secret_is_replaced_wherever_it_appears_in_text(before: str, secret: str, after: str) -> None:
    hidden = KnownSecrets([secret]).hide(before + secret + after + secret)
    assert secret not in hidden and REDACTED in hidden


def test_short_and_common_values_are_never_scrubbed_by_value() -> None:
    known = KnownSecrets(["a", "true", "2024", "x" * (MIN_SECRET_CHARS - 1), True, None, 1234567])
    text = "a true story of 2024: xxxxxxx said 1234567"
    assert not known and known.hide(text) == text


def test_a_secret_is_also_hidden_where_json_escapes_it() -> None:
    secret = 'pa"ss\\word-ünïcode'
    known = KnownSecrets([secret])
    for text in (json.dumps({"q": secret}), json.dumps({"q": secret}, ensure_ascii=False)):
        assert known.hide(text) == '{"q": "[REDACTED]"}'
    assert known.hide(f"say {secret}!") == "say [REDACTED]!"


def test_the_values_under_secret_looking_names_are_the_known_secrets() -> None:
    inputs = {"topic": "AI chips", "db_password": SECRET, "nested": {"tokens": [PROVIDER_KEY, {"n": 123456789}]},
              "api_key": "short", "flag_secret": True}
    assert secret_values(inputs).values == {SECRET, PROVIDER_KEY, "123456789"}


# -- any depth -------------------------------------------------------------------


@given(json_values)
def test_scrub_and_redact_take_any_json_value(value: Any) -> None:
    scrub(value, KnownSecrets([SECRET]))
    redact({"v": value})


@settings(max_examples=40, deadline=None)
@given(deep_values())
def test_scrub_and_redact_walk_any_depth_without_recursion(value: Any) -> None:
    assert depth(scrub(value, KnownSecrets([SECRET]))) == depth(value)
    assert depth(redact({"v": value})[0]) <= depth(value) + 1


@settings(max_examples=60, deadline=None)
@given(json_values | deep_values())
def test_a_request_takes_any_inputs_or_refuses_them_as_invalid_only_when_too_deep(value: Any) -> None:
    inputs = {"v": value}
    with acting_as(Actor("g1", "alice@example.com")):
        try:
            execution = Execution.request("g1", run_name="r", model="m", inputs=inputs, snapshot={})
        except InvalidError as error:
            assert depth(inputs) > MAX_INPUT_DEPTH, error
            assert error.errors == [("inputs", f"nested deeper than {MAX_INPUT_DEPTH} levels")]
        else:
            assert depth(inputs) <= MAX_INPUT_DEPTH
            assert depth(execution.inputs) <= MAX_INPUT_DEPTH


@settings(max_examples=60, deadline=None)
@given(json_values | deep_values())
def test_a_schedule_takes_any_inputs_or_refuses_them_as_invalid_only_when_too_deep(value: Any) -> None:
    service = ScheduleService(KasalStore(memory_env()), FakeClock(), FakeSecretBox(), FakeCrewCheck())
    inputs = {"v": value}
    fields = {"name": "Nightly", "cron_expression": "0 3 * * *", "crew_id": "c0ffee00-0000-4000-8000-000000000000",
              "inputs": inputs}
    with acting_as(Actor("g1", "alice@example.com")):
        try:
            service.create(fields)
        except InvalidError:
            assert depth(inputs) > MAX_INPUT_DEPTH
        else:
            assert depth(inputs) <= MAX_INPUT_DEPTH


def test_a_thousand_levels_are_walked_or_refused_as_invalid() -> None:
    deep = chain(1000)
    assert depth(scrub(deep, KnownSecrets([SECRET]))) == depth(redact(deep)[0]) == 1000
    with pytest.raises(InvalidError):
        check_nesting(deep)
    with acting_as(Actor("g1", "alice@example.com")):
        with pytest.raises(InvalidError):
            Execution.request("g1", run_name="r", model="m", inputs=deep, snapshot={})
        with pytest.raises(InvalidError):
            Schedule.new("g1", {"name": "Nightly", "cron_expression": "0 3 * * *", "crew_id": "c", "inputs": deep})
    check_nesting(chain(MAX_INPUT_DEPTH))
    with pytest.raises(InvalidError):
        check_nesting(chain(MAX_INPUT_DEPTH + 1))


# -- a run's records -----------------------------------------------------------------


class RecordingContentStore(MemoryContentStore):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[bytes] = []

    def put_many(self, group_id: str, blobs: Mapping[str, bytes]) -> None:
        self.texts.extend(blobs.values())
        super().put_many(group_id, blobs)


def running(inputs: dict[str, Any]) -> tuple[KasalStore, ExecutionService, RecordingContentStore, UUID, Actor]:
    store, content, index = KasalStore(memory_env()), RecordingContentStore(), ListedExecutionIndex()
    service = ExecutionService(store, content, index)
    with acting_as(Actor("g1", "alice@example.com")):
        execution_id = service.request_execution(agents=AGENTS, tasks=TASKS, inputs=inputs, model="m").execution_id
    index.ids.append(execution_id)
    job = service.claim_next("r1")
    assert job is not None and job.inputs["db_password"] == SECRET  # the crew still gets it
    runner = job.actor("r1")
    with acting_as(runner):
        service.mark_preparing(execution_id, "r1")
        service.mark_running(execution_id, "r1")
    return store, service, content, execution_id, runner


def everything_stored(store: KasalStore, content: RecordingContentStore) -> list[bytes]:
    return [n.state for n in store.recorder.select_notifications(start=1, limit=100_000)] + content.texts


def test_secret_inputs_and_provider_keys_are_scrubbed_from_every_record_of_a_run() -> None:
    store, service, content, execution_id, runner = running({"topic": "AI", "db_password": SECRET})
    service.protect(execution_id, [PROVIDER_KEY, "a"])
    long_prompt = f"Audit using {SECRET}. " + "filler " * 1000 + SECRET
    with acting_as(runner):
        service.record_progress(execution_id, [
            LogLine(at=1.0, message=f"connecting with {SECRET}"),
            TaskStarted(at=1.1, task="audit", agent=f"Auditor of {SECRET}"),
            AgentStarted(at=1.2, agent=f"Auditor of {SECRET}"),
            LlmCall(at=2.0, model="m", prompt=long_prompt, response=f"I used {SECRET} and {PROVIDER_KEY}",
                    agent=f"Auditor of {SECRET}", task="audit"),
            ToolUsed(at=2.5, tool="login", input=json.dumps({"password": SECRET}), output="x" * 3000 + PROVIDER_KEY,
                     error=f"denied for {SECRET}"),
            TaskFailed(at=2.8, task="retry", error=f"401 with key {PROVIDER_KEY}"),
            TaskCompleted(at=3.0, task="audit", output=f"Logged in using {SECRET}"),
        ])
        service.complete(execution_id, f"Report: the password {SECRET} works. " + "Details. " * 400)
    stored = everything_stored(store, content)
    assert not [s for s in stored if SECRET.encode() in s or PROVIDER_KEY.encode() in s]
    assert any(REDACTED.encode() in s for s in content.texts)  # the long prompt, output and result
    assert any(b"Auditor of [REDACTED]" in s for s in stored)


def test_an_error_naming_a_secret_is_recorded_redacted() -> None:
    store, service, content, execution_id, runner = running({"topic": "AI", "db_password": SECRET})
    service.protect(execution_id, [PROVIDER_KEY])
    with acting_as(runner):
        service.fail(execution_id, f"AuthenticationError: key {PROVIDER_KEY} rejected for password {SECRET}")
    assert store.repository.get(execution_id).error == (
        f"AuthenticationError: key {REDACTED} rejected for password {REDACTED}")
    assert not [s for s in everything_stored(store, content) if SECRET.encode() in s or PROVIDER_KEY.encode() in s]


def test_a_secret_value_under_a_plain_name_is_redacted_from_the_request_too() -> None:
    store, service, content, execution_id, _ = running({"topic": f"login as {SECRET}", "db_password": SECRET})
    assert store.repository.get(execution_id).inputs == {"topic": f"login as {REDACTED}", "db_password": REDACTED}
    assert not [s for s in everything_stored(store, content) if SECRET.encode() in s]


@pytest.mark.parametrize("name", ["api_key", "OPENAI_API_KEY", "githubToken", "db_password", "client_secret", "tokens"])
def test_a_value_under_a_credentials_name_is_scrubbed_by_value(name: str) -> None:
    assert secret_values({name: "s3cr3t-value-123"}).hide("use s3cr3t-value-123 now") == f"use {REDACTED} now"


@pytest.mark.parametrize("name", ["keywords", "key_points", "monkey", "token_budget_note"])
def test_a_name_that_only_contains_a_secret_word_hides_the_input_but_not_its_words_elsewhere(name: str) -> None:
    assert redact({name: "event sourcing"})[0] == {name: REDACTED}
    assert secret_values({name: "event sourcing"}).hide("A summary of event sourcing") == "A summary of event sourcing"
