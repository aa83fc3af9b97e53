"""Reading the JSON object out of what a model wrote, the way a careful person would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.lenient_json import LenientJsonError, extract_object

AGENT = {"name": "Planner", "role": "Planner", "goal": "Plan", "backstory": "Plans", "tools": ["calculator"]}
AGENT_JSON = json.dumps(AGENT, indent=2)


def test_a_bare_object_is_read_as_it_is() -> None:
    assert extract_object(AGENT_JSON) == AGENT


@pytest.mark.parametrize("fence", ["```json\n{}\n```", "```\n{}\n```", "```JSON {}```", "```{}```"])
def test_an_object_in_a_code_fence_is_read(fence: str) -> None:
    reply = "Here is the agent you asked for:\n\n" + fence.replace("{}", AGENT_JSON) + "\nEnjoy!"
    assert extract_object(reply) == AGENT


def test_a_think_block_is_ignored_even_when_it_holds_braces() -> None:
    reply = '<think>Maybe {"name": "Wrong"}? No, better a planner.</think>\n' + AGENT_JSON
    assert extract_object(reply) == AGENT


def test_reasoning_whose_opening_tag_was_prefilled_is_ignored() -> None:
    reply = 'I should answer {"name": "Wrong"} ... no.\n</think>\n\n' + AGENT_JSON
    assert extract_object(reply) == AGENT


def test_a_reply_that_is_only_unfinished_reasoning_says_so() -> None:
    with pytest.raises(LenientJsonError, match="only reasoning"):
        extract_object('<think>I will answer {"name": "Planner"')


def test_prose_around_the_object_is_ignored() -> None:
    reply = f"Sure! Based on your description, this agent fits:\n{AGENT_JSON}\nLet me know if you want changes."
    assert extract_object(reply) == AGENT


def test_trailing_commas_are_repaired_but_commas_inside_strings_are_kept() -> None:
    reply = '{"name": "a,}", "tools": ["x", "y",], "nested": {"k": ",]",},}'
    assert extract_object(reply) == {"name": "a,}", "tools": ["x", "y"], "nested": {"k": ",]"}}


def test_braces_and_escaped_quotes_inside_strings_do_not_end_the_object() -> None:
    reply = 'Answer: {"goal": "use {topic} and say \\"}\\" loudly", "n": 1} trailing {"other": 2}'
    assert extract_object(reply) == {"goal": 'use {topic} and say "}" loudly', "n": 1}


def test_raw_line_breaks_inside_strings_are_accepted() -> None:
    assert extract_object('{"backstory": "line one\nline two"}') == {"backstory": "line one\nline two"}


def test_the_first_object_that_parses_wins() -> None:
    assert extract_object('{not json} then {"a": 1} and {"b": 2}') == {"a": 1}


def test_a_fenced_block_wins_over_braces_in_the_prose() -> None:
    reply = 'Fill {description} in like this:\n```json\n{"a": 1}\n```'
    assert extract_object(reply) == {"a": 1}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I cannot help with that.", "no JSON object"),
        ("", "empty"),
        ('{"name": "Planner", "role": ', "incomplete"),
        ('{"name": Planner}', "not valid JSON"),
        ("[1, 2, 3]", "no JSON object"),
    ],
)
def test_a_reply_without_a_usable_object_says_why(reply: str, reason: str) -> None:
    with pytest.raises(LenientJsonError, match=reason):
        extract_object(reply)


def test_a_pathological_reply_is_rejected_rather_than_scanned_forever() -> None:
    with pytest.raises(LenientJsonError):
        extract_object("{" * 150_000)


# -- properties ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)
prose = st.text(alphabet=st.characters(blacklist_characters="{}<`", blacklist_categories=("Cs",)), max_size=40)
thoughts = st.text(alphabet=st.characters(blacklist_characters="<", blacklist_categories=("Cs",)), max_size=40)


def with_trailing_commas(value: Any) -> str:
    """JSON with a comma after the last member of every non-empty object and array."""
    if isinstance(value, dict) and value:
        return "{" + ", ".join(f"{json.dumps(k)}: {with_trailing_commas(v)}" for k, v in value.items()) + ",}"
    if isinstance(value, list) and value:
        return "[" + ", ".join(with_trailing_commas(v) for v in value) + ",]"
    return json.dumps(value)


@given(obj=objects, before=prose, after=prose, thought=thoughts,
       wrapping=st.sampled_from(["bare", "fence", "fence-json"]), commas=st.booleans())
def test_any_object_survives_the_usual_wrapping(
    obj: dict[str, Any], before: str, after: str, thought: str, wrapping: str, commas: bool
) -> None:
    body = with_trailing_commas(obj) if commas else json.dumps(obj, indent=1)
    if wrapping != "bare":
        body = ("```json\n" if wrapping == "fence-json" else "```\n") + body + "\n```"
    reply = f"<think>{thought}</think>{before}\n{body}\n{after}"
    assert extract_object(reply) == obj
