"""Any process layout keeps everything: two APIs that run no crews and two `kasal worker`
processes on one database, as docker-compose deploys them.

Secret inputs reach the crew a worker runs (the offline model's answer depends on every
character of its prompt), yet no event, read model, side table or process log holds them,
and their sealed row is gone once the run ends. A force-stop sent to the other API ends a
running crew on whichever worker holds it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from tests.e2e.conftest import ROOT, ServerProcess
from tests.integration.test_secrets_never_recorded import mentions

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
# Same length, so only the characters differ; unicode, as users send them.
FIRST, SECOND = "sk-e2e-Zürich-\u4e2d\u6587-0001-secret", "sk-e2e-Zürich-\u4e2d\u6587-0002-secret"
CALL = {
    "agents_yaml": {"caller": {"role": "Caller", "goal": "Call {service}", "backstory": "Terse",
                               "llm": "offline/echo"}},
    "tasks_yaml": {"call": {"description": "Call {service} using {api_key}", "expected_output": "A line",
                            "agent": "caller"}},
}
SLOW = {
    "agents_yaml": {"slow": {"role": "Plodder", "goal": "Plod through {service}", "backstory": "Slow",
                             "llm": "offline/slow"}},
    "tasks_yaml": {f"step{n}": {"description": f"Step {n} of {{service}}", "expected_output": "A line",
                                "agent": "slow"} for n in range(60)},
    "inputs": {"service": "billing", "api_key": FIRST},
}
DIGEST = re.compile(r"\(digest ([0-9a-f]{8})\)")


@pytest.fixture
def layout(database_url: str, tmp_path: Path) -> Iterator[tuple[list[ServerProcess], list[subprocess.Popen[bytes]]]]:
    # Small pools: four processes share one PostgreSQL server with the rest of the suite.
    env = {"KASAL_RUN_WORKERS": "false", "KASAL_LOG_LEVEL": "INFO", "KASAL_POOL_SIZE": "3"}
    apis = [ServerProcess(database_url, tmp_path / f"api{n}", env=env) for n in range(2)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(2):  # started first: their forkservers import crewai while the APIs start
            (tmp_path / f"worker{n}").mkdir()
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "interface.cli", "worker"], cwd=ROOT,
                env={**apis[0].env, "KASAL_HOME": str(tmp_path / f"worker{n}")},
                stdout=(tmp_path / f"worker{n}.log").open("wb"), stderr=subprocess.STDOUT,
            ))
        with ThreadPoolExecutor(len(apis)) as pool:  # side by side: each takes seconds
            list(pool.map(ServerProcess.start, apis))
        yield apis, workers
    finally:
        for worker in workers:
            worker.terminate()
        with ThreadPoolExecutor(len(apis) + len(workers)) as pool:
            list(pool.map(ServerProcess.stop, apis))
            list(pool.map(stop_worker, workers))


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)


def wait_terminal(http: httpx.Client, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = http.get(f"/api/v1/executions/{execution_id}").json()
        if body["status"] in TERMINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def llm_prompts(http: httpx.Client, execution_id: str) -> list[str]:
    """The prompts the crew's model calls recorded, whole (long ones are read from the content table)."""
    spans = http.get(f"/api/v1/execution-trace/{execution_id}").json()["spans"]
    prompts = []
    for span in spans:
        if span["type"] == "llm_call" and span["attributes"].get("prompt"):
            ref = span["attributes"]["prompt"]
            if ref.get("sha256"):
                ref = http.get(f"/api/v1/execution-trace/{execution_id}/content/{ref['sha256']}").json()
                prompts.append(ref["text"])
            else:
                prompts.append(ref["preview"])
    return prompts


def descendants(processes: list[subprocess.Popen[bytes]]) -> set[int]:
    found: set[int] = set()
    for process in processes:
        try:
            found |= {child.pid for child in psutil.Process(process.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            continue
    return found


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_secret_inputs_reach_crews_on_workers_and_a_force_stop_from_the_other_api_ends_a_run(
    layout: tuple[list[ServerProcess], list[subprocess.Popen[bytes]]], database_url: str, tmp_path: Path,
) -> None:
    (one, two), workers = layout
    with one.client() as first, two.client() as second:
        sent = [FIRST, SECOND, FIRST]
        ids = [first.post("/api/v1/executions", json={**CALL, "inputs": {"service": "billing", "api_key": key}})
               .json()["execution_id"] for key in sent]
        done = [wait_terminal(second, execution_id) for execution_id in ids]
        assert [d["status"] for d in done] == ["COMPLETED"] * 3, done
        digests = [DIGEST.findall(str(d["result"])) for d in done]
        # The model saw what the crew was given: the same key twice gives the same answer,
        # another key of the same length another one; with "[REDACTED]" all three would agree.
        assert digests[0] == digests[2] and digests[0] != digests[1] and all(digests), digests
        for execution_id, key, found in zip(ids, sent, digests, strict=True):
            [prompt] = llm_prompts(second, execution_id)
            assert "[REDACTED]" in prompt and key not in prompt
            # The digest is the model's hash of the prompt it was sent: the recorded one with the key put back.
            assert hashlib.sha256(prompt.replace("[REDACTED]", key).encode()).hexdigest()[:8] == found[-1]
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM execution_secrets").fetchone() == (0,)

        before = descendants(workers)
        slow = first.post("/api/v1/executions", json=SLOW).json()["execution_id"]
        deadline = time.monotonic() + 30
        while first.get(f"/api/v1/executions/{slow}/status").json()["status"] != "RUNNING":
            assert time.monotonic() < deadline, "the slow run never started"
            time.sleep(0.05)
        while not (children := descendants(workers) - before):
            assert time.monotonic() < deadline, "no crew child appeared"
            time.sleep(0.05)
        assert wait_terminal(first, slow, timeout=0.5)["status"] == "RUNNING"
        stopped_at = time.monotonic()
        answer = second.post(f"/api/v1/executions/{slow}/force-stop")
        assert answer.status_code == 200 and answer.json()["status"] == "CANCELLED", answer.text
        while any(running(pid) for pid in children) or first.get(
                f"/api/v1/executions/{slow}/status").json()["status"] != "CANCELLED":
            assert time.monotonic() - stopped_at < 2.0, "the crew still runs 2 s after the force-stop"
            time.sleep(0.02)
        history = first.get(f"/api/v1/execution-history/{slow}").json()
        assert history["timeline"][-1]["status"] == "CANCELLED"
        assert history["timeline"][-1]["actor"] == "local-admin"
        deadline = time.monotonic() + 5
        with psycopg.connect(database_url) as conn:
            while conn.execute("SELECT count(*) FROM execution_secrets").fetchone() != (0,):
                assert time.monotonic() < deadline, "the force-stopped run's sealed inputs stay"
                time.sleep(0.05)

    for key in (FIRST, SECOND):
        assert mentions(database_url, key) == []  # kasal_events, every rm_* table, the side tables
        logs = {str(path): path.read_text(errors="replace") for path in tmp_path.rglob("*.log")}
        assert len(logs) >= 4 and [name for name, text in logs.items() if key in text] == []
