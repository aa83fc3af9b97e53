"""Generating agents, tasks and crews: checking answers, one retry, tools, offline answers, saving."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import litellm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application import offline_generation
from application.agents import AgentService
from application.crews import CrewService
from application.generation import (
    AGENT,
    CREW,
    TASK,
    CrewSaver,
    GeneratedCrew,
    Generation,
    Generator,
    ModelOutputError,
    Unusable,
    read_answer,
)
from application.ports import ModelProviderError
from application.store import KasalStore, memory_env
from application.tasks import TaskService
from domain.agent import Agent
from domain.context import Actor, acting_as
from domain.crew import Crew
from domain.errors import InvalidError
from domain.redaction import REDACTED
from domain.task import Task
from interface.model_client import LiteLLMModelClient, scrub
from tests.fakes import FakeModelClient, NoReferences

ALLOWED = ["calculator", "SerperDevTool", "current_datetime"]
AGENT_ANSWER = {"name": "Planner", "role": "Trip Planner", "goal": "Plan trips", "backstory": "Has travelled a lot",
                "tools": ["Calculator", "NoSuchTool", "calculator", "serper-dev-tool"]}
CREW_ANSWER = {
    "agents": [
        {"name": "Researcher", "role": "Senior Researcher", "goal": "Find facts", "backstory": "Curious"},
        {"name": "Writer", "role": "Technical Writer", "goal": "Write", "backstory": "Clear", "tools": ["calculator"]},
    ],
    "tasks": [
        {"name": "Research", "description": "Find facts", "expected_output": "Facts", "agent": "researcher"},
        {"name": "Write Up", "description": "Write it", "expected_output": "Article", "agent": "Technical Writer",
         "context": ["research"], "tools": "calculator, DallETool"},
    ],
}


def call(**overrides: Any) -> Generation:
    fields: dict[str, Any] = {"model": "gpt-4o-mini", "prompt": "Design an agent", "credentials": {"openai": "k"},
                              "allowed_tools": ALLOWED, **overrides}
    return Generation(**fields)


def test_an_agent_keeps_only_allowed_tools_spelled_as_the_catalogue_does() -> None:
    agent = Generator(FakeModelClient(json.dumps(AGENT_ANSWER))).generate(AGENT, call())
    assert (agent.name, agent.role, agent.goal) == ("Planner", "Trip Planner", "Plan trips")
    assert agent.tools == ["calculator", "SerperDevTool"]


def test_an_answer_wrapped_in_its_kind_is_unwrapped() -> None:
    task = {"name": "Sum", "description": "Add numbers", "expected_output": "A number"}
    assert Generator(FakeModelClient(json.dumps({"task": task}))).generate(TASK, call()).name == "Sum"


def test_the_model_gets_the_prompt_the_credentials_and_any_mock_answer() -> None:
    model = FakeModelClient(json.dumps(AGENT_ANSWER))
    Generator(model).generate(AGENT, call(mock_response=json.dumps(AGENT_ANSWER)))
    (seen,) = model.calls
    assert seen.model == "gpt-4o-mini" and seen.credentials == {"openai": "k"}
    assert seen.messages[-1] == {"role": "user", "content": "Design an agent"}
    assert seen.mock_response == json.dumps(AGENT_ANSWER)


def test_an_unusable_answer_is_retried_once_with_the_problem_explained() -> None:
    missing_goal = {k: v for k, v in AGENT_ANSWER.items() if k != "goal"}
    model = FakeModelClient(json.dumps(missing_goal), json.dumps(AGENT_ANSWER))
    agent = Generator(model).generate(AGENT, call())
    assert agent.goal == "Plan trips"
    retry = model.calls[1].messages
    assert retry[-2] == {"role": "assistant", "content": json.dumps(missing_goal)}
    assert "could not be used" in retry[-1]["content"] and "goal" in retry[-1]["content"]


def test_an_answer_still_unusable_after_the_retry_is_the_models_failure() -> None:
    model = FakeModelClient("I'd rather not.", '{"name": "Planner"')
    with pytest.raises(ModelOutputError) as failed:
        Generator(model).generate(AGENT, call())
    assert len(model.calls) == 2
    assert "did not return a usable agent after 2 attempts" in failed.value.detail
    assert "incomplete" in failed.value.detail
    assert isinstance(failed.value, ModelProviderError)


def test_a_crew_resolves_agents_by_name_or_role_and_context_by_earlier_task() -> None:
    crew = Generator(FakeModelClient(json.dumps(CREW_ANSWER))).generate(CREW, call())
    assert [t.agent for t in crew.tasks] == ["Researcher", "Writer"]
    assert crew.tasks[1].context == ["Research"]
    assert crew.tasks[1].tools == ["calculator"]
    assert crew.agents[1].tools == ["calculator"] and crew.agents[0].tools == []


def test_a_lone_agent_takes_the_tasks_that_name_none() -> None:
    answer = {"agents": CREW_ANSWER["agents"][:1],
              "tasks": [{"name": "T", "description": "D", "expected_output": "O"}]}
    assert read_answer(CREW, json.dumps(answer), ALLOWED).tasks[0].agent == "Researcher"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["tasks"][0].update(agent="Editor"), "names agent 'Editor', which is not one of the agents"),
        (lambda c: c["tasks"][0].update(context=["Write Up"]), "'Write Up' in its context, which is not an earlier"),
        (lambda c: c["agents"][1].update(name="researcher"), "two agents are named 'researcher'"),
        (lambda c: c["tasks"][1].update(name="research"), "two tasks are named 'research'"),
        (lambda c: c.update(agents=[]), "does not have the shape asked for"),
    ],
)
def test_a_crew_that_does_not_hang_together_is_unusable(change: Any, problem: str) -> None:
    answer = json.loads(json.dumps(CREW_ANSWER))
    change(answer)
    with pytest.raises(Unusable, match=problem):
        read_answer(CREW, json.dumps(answer), ALLOWED)


# -- offline answers -----------------------------------------------------------

descriptions = st.text(max_size=300)


@settings(max_examples=60)
@given(description=descriptions)
def test_offline_answers_are_valid_deterministic_and_free_of_placeholders(description: str) -> None:
    for kind, reply in ((AGENT, offline_generation.agent_reply), (TASK, offline_generation.task_reply),
                        (CREW, offline_generation.crew_reply)):
        text = reply(description, ALLOWED)
        assert text == reply(description, ALLOWED)
        read_answer(kind, text, ALLOWED)  # type: ignore[arg-type]
        assert "{" not in "".join(str(v) for v in json.loads(text).values() if isinstance(v, str))


def test_offline_answers_follow_the_description() -> None:
    agent = read_answer(AGENT, offline_generation.agent_reply("Audit invoices with the calculator", ALLOWED), ALLOWED)
    assert "Invoices" in agent.name and agent.tools == ["calculator"]
    crew = read_answer(CREW, offline_generation.crew_reply("Plan a garden", ALLOWED), ALLOWED)
    assert crew.tasks[1].context == [crew.tasks[0].name] and "garden" in crew.tasks[1].description


# -- the LiteLLM adapter -----------------------------------------------------------

SECRET = "sk-test-SECRET-abcdef0123456789"


def raising(exc: Exception) -> Any:
    def complete(*args: Any, **kwargs: Any) -> Any:
        raise exc
    return complete


def test_a_provider_failure_is_reported_without_the_key() -> None:
    error = litellm.AuthenticationError(
        message=f"Incorrect API key provided: {SECRET}. api_key={SECRET[:12]}xyz", llm_provider="openai",
        model="gpt-4o-mini")
    client = LiteLLMModelClient(raising(error))
    with pytest.raises(ModelProviderError) as failed:
        client.complete("gpt-4o-mini", [{"role": "user", "content": "hi"}], {"openai": SECRET})
    assert "Incorrect API key provided" in failed.value.detail
    assert "SECRET" not in failed.value.detail and "sk-test" not in failed.value.detail


def test_a_missing_key_names_the_key_to_add_before_any_call() -> None:
    client = LiteLLMModelClient(raising(AssertionError("must not be called")))
    with pytest.raises(InvalidError, match="add ANTHROPIC_API_KEY"):
        client.complete("claude-sonnet-4-5", [{"role": "user", "content": "hi"}], {"openai": SECRET})


def test_an_offline_model_that_does_not_exist_is_invalid() -> None:
    with pytest.raises(InvalidError, match="offline/echo"):
        LiteLLMModelClient().complete("offline/nope", [{"role": "user", "content": "hi"}], {})


def test_a_known_value_in_a_provider_message_is_redacted_like_in_a_run_record() -> None:
    shown = scrub("quota exceeded for hunter2hunter2 (plan 2024)", ["hunter2hunter2", "2024"])
    assert shown == f"quota exceeded for {REDACTED} (plan 2024)"


@given(secret=st.from_regex(r"[A-Za-z0-9_\-]{8,40}", fullmatch=True), before=st.text(max_size=30))
def test_scrubbed_messages_never_contain_a_known_secret(secret: str, before: str) -> None:
    assert secret not in scrub(f"{before} key {secret} rejected", [secret])


# -- saving ------------------------------------------------------------------------

@pytest.fixture
def saver() -> tuple[KasalStore, CrewSaver]:
    store = KasalStore(memory_env())
    return store, CrewSaver(AgentService(store, NoReferences()), TaskService(store, NoReferences()),
                            CrewService(store))


def test_a_saved_crew_lists_its_agents_and_tasks_which_point_at_each_other(
    saver: tuple[KasalStore, CrewSaver],
) -> None:
    store, crew_saver = saver
    crew: GeneratedCrew = read_answer(CREW, json.dumps(CREW_ANSWER), ALLOWED)
    with acting_as(Actor(group_id="g1", actor="alice@example.com")):
        saved = crew_saver.save(crew, name="Facts", description="Find and write", model="offline/echo")
        record = store.load(Crew, UUID(saved.crew_id))
        tasks = [store.load(Task, UUID(t)) for t in saved.task_ids]
        agents = [store.load(Agent, UUID(a)) for a in saved.agent_ids]
    assert record.fields["agent_ids"] == saved.agent_ids and record.fields["task_ids"] == saved.task_ids
    assert record.fields["name"] == "Facts" and record.fields["model"] == "offline/echo"
    assert [t.fields["agent_id"] for t in tasks] == saved.agent_ids
    assert tasks[1].fields["context"] == [saved.task_ids[0]]
    assert all(a.fields["llm"] == "offline/echo" for a in agents)


def test_a_crew_name_in_use_gets_a_number(saver: tuple[KasalStore, CrewSaver]) -> None:
    store, crew_saver = saver
    crew: GeneratedCrew = read_answer(CREW, json.dumps(CREW_ANSWER), ALLOWED)
    with acting_as(Actor(group_id="g1", actor="alice@example.com")):
        first = crew_saver.save(crew, name="Facts", description="d", model="offline/echo")
        second = crew_saver.save(crew, name="Facts", description="d", model="offline/echo")
        names = [store.load(Crew, UUID(s.crew_id)).fields["name"] for s in (first, second)]
    assert names == ["Facts", "Facts (2)"]
