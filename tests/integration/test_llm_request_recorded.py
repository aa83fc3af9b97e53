"""Each model call of a crew reports the request it made: settings, system prompt, tools offered.

Real crews in forkserver children on the offline models, whose calls go
through the same LiteLLM path as real providers'; what the child reports is
what the execution's trace shows (see ``test_self_hosted_model``).
"""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import execution_progress as ep
from domain.model_config import ModelCall
from interface.crew_runtime.messages import CrewJob
from interface.crew_runtime.runtime import CrewRuntime

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def run(runtime: CrewRuntime, job: CrewJob) -> list[ep.Observation]:
    async def gather() -> list[ep.Observation]:
        return [observation async for observation in runtime.run(job).messages()]

    return anyio.run(gather)


def job(models: dict[str, ModelCall], **agent: object) -> CrewJob:
    return CrewJob(
        execution_id="exec-request",
        agents={"analyst": {"role": "Analyst", "goal": "Count things", "backstory": "Précis.", **agent}},
        tasks={"count": {"description": "Add the numbers [use calculator: 2+3]", "expected_output": "A sum",
                         "agent": "analyst"}},
        model="fast", models=models,
    )


def test_each_call_records_the_models_settings_system_prompt_and_tools(runtime: CrewRuntime) -> None:
    call = ModelCall(model="offline/echo", temperature=0.15, max_tokens=321, parameters={"top_p": 0.5, "seed": 7})
    messages = run(runtime, job({"fast": call}, tools=["calculator", "current_datetime"]))

    assert isinstance(messages[-1], ep.CrewCompleted), messages[-1]
    calls = [m for m in messages if isinstance(m, ep.LlmCall)]
    assert len(calls) == 2  # the tool step, then the final answer
    for recorded in calls:
        assert (recorded.model, recorded.temperature, recorded.max_tokens) == ("offline/echo", 0.15, 321)
        assert recorded.parameters == {"top_p": 0.5, "seed": 7}
        assert sorted(recorded.tools) == ["calculator", "current_datetime"]
        system = recorded.system_prompt
        assert isinstance(system, str) and system.startswith("You are Analyst.") and "Précis." in system
        assert recorded.api_base is None and recorded.headers == []


def test_a_model_the_runner_did_not_resolve_is_called_with_litellms_defaults(runtime: CrewRuntime) -> None:
    messages = run(runtime, job({}, llm="offline/echo"))

    calls = [m for m in messages if isinstance(m, ep.LlmCall)]
    assert calls and all((c.temperature, c.max_tokens, c.parameters, c.tools) == (None, None, {}, []) for c in calls)


@settings(max_examples=50, deadline=None)
@given(
    system=st.text(max_size=30_000), tools=st.lists(st.text(max_size=500), max_size=200),
    parameters=st.dictionaries(st.text(max_size=300), st.text(max_size=3000), max_size=20),
)
def test_a_recorded_request_never_outgrows_an_event(system: str, tools: list[str], parameters: dict[str, str]) -> None:
    call = ep.LlmCall(at=1.0, model="m", system_prompt=system, tools=tools, headers=tools, parameters=parameters,
                      temperature=0.3, max_tokens=10)
    payloads = ep.ProgressBuilder(0, 0, {}, ep.empty_usage()).build([call])

    (span,) = [span for payload in payloads for span in payload["spans"]]
    request = span["attributes"]["request"]
    assert (request["temperature"], request["max_tokens"]) == (0.3, 10)
    assert request["tools"] == [name[:ep.LISTED_CHARS].replace("\x00", "") for name in tools[:ep.MAX_LISTED]]
    assert all(len(ep.msgspec.json.encode(payload)) < 16 * 1024 for payload in payloads)
