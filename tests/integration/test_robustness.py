"""Whatever a client sends, the answer is the status the README documents with a JSON body in
its documented shape, never a 500; request ids tie each response to the events it wrote.

The README's promise: validation errors are 422 in pydantic's shape
(``{"detail": [{"type", "loc", "msg", "input"}, …]}``); domain errors are
``{"detail", "type", "errors"}``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import get
from litestar.testing import AsyncTestClient

from interface.app import ROUTE_HANDLERS, create_app
from interface.wiring import wire

pytestmark = pytest.mark.anyio

AGENT = {"role": "Researcher", "goal": "Find facts", "backstory": "Curious"}
JSON = {"content-type": "application/json"}


def assert_json(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def assert_validation_error(response: Any, loc: list[str] | None = None) -> list[dict[str, Any]]:
    """422 in pydantic's shape; with ``loc``, one of the errors is about that place."""
    detail = assert_json(response, 422)["detail"]
    assert isinstance(detail, list) and detail, detail
    for error in detail:
        assert {"type", "loc", "msg", "input"} <= error.keys(), error
        assert isinstance(error["type"], str) and error["type"], error
        assert isinstance(error["loc"], list) and error["loc"][0] in {"body", "query", "path", "header"}, error
        assert isinstance(error["msg"], str) and error["msg"], error
    if loc is not None:
        assert loc in [error["loc"] for error in detail], detail
    return detail


def assert_domain_error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    """A domain error: ``{detail, type, errors}`` with a sentence, a stable type and a list."""
    body = assert_json(response, status)
    assert body.keys() == {"detail", "type", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["type"] == error_type and isinstance(body["errors"], list), body
    return body


async def test_malformed_json_is_422_json_invalid(client) -> None:
    detail = assert_validation_error(await client.post("/api/v1/agents", content=b'{"role": ', headers=JSON),
                                     ["body"])
    assert detail[0]["type"] == "json_invalid"


async def test_a_wrong_type_is_422_naming_the_field(client) -> None:
    assert_validation_error(await client.post("/api/v1/agents", json={**AGENT, "max_iter": "many"}),
                            ["body", "max_iter"])


async def test_a_json_array_instead_of_an_object_is_422(client) -> None:
    assert_validation_error(await client.post("/api/v1/agents", json=[AGENT]), ["body"])


async def test_an_empty_body_is_422(client) -> None:
    assert_validation_error(await client.post("/api/v1/agents", content=b"", headers=JSON), ["body"])


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/agents"), ("PUT", "/api/v1/tasks/00000000-0000-4000-8000-000000000001"),
    ("POST", "/api/v1/crews"),
    ("POST", "/api/v1/executions"), ("POST", "/api/v1/scheduler/schedules"), ("POST", "/api/v1/tokens"),
])
@pytest.mark.parametrize("headers", [JSON, {}], ids=["json", "no-content-type"])
async def test_an_empty_body_says_the_body_is_required(client, method, path, headers) -> None:
    response = await client.request(method, path, content=b"", headers=headers)
    assert assert_json(response, 422)["detail"] == [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]


async def test_a_body_over_the_limit_is_413_with_a_json_body(client, settings) -> None:
    huge = b'{"role": "' + b"x" * settings.max_body_bytes + b'"}'
    assert_domain_error(await client.post("/api/v1/agents", content=huge, headers=JSON), 413, "request_too_large")


async def test_an_unknown_enum_value_is_422(client) -> None:
    assert_validation_error(await client.post("/api/v1/tokens", json={"role": "superuser"}), ["body", "role"])


async def test_a_malformed_uuid_in_the_path_is_404_json(client) -> None:
    assert_domain_error(await client.get("/api/v1/agents/not-a-uuid"), 404, "not_found")
    assert_domain_error(await client.delete("/api/v1/agents/123"), 404, "not_found")


async def test_an_unknown_route_is_404_json(client) -> None:
    assert_domain_error(await client.get("/api/v1/no-such-thing"), 404, "not_found")


async def test_a_wrong_method_is_405_json(client) -> None:
    assert_domain_error(await client.patch("/api/v1/agents", json=AGENT), 405, "method_not_allowed")


