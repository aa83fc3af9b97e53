"""``If-Match`` through HTTP on every resource that takes it, for changes and deletes alike.

Each ``Write`` is one conditional request. A failed precondition answers 412
and leaves everything as it was (the resource and its list read the same
before and after); a precondition that holds lets the write through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from domain.tool import builtin_tool_id
from tests.contract import CONTRACT_AGENT

pytestmark = pytest.mark.anyio

API = "/api/v1"
TASK = {"name": "Research", "description": "Research {topic}", "expected_output": "Notes"}
AGENTS_YAML = {"writer": {"role": "Writer", "goal": "Write the {day} report", "backstory": "Diligent.",
                          "llm": "offline/echo"}}
TASKS_YAML = {"report": {"description": "Report for {day}", "expected_output": "A report", "agent": "writer"}}
BUILTIN_TEMPLATES = ("generate_agent", "generate_task", "generate_crew", "generate_job_name")


async def _created(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}/{path}", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _touched(client: Any, url: str, body: dict[str, Any]) -> str:
    """``url`` after one unconditional change, so version 1 is a real, stale version."""
    response = await client.put(url, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["version"] >= 2
    return url


async def agent(client: Any, n: int) -> str:
    made = await _created(client, "agents", {**CONTRACT_AGENT, "name": f"Agent {n}"})
    return await _touched(client, f"{API}/agents/{made['id']}", {"goal": "Touched"})


async def task(client: Any, n: int) -> str:
    made = await _created(client, "tasks", {**TASK, "name": f"Task {n}"})
    return await _touched(client, f"{API}/tasks/{made['id']}", {"expected_output": "Touched"})


async def crew(client: Any, n: int) -> str:
    made = await _created(client, "crews", {"name": f"Crew {n}"})
    return await _touched(client, f"{API}/crews/{made['id']}", {"description": "Touched"})


async def tool(client: Any, n: int) -> str:
    made = await _created(client, "tools", {"name": f"Ledger Tool {n}", "config": {"depth": 1}})
    return await _touched(client, f"{API}/tools/{made['id']}", {"description": "Touched"})


async def builtin_tool(client: Any, n: int) -> str:
    url = f"{API}/tools/{builtin_tool_id('SerperDevTool')}"
    response = await client.patch(f"{url}/toggle-enabled")
    assert response.status_code == 200, response.text
    return url


async def model(client: Any, n: int) -> str:
    await _created(client, "models", {"key": f"my-model-{n}", "name": "gpt-4o-mini", "provider": "openai"})
    return await _touched(client, f"{API}/models/my-model-{n}", {"temperature": 0.2})


async def builtin_model(client: Any, n: int) -> str:
    response = await client.patch(f"{API}/models/gpt-4o/toggle")
    assert response.status_code == 200, response.text
    return f"{API}/models/gpt-4o"


async def api_key(client: Any, n: int) -> str:
    made = await _created(client, "api-keys", {"name": f"KEY_{n}", "service": "openai", "key": "sk-test-1"})
    return await _touched(client, f"{API}/api-keys/{made['id']}", {"description": "Touched"})


async def template(client: Any, n: int) -> str:
    made = await _created(client, "templates", {"name": f"Template {n}", "template": "Hello {who}"})
    return await _touched(client, f"{API}/templates/{made['id']}", {"description": "Touched"})


async def builtin_template(client: Any, n: int) -> str:
    """A different built-in each time: changing one gives the group its own copy, once."""
    response = await client.get(f"{API}/templates/by-name/{BUILTIN_TEMPLATES[n]}")
    assert response.status_code == 200 and response.json()["built_in"], response.text
    return f"{API}/templates/{response.json()['id']}"


async def schedule(client: Any, n: int) -> str:
    made = await _created(client, "crews", {"name": f"Scheduled {n}", "agents_yaml": AGENTS_YAML,
                                            "tasks_yaml": TASKS_YAML})
    body = {"name": f"Daily {n}", "cron_expression": "0 9 * * *", "crew_id": made["id"], "inputs": {"day": "today"}}
    made = await _created(client, "scheduler/schedules", body)
    return await _touched(client, f"{API}/scheduler/schedules/{made['id']}", {"name": f"Daily {n} touched"})


async def schedule_alias(client: Any, n: int) -> str:
    return (await schedule(client, n)).replace("/scheduler/schedules/", "/schedules/")


@dataclass(frozen=True)
class Write:
    """One conditional request: ``method`` on the resource's URL plus ``suffix``, with ``body(n)``."""

    make: Callable[[Any, int], Awaitable[str]]
    method: str
    suffix: str = ""
    body: Callable[[int], dict[str, Any]] | None = None

    def __str__(self) -> str:
        return f"{self.make.__name__}-{self.method}{self.suffix}"

    async def send(self, client: Any, url: str, if_match: str, n: int = 0) -> Any:
        body = {} if self.body is None else {"json": self.body(n)}
        return await client.request(self.method, f"{url}{self.suffix}", headers={"If-Match": if_match}, **body)


