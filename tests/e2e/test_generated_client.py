"""A Python client generated from the live ``/api-openapi.json`` works, as the README shows it.

``openapi-python-client`` builds the client into a temporary folder (nothing
generated is kept); generation must print no warning (a warning means an
operation or an answer it could not model, and left out). The client then
creates an agent, finds it in the list, runs a crew on the offline model and
reads the run's logs, against a real ``kasal serve``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.e2e.conftest import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]

PACKAGE = "kasal_client"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def generate(server: ServerProcess, folder: Path) -> subprocess.CompletedProcess[str]:
    """The command the README gives, with the test's Python; its post-hooks find ruff beside it."""
    command = [sys.executable, "-m", "openapi_python_client", "generate",
               "--url", f"{server.base_url}/api-openapi.json", "--output-path", str(folder / PACKAGE), "--meta", "none"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=90)


@pytest.fixture
def generated(server: ServerProcess, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated package, imported; forgotten again afterwards."""
    run = generate(server, tmp_path)
    printed = run.stdout + run.stderr
    assert run.returncode == 0, printed
    assert "warning" not in printed.lower(), printed
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def api(tag: str, operation: str) -> Any:
    """One generated operation module: ``api/<tag>/<operation id, snake case>.py``."""
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")


def test_a_generated_client_creates_an_agent_runs_a_crew_and_reads_its_logs(server, generated) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    create_agent, list_agents = api("agents", "api_v1_agents_create"), api("agents", "api_v1_agents_list_agents")
    create_task, create_crew = api("tasks", "api_v1_tasks_create"), api("crews", "api_v1_crews_create")
    create_execution = api("executions", "api_v1_executions_create")
    get_execution = api("executions", "api_v1_executions_execution_id_get_execution")
    list_logs = api("execution_logs", "api_v1_execution_logs_execution_id_list_logs")

    with generated.Client(base_url=server.base_url, raise_on_unexpected_status=True) as client:
        agent = create_agent.sync(client=client, body=models.AgentCreate(
            name="Scribe", role="Scribe", goal="Write about {topic}", backstory="Careful", llm="offline/echo"))
        assert isinstance(agent, models.AgentRead), agent
        page = list_agents.sync(client=client)
        assert isinstance(page, models.AgentPage) and [a.id for a in page.items] == [agent.id]

        task = create_task.sync(client=client, body=models.TaskCreate(
            name="Note", description="Write one line about {topic}", expected_output="One line", agent="scribe"))
        crew = create_crew.sync(client=client, body=models.CrewCreate(
            name="Generated", agent_ids=[agent.id], task_ids=[task.id]))
        assert isinstance(crew, models.CrewRead), crew

        # A body the server refuses comes back as the documented error model, not as an exception.
        refused = create_execution.sync(client=client, body=models.ExecutionCreate())
        assert isinstance(refused, models.ErrorBody) and refused.type_ == "validation_error", refused

        inputs = models.ExecutionCreateInputsType0.from_dict({"topic": "event sourcing"})
        accepted = create_execution.sync(client=client, body=models.ExecutionCreate(crew_id=crew.id, inputs=inputs))
        assert isinstance(accepted, models.ExecutionAccepted), accepted
        deadline = time.monotonic() + 60
        while (run := get_execution.sync(accepted.execution_id, client=client)).status not in TERMINAL:
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
        assert run.status == "COMPLETED", run

        lines = list_logs.sync(accepted.execution_id, client=client)
        assert isinstance(lines, models.LogPage) and lines.items, lines
        assert [line.seq for line in lines.items] == sorted(line.seq for line in lines.items)
