"""A schemathesis run over ``/api-openapi.json`` against a real server on a database of its own.

For every documented operation it sends a few deterministic examples, valid
and invalid, then follows the documented links (create, then read, change,
run and delete what was created). No answer may be a 5xx; every status code
and content type must be documented and every body must match its schema.
The server runs crews with the offline models, and its log must stay free of
tracebacks. The run is the schemathesis command line, as a developer would
start it, so its report is what a failure shows.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Databases
from tests.e2e.conftest import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXAMPLES_PER_OPERATION = 4
RUN_TIMEOUT_S = 240


@pytest.fixture
def fuzzed_server(databases: Databases, started_template: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(databases.create(template=started_template), tmp_path / "home")
    server.start()
    yield server
    server.stop()


def schemathesis_run(server: ServerProcess, workdir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/api-openapi.json",
        "--checks", CHECKS,
        "--phases", "fuzzing,stateful",
        "--mode", "all",
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "60",  # the first model call imports LiteLLM, slow on a busy machine
        "--no-color",
        # A live tail never ends by itself; tests/integration/test_audit_api.py covers it.
        "--exclude-path", "/api/v1/events/stream",
    ]
    # The working directory holds no schemathesis.toml, so only these options apply.
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def test_a_schemathesis_run_finds_nothing_and_the_log_has_no_traceback(fuzzed_server, tmp_path) -> None:
    run = schemathesis_run(fuzzed_server, tmp_path)
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    assert "passed" in run.stdout and "generated" in run.stdout
    log = fuzzed_server.log.read_text()
    assert "Traceback" not in log, log[max(0, log.index("Traceback") - 500):][:4000]