WRITES = [
    Write(agent, "PUT", body=lambda n: {"goal": f"Changed {n}"}),
    Write(agent, "DELETE"),
    Write(task, "PUT", body=lambda n: {"description": f"Changed {n}"}),
    Write(task, "PUT", "/full", body=lambda n: {**TASK, "name": f"Replaced {n}"}),
    Write(task, "DELETE"),
    Write(crew, "PUT", body=lambda n: {"description": f"Changed {n}"}),
    Write(crew, "DELETE"),
    Write(tool, "PUT", body=lambda n: {"description": f"Changed {n}"}),
    Write(tool, "PATCH", "/toggle-enabled"),
    Write(tool, "DELETE"),
    Write(builtin_tool, "PUT", body=lambda n: {"config": {"n_results": n + 3}}),
    Write(builtin_tool, "PATCH", "/toggle-enabled"),
    Write(model, "PUT", body=lambda n: {"temperature": 0.5 + n / 10}),
    Write(model, "PATCH", "/toggle"),
    Write(model, "DELETE"),
    Write(builtin_model, "PUT", body=lambda n: {"temperature": 0.5 + n / 10}),
    Write(builtin_model, "PATCH", "/toggle"),
    Write(api_key, "PUT", body=lambda n: {"description": f"Changed {n}"}),
    Write(api_key, "DELETE"),
    Write(template, "PUT", body=lambda n: {"description": f"Changed {n}"}),
    Write(template, "DELETE"),
    Write(builtin_template, "PUT", body=lambda n: {"description": f"Changed {n}"}),
    Write(schedule, "PUT", body=lambda n: {"name": f"Changed {n}"}),
    Write(schedule, "PATCH", "/toggle"),
    Write(schedule, "DELETE"),
    Write(schedule_alias, "POST", "/toggle"),
]


async def _snapshot(client: Any, url: str) -> tuple[Any, Any]:
    """The resource (status and body) and the first page of its list, as the group sees them."""
    item = await client.get(url)
    listing = await client.get(url.rsplit("/", 1)[0], params={"limit": 100})
    assert listing.status_code == 200, listing.text
    return (item.status_code, item.json()), listing.json()


async def _version(client: Any, url: str) -> int:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{response.json()["version"]}"'
    return int(response.json()["version"])


def _failing(version: int) -> list[str]:
    """If-Match values that cannot match ``version``: other versions, and tags that are no version."""
    other = version - 1 if version > 1 else version + 1
    return [f'"{other}"', f'W/"{other}"', str(other), f'"{other}", "{version + 5}"',
            '"abc"', 'W/"x"', "1.5", '""', "", f'"{version}.0"', f'"0{version}"']


def _holding(version: int) -> list[str]:
    """If-Match values that match ``version`` (as many as there are built-in templates to change)."""
    return [f'"{version}"', f'W/"{version}"', "*", f'"{version + 5}", {version}']


@pytest.mark.parametrize("write", WRITES, ids=str)
async def test_a_failed_precondition_is_412_and_changes_nothing(client: Any, write: Write) -> None:
    url = await write.make(client, 0)
    before = await _snapshot(client, url)
    for if_match in _failing(await _version(client, url)):
        response = await write.send(client, url, if_match)
        assert response.status_code == 412, (if_match, response.text)
        assert response.json()["type"] == "precondition_failed"
        assert await _snapshot(client, url) == before, if_match


@pytest.mark.parametrize("write", WRITES, ids=str)
async def test_a_precondition_that_holds_lets_the_write_through(client: Any, write: Write) -> None:
    for n in range(len(BUILTIN_TEMPLATES)):
        url = await write.make(client, n)
        if_match = _holding(await _version(client, url))[n]
        before = await _snapshot(client, url)
        response = await write.send(client, url, if_match, n)
        assert response.status_code in (200, 204), (if_match, response.text)
        assert await _snapshot(client, url) != before, if_match
