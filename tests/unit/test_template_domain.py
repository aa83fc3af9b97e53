"""Templates: placeholders are checked when saved, and rendering does exactly what it says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.templates import BUILTIN_TEMPLATES
from domain.context import Actor, acting_as
from domain.errors import InvalidError
from domain.template import Template, TemplateSyntaxError, escape, placeholders, render

CONTRACT = {
    "name": "Research Agent Template",
    "template": "You are a research agent. Your task is to {task_description}. Please provide {expected_output}.",
    "variables": ["task_description", "expected_output"],
}


@pytest.fixture
def acting() -> Iterator[None]:
    """Domain commands record who acted: these tests act as an editor of group ``g``."""
    with acting_as(Actor("g", "editor@example.com", "editor")):
        yield

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
segments = st.lists(st.one_of(st.tuples(st.just("text"), st.text()), st.tuples(st.just("var"), names)), max_size=8)


def test_contract_template_keeps_its_variables() -> None:
    fields = Template.prepare(dict(CONTRACT))
    assert fields["variables"] == ["task_description", "expected_output"]
    assert fields["is_active"] is True and fields["description"] == ""


def test_variables_left_out_are_read_from_the_placeholders() -> None:
    fields = Template.prepare({"name": "t", "template": "{b} then {a} then {b}"})
    assert fields["variables"] == ["b", "a"]


def test_mismatched_variables_name_the_missing_and_the_unused() -> None:
    with pytest.raises(InvalidError) as raised:
        Template.prepare({"name": "t", "template": "Hi {who}, see {what}", "variables": ["who", "extra"]})
    assert "missing: what" in raised.value.detail and "unused: extra" in raised.value.detail
    messages = [message for _, message in raised.value.errors]
    assert any("'what'" in m and "not listed" in m for m in messages)
    assert any("'extra'" in m and "not used" in m for m in messages)


def test_doubled_braces_are_literal_and_not_placeholders() -> None:
    text = 'Answer as {{"name": "{who}"}}'
    assert placeholders(text) == ["who"]
    assert render(text, {"who": "Ada"}) == 'Answer as {"name": "Ada"}'


@pytest.mark.parametrize("text", ['{"name": 1}', "a } b", "{}", "{0}", "{x.y}", "{x:>3}", "{ x }", "{x"])
def test_a_stray_brace_is_rejected_when_saving(text: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        Template.prepare({"name": "t", "template": text})


def test_rendering_with_missing_variables_names_them() -> None:
    with pytest.raises(InvalidError) as raised:
        render(CONTRACT["template"], {"task_description": "find facts"})
    assert raised.value.detail == "Missing template variables: expected_output"


def test_rendering_ignores_extra_values_and_writes_non_strings_as_json() -> None:
    assert render("Use {tools} for {n} steps", {"tools": ["a", "b"], "n": 3, "unused": "x"}) == (
        'Use ["a", "b"] for 3 steps'
    )


def test_required_fields_are_named() -> None:
    with pytest.raises(InvalidError) as raised:
        Template.prepare({"name": " ", "template": ""})
    assert [field for field, _ in raised.value.errors] == ["name", "template"]


@pytest.mark.usefixtures("acting")
def test_new_text_without_variables_re_derives_them() -> None:
    template = Template.new("g", dict(CONTRACT))
    template.change({"template": "Summarise {topic}"})
    assert template.fields["variables"] == ["topic"]


@pytest.mark.usefixtures("acting")
def test_new_text_with_stale_variables_is_rejected() -> None:
    template = Template.new("g", dict(CONTRACT))
    with pytest.raises(InvalidError):
        template.change({"template": "Summarise {topic}", "variables": ["task_description"]})


@pytest.mark.parametrize("builtin", BUILTIN_TEMPLATES, ids=lambda b: b["name"])
def test_builtin_prompts_are_valid_and_ask_for_one_json_object(builtin: dict[str, str]) -> None:
    fields = Template.prepare(dict(builtin))
    assert "description" in fields["variables"]
    rendered = render(fields["template"], {"description": "D", "tools": []})
    assert "ONE JSON object" in rendered and '"name"' in rendered
    assert "{{" not in rendered


@given(st.text())
def test_escaped_text_renders_back_to_itself(text: str) -> None:
    assert placeholders(escape(text)) == []
    assert render(escape(text), {}) == text


@given(segments, st.dictionaries(names, st.text()))
def test_rendering_concatenates_literals_and_values(parts: list[tuple[str, str]], values: dict[str, str]) -> None:
    template = "".join(escape(v) if kind == "text" else "{" + v + "}" for kind, v in parts)
    used = [v for kind, v in parts if kind == "var"]
    values = {**{name: f"<{name}>" for name in used}, **values}
    expected = "".join(v if kind == "text" else values[v] for kind, v in parts)
    assert placeholders(template) == list(dict.fromkeys(used))
    assert render(template, values) == expected
