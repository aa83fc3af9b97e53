"""References by id never cross groups: another group's id is as unknown as one that never existed.

Group A has an agent, a task and a crew. Group B writes crews, tasks and
schedules that name them by id: each write is 422 (nothing stored), and its
answer is the very one an id that exists nowhere gets, so B learns nothing
about A. The same writes naming B's own ids succeed, so it is the group that
decides, not the id's shape. A's resources themselves stay 404 to B.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest

from tests.contract import CONTRACT_AGENT

pytestmark = pytest.mark.anyio

API = "/api/v1"
A, B = {"X-Group-Id": "group-a"}, {"X-Group-Id": "group-b"}
TASK = {"name": "Research", "description": "Research {day}", "expected_output": "Notes"}
AGENTS_YAML = {"writer": {"role": "Writer", "goal": "Write the {day} report", "backstory": "Diligent.",
                          "llm": "offline/echo"}}
TASKS_YAML = {"report": {"description": "Report for {day}", "expected_output": "A report", "agent": "writer"}}


@dataclass(frozen=True)
class Refs:
    """Ids a write may name: an agent, a task and a (runnable) crew."""

    agent: str
    task: str
    crew: str

    def placeholders(self, text: str) -> str:
        return text.replace(self.agent, "<agent>").replace(self.task, "<task>").replace(self.crew, "<crew>")


async def _created(client: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    response = await client.post(f"{API}/{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _refs(client: Any, headers: dict[str, str]) -> Refs:
    return Refs(
        agent=await _created(client, "agents", CONTRACT_AGENT, headers),
        task=await _created(client, "tasks", TASK, headers),
        crew=await _created(client, "crews", {"name": "Reporting", "agents_yaml": AGENTS_YAML,
                                              "tasks_yaml": TASKS_YAML}, headers),
    )


Write = Callable[[Any, Refs, Refs], Awaitable[Any]]
"""A write of group B's (``mine`` are B's ids) that names ``ref``'s ids; answers the response."""


def _post(path: str, body: Callable[[Refs, Refs], dict[str, Any]]) -> Write:
    async def write(client: Any, mine: Refs, ref: Refs) -> Any:
        return await client.post(f"{API}/{path}", json=body(mine, ref), headers=B)

    return write


def _put(path: Callable[[Refs], str], body: Callable[[Refs, Refs], dict[str, Any]]) -> Write:
    async def write(client: Any, mine: Refs, ref: Refs) -> Any:
        return await client.put(f"{API}/{path(mine)}", json=body(mine, ref), headers=B)

    return write


SCHEDULE = {"name": "Daily", "cron_expression": "0 9 * * *", "inputs": {"day": "today"}}
WRITES: dict[str, tuple[Write, str]] = {
    "crew-create-agent_ids": (_post("crews", lambda m, r: {"name": "New", "agent_ids": [m.agent, r.agent]}),
                              "agent_ids[1]"),
    "crew-create-task_ids": (_post("crews", lambda m, r: {"name": "New", "task_ids": [r.task]}), "task_ids[0]"),
    "crew-update-agent_ids": (_put(lambda m: f"crews/{m.crew}", lambda m, r: {"agent_ids": [r.agent]}),
                              "agent_ids[0]"),
    "crew-update-task_ids": (_put(lambda m: f"crews/{m.crew}", lambda m, r: {"task_ids": [m.task, r.task]}),
                             "task_ids[1]"),
    "task-create-agent_id": (_post("tasks", lambda m, r: {**TASK, "agent_id": r.agent}), "agent_id"),
    "task-create-agent": (_post("tasks", lambda m, r: {**TASK, "agent": r.agent}), "agent"),
    "task-create-context": (_post("tasks", lambda m, r: {**TASK, "context": ["research", r.task]}), "context[1]"),
    "task-update-agent_id": (_put(lambda m: f"tasks/{m.task}", lambda m, r: {"agent_id": r.agent}), "agent_id"),
    "task-update-agent": (_put(lambda m: f"tasks/{m.task}", lambda m, r: {"agent": r.agent}), "agent"),
    "task-update-context": (_put(lambda m: f"tasks/{m.task}", lambda m, r: {"context": [r.task]}), "context[0]"),
    "task-replace-agent_id": (_put(lambda m: f"tasks/{m.task}/full", lambda m, r: {**TASK, "agent_id": r.agent}),
                              "agent_id"),
    "task-replace-context": (_put(lambda m: f"tasks/{m.task}/full", lambda m, r: {**TASK, "context": [r.task]}),
                             "context[0]"),
    "schedule-create-crew_id": (_post("scheduler/schedules", lambda m, r: {**SCHEDULE, "crew_id": r.crew}),
                                "crew_id"),
}


