"""Templates through HTTP on PostgreSQL: the contract body, rendering, and built-in overrides."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from domain.errors import NotFoundError
from interface.app import create_app
from interface.wiring import wire
from projections.templates import TemplateView

pytestmark = pytest.mark.anyio

CONTRACT_TEMPLATE = {
    "name": "Research Agent Template",
    "template": "You are a research agent. Your task is to {task_description}. Please provide {expected_output}.",
    "variables": ["task_description", "expected_output"],
}
BUILTINS = {"generate_agent", "generate_task", "generate_crew", "generate_job_name"}
OTHER = {"X-Group-Id": "other"}


async def _all(client, headers: dict[str, str] | None = None) -> list[dict]:
    return (await client.get("/api/v1/templates", params={"limit": 100}, headers=headers or {})).json()["items"]


async def _builtin(client, name: str) -> dict:
    return next(t for t in await _all(client) if t["name"] == name and t["built_in"])


def _templates(client) -> TemplateView:
    return client.app.state.kasal.views.templates


async def test_creating_the_contract_template_answers_201_with_its_variables(client) -> None:
    response = await client.post("/api/v1/templates", json=CONTRACT_TEMPLATE)
    assert response.status_code == 201, response.text
    template = response.json()
    assert response.headers["location"] == f"/api/v1/templates/{template['id']}"
    assert template["variables"] == ["task_description", "expected_output"]
    assert template["is_active"] is True and template["built_in"] is False and template["group_id"] == "local"
    fetched = await client.get(f"/api/v1/templates/{template['id']}")
    assert fetched.json()["template"] == CONTRACT_TEMPLATE["template"]


async def test_rendering_fills_the_placeholders(client) -> None:
    created = (await client.post("/api/v1/templates", json=CONTRACT_TEMPLATE)).json()
    variables = {"task_description": "find recent papers", "expected_output": "a short list"}
    response = await client.post(f"/api/v1/templates/{created['id']}/render", json={"variables": variables})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "rendered": "You are a research agent. Your task is to find recent papers. Please provide a short list."
    }


async def test_rendering_with_missing_variables_is_422_naming_them(client) -> None:
    created = (await client.post("/api/v1/templates", json=CONTRACT_TEMPLATE)).json()
    response = await client.post(
        f"/api/v1/templates/{created['id']}/render", json={"variables": {"task_description": "x"}}
    )
    assert response.status_code == 422
    assert "expected_output" in response.json()["detail"]


async def test_variables_that_do_not_match_the_placeholders_are_422_listing_both_kinds(client) -> None:
    body = {**CONTRACT_TEMPLATE, "variables": ["task_description", "audience"]}
    response = await client.post("/api/v1/templates", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "missing: expected_output" in detail and "unused: audience" in detail


async def test_doubled_braces_are_literal(client) -> None:
    body = {"name": "json", "template": 'Reply as {{"answer": "{topic}"}}'}
    created = (await client.post("/api/v1/templates", json=body)).json()
    assert created["variables"] == ["topic"]
    rendered = await client.post(f"/api/v1/templates/{created['id']}/render", json={"variables": {"topic": "t"}})
    assert rendered.json()["rendered"] == 'Reply as {"answer": "t"}'


async def test_a_stray_brace_is_422(client) -> None:
    response = await client.post("/api/v1/templates", json={"name": "bad", "template": 'Reply as {"a": 1}'})
    assert response.status_code == 422 and "{{" in response.json()["detail"]


async def test_duplicate_names_in_a_group_are_409(client) -> None:
    assert (await client.post("/api/v1/templates", json=CONTRACT_TEMPLATE)).status_code == 201
    again = await client.post("/api/v1/templates", json={**CONTRACT_TEMPLATE, "name": "research agent template"})
    assert again.status_code == 409
    assert (await client.post("/api/v1/templates", json=CONTRACT_TEMPLATE, headers=OTHER)).status_code == 201


async def test_update_with_new_text_re_reads_the_variables(client) -> None:
    created = (await client.post("/api/v1/templates", json=CONTRACT_TEMPLATE)).json()
    response = await client.put(f"/api/v1/templates/{created['id']}", json={"template": "Summarise {topic}"})
    assert response.status_code == 200, response.text
    assert response.json()["variables"] == ["topic"] and response.json()["version"] == 2


async def test_every_group_sees_the_builtins(client) -> None:
    for headers in ({}, OTHER):
        seen = {t["name"] for t in await _all(client, headers) if t["built_in"]}
        assert seen == BUILTINS
    agent = await _builtin(client, "generate_agent")
    assert agent["group_id"] == "system" and agent["variables"] == ["description", "tools"]


async def test_a_groups_template_overrides_the_builtin_only_for_that_group(client) -> None:
    body = {"name": "generate_agent", "template": "Make an agent for {description} as JSON {{}}"}
    own = await client.post("/api/v1/templates", json=body)
    assert own.status_code == 201, own.text
    mine = [t for t in await _all(client) if t["name"] == "generate_agent"]
    theirs = [t for t in await _all(client, OTHER) if t["name"] == "generate_agent"]
    assert [(t["id"], t["built_in"]) for t in mine] == [(own.json()["id"], False)]
    assert [t["built_in"] for t in theirs] == [True]
    assert await _templates(client).template_for("local", "generate_agent") == body["template"]
    assert "ONE JSON object" in await _templates(client).template_for("other", "generate_agent")


async def test_editing_a_builtin_creates_the_groups_own_version(client) -> None:
    builtin = await _builtin(client, "generate_job_name")
    response = await client.put(f"/api/v1/templates/{builtin['id']}", json={"template": "Name it: {description}"})
    assert response.status_code == 200, response.text
    own = response.json()
    assert own["id"] != builtin["id"] and own["group_id"] == "local" and own["name"] == "generate_job_name"
    assert own["variables"] == ["description"] and own["description"] == builtin["description"]
    untouched = (await client.get(f"/api/v1/templates/{builtin['id']}", headers=OTHER)).json()
    assert untouched["template"] == builtin["template"] and untouched["version"] == builtin["version"]


async def test_builtins_cannot_be_deleted_but_deleting_an_override_restores_them(client) -> None:
    builtin = await _builtin(client, "generate_task")
    assert (await client.delete(f"/api/v1/templates/{builtin['id']}")).status_code == 403
    own = (await client.put(f"/api/v1/templates/{builtin['id']}", json={"description": "ours"})).json()
    assert (await client.delete(f"/api/v1/templates/{own['id']}")).status_code == 204
    assert [t["id"] for t in await _all(client) if t["name"] == "generate_task"] == [builtin["id"]]


async def test_an_inactive_override_gives_generation_the_builtin_back(client) -> None:
    body = {"name": "generate_crew", "template": "Crew for {description}", "is_active": False}
    assert (await client.post("/api/v1/templates", json=body)).status_code == 201
    assert "ONE JSON object" in await _templates(client).template_for("local", "generate_crew")
    by_name = (await client.get("/api/v1/templates/by-name/generate_crew")).json()
    assert by_name["template"] == "Crew for {description}" and by_name["is_active"] is False


async def test_render_template_fills_the_effective_template(client) -> None:
    rendered = await _templates(client).render_template(
        "local", "generate_job_name", {"description": "weekly sales report", "tools": []}
    )
    assert "weekly sales report" in rendered and '{"name": "the run name"}' in rendered
    with pytest.raises(NotFoundError):
        await _templates(client).template_for("local", "no_such_template")


async def test_another_groups_template_is_404(client) -> None:
    created = (await client.post("/api/v1/templates", json=CONTRACT_TEMPLATE)).json()
    assert (await client.get(f"/api/v1/templates/{created['id']}", headers=OTHER)).status_code == 404
    changed = await client.put(f"/api/v1/templates/{created['id']}", json={"name": "x"}, headers=OTHER)
    assert changed.status_code == 404
    assert (await client.delete(f"/api/v1/templates/{created['id']}", headers=OTHER)).status_code == 404
    render = await client.post(f"/api/v1/templates/{created['id']}/render", json={"variables": {}}, headers=OTHER)
    assert render.status_code == 404


async def test_restarting_seeds_nothing_twice_and_keeps_group_edits(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings))) as first:
        builtin = await _builtin(first, "generate_agent")
        await first.put(f"/api/v1/templates/{builtin['id']}", json={"template": "Ours: {description}"})
        before = await _all(first)
    async with AsyncTestClient(app=create_app(wire(settings))) as second:
        after = await _all(second)
        assert after == before
        assert await _templates(second).template_for("local", "generate_agent") == "Ours: {description}"
        assert sorted(t["name"] for t in await _all(second, OTHER)) == sorted(BUILTINS)
