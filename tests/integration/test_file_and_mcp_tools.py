"""File tools read only their group's directory; MCPTool runs an allowed stdio MCP server for one run.

Each test runs a crew through the HTTP API, the real runner and a crew child,
with the offline model asking for one tool step (``[use Tool: input]``), and
checks what the run's result, trace and log show. Files outside the group's
directory carry a secret that must never surface, whichever way a path tries
to reach it (absolute, ``../``, a symlink, the tool's configuration).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.crew_runtime import CrewRuntime
from interface.settings import Settings
from interface.tool_resolver import group_directory
from interface.wiring import wire
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]

GROUP = "local"  # the group of an anonymous caller in local auth mode
OTHER = {"X-Group-Id": "other-apiary"}
NOTES = "Plot 7 holds 41,000 bees and a queen named Beatrix."
SECRET = "secret-outside-the-group-dir-7f3a"
MCP_SERVER = Path(__file__).with_name("mcp_server_fixture.py")
MCP_REPLY = "plot 7 has 13 hives (counted by the stdio MCP fixture)"
OUTSIDE = "outside this group's files directory"
RUN_S = 120.0


async def _client(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[Any]:
    app = create_app(wire(settings.with_(run_workers=True), crew_runtime=runtime))
    async with AsyncTestClient(app=app, timeout=60) as client:
        yield client


@pytest.fixture
async def service(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[Any]:
    """A service whose operator allows this interpreter as a stdio MCP server command."""
    async for client in _client(settings.with_(mcp_stdio_commands=(sys.executable,)), runtime):
        yield client


@pytest.fixture
async def strict_service(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[Any]:
    """A service that allows no stdio MCP server command (the default)."""
    async for client in _client(settings, runtime):
        yield client


@pytest.fixture
def files(settings: Settings) -> Path:
    """The local group's files directory, holding ``hive-notes.txt``."""
    directory = settings.home / "files" / group_directory(GROUP)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hive-notes.txt").write_text(NOTES + "\n")
    return directory


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside every group's directory (beside the service's home)."""
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET + "\n")
    return path


def crew(tool: str, marker: str, *, step: str | None = None) -> dict[str, Any]:
    """A one-task crew with ``tool`` whose model asks for ``step`` (the tool itself by default) with ``marker``."""
    agent = {"role": "Bee Keeper", "goal": "Know the hives", "backstory": "Careful.", "llm": "offline/echo",
             "tools": [tool]}
    return {
        "agents_yaml": {"keeper": agent},
        "tasks_yaml": {"look": {"description": f"Check the records [use {step or tool}: {marker}]",
                                "expected_output": "One line", "agent": "keeper"}},
    }


class AsGroup:
    """A client whose requests are made as another group (``X-Group-Id``)."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    async def get(self, url: str, **kwargs: Any) -> Any:
        return await self.client.get(url, headers=self.headers, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Any:
        return await self.client.post(url, headers=self.headers, **kwargs)


async def run(client: Any, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The finished execution, and everything it recorded (execution, trace, log) as one text."""
    started = await client.post("/api/v1/executions", json=body)
    assert started.status_code in (200, 201, 202), started.text
    execution_id = started.json()["execution_id"]
    done = await wait_status(client, execution_id, TERMINAL, RUN_S)
    trace = (await client.get(f"/api/v1/execution-trace/{execution_id}")).json()
    logs = (await client.get(f"/api/v1/execution-logs/{execution_id}", params={"limit": 1000})).json()
    return done, json.dumps([done, trace, logs])


def tool_spans(recorded: str) -> list[dict[str, Any]]:
    """The trace's tool calls (crewai retries a call that raised, so a refusal shows up to three times)."""
    trace = json.loads(recorded)[1]
    return [span for span in trace["spans"] if span["type"] == "tool_usage"]


def refused(recorded: str) -> bool:
    """Whether the run's tool calls were all refused as reaching outside the group's directory."""
    spans = tool_spans(recorded)
    return bool(spans) and all(span["status"] == "failed" and OUTSIDE in span["attributes"]["error"]
                               for span in spans)


async def builtin_tool(client: Any, name: str) -> dict[str, Any]:
    tools: list[dict[str, Any]] = (await client.get("/api/v1/tools", params={"limit": 100})).json()["items"]
    (tool,) = [t for t in tools if t["name"] == name]
    return tool


async def configure(client: Any, name: str, config: dict[str, Any]) -> dict[str, Any]:
    tool = await builtin_tool(client, name)
    changed = await client.put(f"/api/v1/tools/{tool['id']}", json={"config": config})
    assert changed.status_code == 200, changed.text
    return dict(changed.json())


def mcp_config(command: str, pid_file: Path) -> dict[str, Any]:
    return {"server_type": "stdio", "command": command, "args": [str(MCP_SERVER), str(pid_file)]}


def ended(pid: int, timeout: float = 10) -> bool:
    """Whether process ``pid`` ends within ``timeout`` (the run's status is recorded while its crew
    process may still be exiting)."""
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return False
    return True


async def test_file_read_tool_reads_a_file_of_the_groups_directory(service, files) -> None:
    done, recorded = await run(service, crew("FileReadTool", "hive-notes.txt"))

    assert done["status"] == "COMPLETED", done
    assert NOTES in json.dumps(done["result"])
    assert [span["status"] for span in tool_spans(recorded)] == ["completed"]


@pytest.mark.parametrize("how", ["absolute", "dot-dot", "symlink"])
async def test_file_read_tool_refuses_paths_outside_the_groups_directory(service, files, secret, how) -> None:
    if how == "absolute":
        path = str(secret)
    elif how == "dot-dot":
        path = "../../../outside/secret.txt"
        assert (files / path).resolve() == secret  # the escape would reach the secret
    else:
        (files / "shortcut.txt").symlink_to(secret)
        path = "shortcut.txt"

    done, recorded = await run(service, crew("FileReadTool", path))

    assert SECRET not in recorded
    assert refused(recorded)
    assert done["status"] == "COMPLETED" and OUTSIDE in json.dumps(done["result"])  # the model was told why


async def test_a_configured_file_path_outside_the_directory_fails_the_run(service, files, secret) -> None:
    await configure(service, "FileReadTool", {"file_path": str(secret)})

    done, recorded = await run(service, crew("FileReadTool", ""))  # no argument: read the configured file

    assert done["status"] == "FAILED", done
    assert done["error"].startswith("tool 'FileReadTool': ") and OUTSIDE in done["error"]
    assert SECRET not in recorded


async def test_directory_read_tool_lists_the_groups_directory(service, files) -> None:
    (files / "plots").mkdir()
    (files / "plots" / "plot-7.csv").write_text("hives,13\n")

    done, recorded = await run(service, crew("DirectoryReadTool", "."))

    assert done["status"] == "COMPLETED", done
    result = json.dumps(done["result"])
    assert "hive-notes.txt" in result and "plot-7.csv" in result
    assert [span["status"] for span in tool_spans(recorded)] == ["completed"]


async def test_directory_read_tool_refuses_a_directory_outside(service, files, secret) -> None:
    done, recorded = await run(service, crew("DirectoryReadTool", str(secret.parent)))

    assert "secret.txt" not in recorded
    assert refused(recorded)
    assert OUTSIDE in json.dumps(done["result"])


async def test_another_group_cannot_read_the_first_groups_files(service, files) -> None:
    other = AsGroup(service, OTHER)

    by_name, by_name_recorded = await run(other, crew("FileReadTool", "hive-notes.txt"))
    by_path, by_path_recorded = await run(other, crew("FileReadTool", str(files / "hive-notes.txt")))

    assert NOTES not in by_name_recorded + by_path_recorded
    assert "not found" in json.dumps(by_name["result"]).lower()
    assert OUTSIDE in json.dumps(by_path["result"])


async def test_mcp_tool_runs_an_allowed_stdio_server_for_the_run_only(service, tmp_path) -> None:
    pid_file = tmp_path / "mcp-server.pid"
    tool = await configure(service, "MCPTool", mcp_config(sys.executable, pid_file))
    assert tool["available"] is True, tool

    done, recorded = await run(service, crew("MCPTool", "7", step="hive_count"))

    assert done["status"] == "COMPLETED", done
    assert MCP_REPLY in json.dumps(done["result"])
    (span,) = tool_spans(recorded)
    assert (span["status"], span["attributes"]["tool"]) == ("completed", "hive_count")
    assert ended(int(pid_file.read_text()))  # the server the run started is stopped with it


async def test_mcp_tool_with_a_command_the_operator_did_not_allow_is_refused(strict_service, tmp_path) -> None:
    pid_file = tmp_path / "mcp-server.pid"
    tool = await configure(strict_service, "MCPTool", mcp_config(sys.executable, pid_file))
    body = crew("MCPTool", "7")

    started = await strict_service.post("/api/v1/executions", json=body)
    debug = await strict_service.post("/api/v1/crews/debug", json=body)

    assert tool["available"] is False and "KASAL_MCP_STDIO_COMMANDS" in tool["unavailable_reason"]
    listed = await builtin_tool(strict_service, "MCPTool")
    assert listed["available"] is False and "KASAL_MCP_STDIO_COMMANDS" in listed["unavailable_reason"]
    assert started.status_code == 422 and "KASAL_MCP_STDIO_COMMANDS" in started.text
    assert debug.status_code == 200 and not debug.json()["valid"]
    assert any("KASAL_MCP_STDIO_COMMANDS" in error["message"] for error in debug.json()["errors"])
    assert not pid_file.exists()  # never started
