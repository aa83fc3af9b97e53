"""The replayer answers a replay's calls from a recording, and says where a replay diverged."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.content import Offloader
from domain.replay import (
    Diverged,
    RecordedCall,
    RecordedTool,
    Recording,
    ReplayedFailure,
    Replayer,
    prompt_digest,
    same_input,
)

prompts = st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=8)


def recording(texts: list[str], failure: str | None = None, tools: list[RecordedTool] | None = None) -> Recording:
    calls = [RecordedCall(prompt_sha256=prompt_digest(t), response=f"answer {i}") for i, t in enumerate(texts)]
    return Recording(execution_id="e", calls=calls, tools=tools or [], failure=failure)


@given(prompts, st.randoms())
def test_every_recorded_call_is_answered_whatever_order_the_run_makes_them_in(texts, random) -> None:
    replayer = Replayer(recording(texts))
    order = list(range(len(texts)))
    random.shuffle(order)
    answers = {i: replayer.answer("m", texts[i]).response for i in order}
    # A prompt recorded twice is answered in recorded order; each answer belongs to a call with that prompt.
    for i, answer in answers.items():
        assert texts[int(answer.split()[1])] == texts[i]
    assert sorted(answers.values()) == sorted(f"answer {i}" for i in range(len(texts)))


@given(prompts)
def test_a_call_beyond_the_recording_diverges_naming_its_position(texts) -> None:
    replayer = Replayer(recording(texts))
    for text in texts:
        replayer.answer("m", text)
    with pytest.raises(Diverged, match=f"LLM call {len(texts) + 1} .*no further call"):
        replayer.answer("m", texts[0])


def test_a_changed_prompt_diverges_naming_the_recorded_call_it_should_have_been() -> None:
    replayer = Replayer(recording(["first prompt", "second prompt"]))
    replayer.answer("offline/echo", "first prompt")
    with pytest.raises(Diverged) as raised:
        replayer.answer("offline/echo", "second prompt, changed")
    message = str(raised.value)
    assert "LLM call 2 (model offline/echo)" in message
    assert f"recorded call 2 (sha256 {prompt_digest('second prompt')[:12]})" in message


def test_a_failed_run_fails_again_where_it_failed() -> None:
    replayer = Replayer(recording(["only call"], failure="RateLimitError: slow down"))
    assert replayer.answer("m", "only call").response == "answer 0"
    with pytest.raises(ReplayedFailure, match="^RateLimitError: slow down$"):
        replayer.answer("m", "the call that failed")


def test_tools_are_answered_per_tool_in_order_and_their_errors_come_back() -> None:
    uses = [RecordedTool(tool="calculator", input='{"expression": "2*3"}', output="6"),
            RecordedTool(tool="scrape_website_tool", input='{"website_url": "https://a"}', error="blocked"),
            RecordedTool(tool="calculator", input='{"expression": "7"}', output="7")]
    replayer = Replayer(recording([], tools=uses))
    assert replayer.tool("ScrapeWebsiteTool", json.dumps({"website_url": "https://a"})).error == "blocked"
    assert replayer.tool("calculator", '{"expression": "2*3"}').output == "6"
    with pytest.raises(Diverged, match="tool use 3 \\(calculator\\): input"):
        replayer.tool("calculator", '{"expression": "8"}')


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
       st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_a_tool_input_matches_when_the_recorded_arguments_are_among_the_given(recorded, defaults) -> None:
    given_args = {**defaults, **recorded}
    assert same_input(json.dumps(recorded), json.dumps(given_args))
    if recorded:
        key = next(iter(recorded))
        assert not same_input(json.dumps(recorded), json.dumps({**given_args, key: [given_args[key]]}))


@given(st.text(max_size=3000))
def test_the_digest_of_a_prompt_is_the_content_store_key_it_was_kept_under(text) -> None:
    ref = Offloader().text(text)
    if ref.sha256 is not None:
        assert prompt_digest(text) == ref.sha256
    else:
        assert prompt_digest(text) == prompt_digest(ref.preview)