@pytest.mark.parametrize(("params", "loc"), [
    ({"limit": 100_000}, ["query", "limit"]),
    ({"limit": 0}, ["query", "limit"]),
    ({"offset": -1}, ["query", "offset"]),
])
async def test_an_out_of_range_page_is_422_naming_the_parameter(client, params, loc) -> None:
    assert_validation_error(await client.get("/api/v1/agents", params=params), loc)


async def test_nul_characters_are_refused_and_reads_keep_working(client) -> None:
    assert_validation_error(await client.post("/api/v1/agents", json={**AGENT, "role": "a\u0000b"}))
    assert_validation_error(await client.post("/api/v1/agents", json={**AGENT, "tool_configs": {"k\u0000": 1}}))
    assert_validation_error(await client.get("/api/v1/agents", params={"name": "a\u0000"}))

    created = await client.post("/api/v1/agents", json={**AGENT, "role": "a back\\slash \\u0000 text"})
    assert created.status_code == 201
    assert (await client.get("/api/v1/agents")).json()["total"] == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
AGENT_FIELDS = ["name", "llm", "tools", "tool_configs", "max_iter", "max_rpm", "max_execution_time", "verbose",
                "allow_delegation", "temperature", "function_calling_llm", "max_retry_limit", "allow_code_execution"]
agent_like = st.fixed_dictionaries(
    {key: st.text(min_size=1, max_size=40) for key in ("role", "goal", "backstory")},
    optional=dict.fromkeys(AGENT_FIELDS, json_values),
)
some_agent_keys = st.dictionaries(st.sampled_from(["role", "goal", "backstory", *AGENT_FIELDS]), json_values)
bodies = st.one_of(json_values, agent_like, some_agent_keys)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
@example(body={"role": "R", "goal": "G", "backstory": " "})  # blank text is missing text: a validation error
@example(body={"role": "\u2003", "goal": "G", "backstory": "B"})
async def test_any_json_body_gets_201_or_422_and_created_agents_are_readable(client, body) -> None:
    response = await client.post("/api/v1/agents", json=body)
    assert response.status_code in {201, 422}, response.text
    if response.status_code == 422:
        assert_validation_error(response)
    else:
        assert (await client.get(f"/api/v1/agents/{response.json()['id']}")).status_code == 200


# -- unexpected errors ------------------------------------------------------------


@get("/api/v1/explode", summary="Fail on purpose", sync_to_thread=False)
def explode() -> None:
    """A route with a bug in it."""
    raise RuntimeError("secret internals: password=hunter2")


class Remembered(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_an_unexpected_error_is_500_without_internals_and_logged_with_traceback(settings) -> None:
    # On the service's own logger: Litestar reconfigures the root logger at start-up.
    server_log, remembered = logging.getLogger("kasal.http"), Remembered()
    server_log.addHandler(remembered)
    try:
        app = create_app(wire(settings), route_handlers=[*ROUTE_HANDLERS, explode])
        async with AsyncTestClient(app=app) as client:
            response = await client.get("/api/v1/explode")
    finally:
        server_log.removeHandler(remembered)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "hunter2" not in response.text and "Traceback" not in response.text
    logged = [r for r in remembered.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert logged and "hunter2" in str(logged[0].exc_info[1])


# -- request ids --------------------------------------------------------------------


def correlation_ids(client: AsyncTestClient[Any], aggregate_id: str) -> set[str]:
    store = client.app.state.kasal.store
    return {event.correlation_id for event in store.events.get(uuid.UUID(aggregate_id))}


async def test_a_given_request_id_is_echoed_and_recorded_on_the_events(client) -> None:
    response = await client.post("/api/v1/agents", json=AGENT, headers={"X-Request-ID": "req-2024.abc:1"})
    assert response.headers["x-request-id"] == "req-2024.abc:1"
    assert correlation_ids(client, response.json()["id"]) == {"req-2024.abc:1"}


async def test_a_request_id_is_generated_when_none_is_given(client) -> None:
    first = await client.post("/api/v1/agents", json=AGENT)
    second = await client.post("/api/v1/agents", json=AGENT)
    generated = first.headers["x-request-id"]
    assert generated and generated != second.headers["x-request-id"]
    assert correlation_ids(client, first.json()["id"]) == {generated}


async def test_an_unusable_request_id_is_replaced_not_echoed(client) -> None:
    response = await client.get("/api/v1/agents", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