@pytest.fixture
async def groups(client: Any) -> tuple[Refs, Refs]:
    """A's ids and B's."""
    return await _refs(client, A), await _refs(client, B)


async def _everything_of_b(client: Any) -> list[Any]:
    pages = []
    for path in ("agents", "tasks", "crews", "scheduler/schedules"):
        response = await client.get(f"{API}/{path}", params={"limit": 100}, headers=B)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


@pytest.mark.parametrize("case", WRITES)
async def test_another_groups_id_is_422_exactly_like_an_id_that_exists_nowhere(
    client: Any, groups: tuple[Refs, Refs], case: str
) -> None:
    write, field = WRITES[case]
    theirs, mine = groups
    nowhere = Refs(agent=str(uuid4()), task=str(uuid4()), crew=str(uuid4()))
    before = await _everything_of_b(client)

    crossing = await write(client, mine, theirs)
    dangling = await write(client, mine, nowhere)

    assert crossing.status_code == 422, crossing.text
    assert [e["field"] for e in crossing.json()["errors"]] == [field]
    assert crossing.json()["type"] == "validation_error"
    assert theirs.placeholders(crossing.text) == nowhere.placeholders(dangling.text)
    assert await _everything_of_b(client) == before


@pytest.mark.parametrize("case", WRITES)
async def test_the_groups_own_ids_are_accepted(client: Any, groups: tuple[Refs, Refs], case: str) -> None:
    write, _ = WRITES[case]
    _, mine = groups
    response = await write(client, mine, mine)
    assert response.status_code in (200, 201), response.text


async def test_a_deleted_agents_id_is_unknown_too(client: Any, groups: tuple[Refs, Refs]) -> None:
    _, mine = groups
    assert (await client.delete(f"{API}/agents/{mine.agent}", headers=B)).status_code == 204
    response = await client.post(f"{API}/tasks", json={**TASK, "agent_id": mine.agent}, headers=B)
    assert response.status_code == 422, response.text


async def test_another_groups_task_and_crew_stay_404_whatever_the_body_or_precondition(
    client: Any, groups: tuple[Refs, Refs]
) -> None:
    theirs, _ = groups
    nowhere = str(uuid4())
    writes = [
        ("PUT", f"tasks/{theirs.task}", {"agent_id": nowhere, "context": [nowhere]}),
        ("PUT", f"tasks/{theirs.task}/full", {**TASK, "agent_id": nowhere}),
        ("PUT", f"crews/{theirs.crew}", {"agent_ids": [nowhere], "task_ids": [nowhere]}),
        ("DELETE", f"tasks/{theirs.task}", None),
        ("DELETE", f"crews/{theirs.crew}", None),
    ]
    for method, path, body in writes:
        for if_match in ({}, {"If-Match": '"abc"'}, {"If-Match": '"99"'}):
            response = await client.request(method, f"{API}/{path}", json=body, headers={**B, **if_match})
            assert response.status_code == 404, (method, path, if_match, response.text)
    for path in (f"tasks/{theirs.task}", f"crews/{theirs.crew}", f"agents/{theirs.agent}"):
        assert (await client.get(f"{API}/{path}", headers=B)).status_code == 404
        assert (await client.get(f"{API}/{path}", headers=A)).json()["version"] == 1
