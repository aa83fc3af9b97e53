"""The runner with real crew children: every execution reaches its end, from a fresh start on.

The service is started fresh for each test (runner, real ``CrewRuntime``,
PostgreSQL) and driven over its HTTP API, as a user would right after
``kasal serve``. Each execution must be seen terminal before a deadline far
below the execution timeout (an hour), so a run left RUNNING fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.crew_runtime.runtime import CrewRuntime
from interface.wiring import wire
from tests.hostile_tools import EXIT_CODE, HostileToolFactory, end_orphan
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(240)]

CREW = {
    "agents_yaml": {"writer": {"role": "Writer", "goal": "Write about {topic}", "backstory": "Terse",
                               "llm": "offline/echo"}},
    "tasks_yaml": {"note": {"description": "Write one line about {topic}", "expected_output": "One line",
                            "agent": "writer"}},
    "inputs": {"topic": "stalls"},
}
FIRST_RUN_S = 120.0  # the first child waits until the forkserver has imported crewai
RUN_S = 30.0


async def test_fifty_executions_one_after_another_from_a_fresh_start_all_complete(settings) -> None:
    app = create_app(wire(settings.with_(run_workers=True)))
    async with AsyncTestClient(app=app, timeout=60) as client:
        statuses = []
        for n in range(50):
            started = (await client.post("/api/v1/executions", json=CREW)).json()
            done = await wait_status(client, started["execution_id"], TERMINAL, FIRST_RUN_S if n == 0 else RUN_S)
            statuses.append(done["status"])
    assert statuses == ["COMPLETED"] * 50


async def test_twenty_executions_at_once_from_a_fresh_start_all_complete(settings) -> None:
    app = create_app(wire(settings.with_(run_workers=True, max_concurrent_executions=20)))
    async with AsyncTestClient(app=app, timeout=60) as client:
        ids = [(await client.post("/api/v1/executions", json=CREW)).json()["execution_id"] for _ in range(20)]
        finished = [await wait_status(client, execution_id, TERMINAL, FIRST_RUN_S) for execution_id in ids]
    assert [body["status"] for body in finished] == ["COMPLETED"] * 20


async def test_a_crew_process_that_dies_without_an_outcome_fails_the_run_naming_its_exit_code(
    settings, tmp_path: Path,
) -> None:
    """The child exits with code 7 in the middle of its task while a process it forked still
    holds its pipe, so no EOF ever comes: the run ends FAILED all the same, within seconds."""
    orphan = tmp_path / "orphan.pid"
    runtime = CrewRuntime(tool_factory=HostileToolFactory(orphan_pid_file=orphan))
    crew = {
        "agents_yaml": {"clerk": {"role": "Clerk", "goal": "Compute", "backstory": "Careful",
                                  "llm": "offline/echo", "tools": ["calculator"]}},
        "tasks_yaml": {"sum": {"description": "Add [use calculator: 1+1]", "expected_output": "A number",
                               "agent": "clerk"}},
    }
    try:
        async with AsyncTestClient(app=create_app(wire(settings.with_(run_workers=True), crew_runtime=runtime)),
                                   timeout=60) as client:
            started = (await client.post("/api/v1/executions", json=crew)).json()
            assert started["status"] == "PENDING", started
            done = await wait_status(client, started["execution_id"], TERMINAL, FIRST_RUN_S)
            shown = (await client.get(f"/api/v1/executions/{started['execution_id']}")).json()
            logs = (await client.get(f"/api/v1/execution-logs/{started['execution_id']}")).json()["items"]
    finally:
        end_orphan(orphan)
    assert orphan.exists(), "the tool left no process holding the pipe, so this proves nothing"
    assert done["status"] == "FAILED"
    assert shown["error"] == f"crew process exited with code {EXIT_CODE} before reporting a result"
    assert any(line["message"].startswith("crew built") for line in logs)  # it died after some progress
