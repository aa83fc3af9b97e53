"""Whatever a client sends, the answer is a deliberate status with a JSON body, never a 500
(issue §4); request ids tie each response to the events it wrote."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from litestar import get
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.core import Feature
from interface.http.agents import AgentsFeature

pytestmark = pytest.mark.anyio

AGENT = {"role": "Researcher", "goal": "Find facts", "backstory": "Curious"}
JSON = {"content-type": "application/json"}


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert "detail" in body
    return body


async def test_malformed_json_is_422_json_invalid(client) -> None:
    body = assert_json_error(await client.post("/api/v1/agents", content=b'{"role": ', headers=JSON), 422)
    assert body["detail"][0]["type"] == "json_invalid"


async def test_a_wrong_type_is_422_naming_the_field(client) -> None:
    body = assert_json_error(await client.post("/api/v1/agents", json={**AGENT, "max_iter": "many"}), 422)
    assert body["detail"][0]["loc"] == ["body", "max_iter"]


async def test_a_json_array_instead_of_an_object_is_422(client) -> None:
    assert_json_error(await client.post("/api/v1/agents", json=[AGENT]), 422)


async def test_an_empty_body_is_422(client) -> None:
    assert_json_error(await client.post("/api/v1/agents", content=b"", headers=JSON), 422)


async def test_a_body_over_the_limit_is_413_with_a_json_body(client, settings) -> None:
    huge = b'{"role": "' + b"x" * settings.max_body_bytes + b'"}'
    body = assert_json_error(await client.post("/api/v1/agents", content=huge, headers=JSON), 413)
    assert body["type"] == "request_too_large"


async def test_an_unknown_enum_value_is_422(client) -> None:
    body = assert_json_error(await client.post("/api/v1/tokens", json={"role": "superuser"}), 422)
    assert body["detail"][0]["loc"] == ["body", "role"]


async def test_a_malformed_uuid_in_the_path_is_404_json(client) -> None:
    assert_json_error(await client.get("/api/v1/agents/not-a-uuid"), 404)
    assert_json_error(await client.delete("/api/v1/agents/123"), 404)


async def test_an_unknown_route_is_404_json(client) -> None:
    assert assert_json_error(await client.get("/api/v1/no-such-thing"), 404)["type"] == "not_found"


async def test_a_wrong_method_is_405_json(client) -> None:
    assert assert_json_error(await client.patch("/api/v1/agents", json=AGENT), 405)["type"] == "method_not_allowed"


async def test_an_out_of_range_page_size_is_a_client_error(client) -> None:
    response = await client.get("/api/v1/agents", params={"limit": 100_000})
    assert 400 <= response.status_code < 500 and "detail" in response.json()


async def test_nul_characters_are_refused_and_reads_keep_working(client) -> None:
    refused = await client.post("/api/v1/agents", json={**AGENT, "role": "a\u0000b"})
    assert_json_error(refused, 422)
    nested = await client.post("/api/v1/agents", json={**AGENT, "tool_configs": {"k\u0000": 1}})
    assert_json_error(nested, 422)
    assert_json_error(await client.get("/api/v1/agents", params={"name": "a\u0000"}), 422)

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
    optional={key: json_values for key in AGENT_FIELDS},
)
some_agent_keys = st.dictionaries(st.sampled_from(["role", "goal", "backstory", *AGENT_FIELDS]), json_values)
bodies = st.one_of(json_values, agent_like, some_agent_keys)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
async def test_any_json_body_gets_201_or_422_and_created_agents_are_readable(client, body) -> None:
    response = await client.post("/api/v1/agents", json=body)
    assert response.status_code in {201, 422}, response.text
    if response.status_code == 201:
        assert (await client.get(f"/api/v1/agents/{response.json()['id']}")).status_code == 200


# -- unexpected errors ------------------------------------------------------------


@get("/api/v1/explode", summary="Fail on purpose", sync_to_thread=False)
def explode() -> None:
    """A route with a bug in it."""
    raise RuntimeError("secret internals: password=hunter2")


class ExplodingFeature(Feature):
    name = "exploding"

    def route_handlers(self) -> list[Any]:
        return [explode]


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
        app = create_app(settings, overrides={"features": [AgentsFeature, ExplodingFeature]})
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
