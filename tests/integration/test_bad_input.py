"""Absurd input is refused at the edge with a 4xx in pydantic's shape, before any query or
recursive code runs, and it leaves no traceback in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from interface.http.common import MAX_OFFSET
from interface.http.input_rules import MAX_JSON_DEPTH
from tests.integration.execution_runs import INLINE
from tests.integration.test_execution_streams import finished_execution, parse_sse

pytestmark = pytest.mark.anyio

AGENT = {"role": "Researcher", "goal": "Find facts", "backstory": "Curious"}
JSON = {"content-type": "application/json"}


async def paginated_lists(client: Any) -> list[str]:
    """Every list that takes ``offset``, as the OpenAPI document names them (ids filled in)."""
    document = (await client.get("/api-openapi.json")).json()
    lists = [path for path, item in document["paths"].items()
             if any(p["name"] == "offset" for p in item.get("get", {}).get("parameters", []))]
    assert len(lists) >= 16
    return lists


def concrete(path: str, execution_id: str) -> str:
    return path.replace("{execution_id}", execution_id).replace("{resource_id}", execution_id)


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def server_log() -> Iterator[list[logging.LogRecord]]:
    """What the service and Litestar log meanwhile (Litestar reconfigures the root logger)."""
    recorded = Recorded()
    loggers = [logging.getLogger(name) for name in ("kasal", "litestar")]
    for logger in loggers:
        logger.addHandler(recorded)
    try:
        yield recorded.records
    finally:
        for logger in loggers:
            logger.removeHandler(recorded)


def nested_object(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(min_value=MAX_OFFSET + 1) | st.integers(max_value=-1), index=st.integers(min_value=0))
async def test_an_offset_out_of_range_is_422_on_every_paginated_list(client, offset, index) -> None:
    lists = await paginated_lists(client)
    path = concrete(lists[index % len(lists)], "00000000-0000-4000-8000-000000000000")
    response = await client.get(path, params={"offset": str(offset)})
    assert response.status_code == 422, (path, response.text)
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


async def test_the_largest_offset_is_answered_on_every_paginated_list(client) -> None:
    execution_id, _ = await finished_execution(client, 1)
    for path in await paginated_lists(client):
        if "{resource_id}" in path:
            continue  # a resource's versions need a resource of that kind: test_versions_api.py pages them
        response = await client.get(concrete(path, execution_id), params={"offset": MAX_OFFSET})
        assert response.status_code == 200, (path, response.text)


async def test_a_body_nested_thousands_deep_is_422_and_logs_no_traceback(client) -> None:
    with server_log() as records:
        for path in ("/api/v1/agents", "/api/v1/executions", "/api/v1/crews"):
            response = await client.post(path, content=b"[" * 3000 + b"]" * 3000, headers=JSON)
            assert response.status_code == 422, response.text
            (issue,) = response.json()["detail"]
            assert issue["loc"] == ["body"] and f"deeper than {MAX_JSON_DEPTH} levels" in issue["msg"]
    assert [r for r in records if r.exc_info or r.levelno >= logging.WARNING] == []
    refusals = [r.getMessage() for r in records if r.name == "kasal.http"]
    assert len(refusals) == 3 and all("deeper than" in line and "\n" not in line for line in refusals)


async def test_execution_inputs_nested_past_the_limit_are_refused_before_the_domain_sees_them(client) -> None:
    with server_log() as records:
        response = await client.post("/api/v1/executions", json={**INLINE, "inputs": {"topic": nested_object(500)}})
    assert response.status_code == 422, response.text
    assert f"deeper than {MAX_JSON_DEPTH} levels" in response.json()["detail"][0]["msg"]
    assert [r for r in records if r.exc_info] == []
    assert (await client.get("/api/v1/executions")).json()["total"] == 0


async def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_is_not(client) -> None:
    deepest = nested_object(MAX_JSON_DEPTH - 1)  # the agent object itself is the first level
    at_limit = await client.post("/api/v1/agents", json={**AGENT, "tools": ["a"], "tool_configs": deepest})
    assert at_limit.status_code == 201, at_limit.text
    assert (await client.get(f"/api/v1/agents/{at_limit.json()['id']}")).json()["tool_configs"] == deepest
    too_deep = nested_object(MAX_JSON_DEPTH)
    past = await client.post("/api/v1/agents", json={**AGENT, "tools": ["a"], "tool_configs": too_deep})
    assert past.status_code == 422


async def test_the_websocket_path_streams_server_sent_events_to_a_plain_get(client) -> None:
    execution_id, runner = await finished_execution(client, 2)
    path = f"/api/v1/execution-logs/{execution_id}/stream"
    response = await client.get(path, headers={**runner.fresh(), "Accept": "text/event-stream"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [(e["event"], e.get("id")) for e in parse_sse(response.text)]
    assert events == [("log", "1"), ("log", "2"), ("status", None)]
