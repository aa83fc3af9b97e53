"""The README quick start, as a user runs it: real server, real crews, offline model."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def build_crew(http: httpx.Client, model: str = "offline/echo") -> str:
    for name, role in (("Researcher", "Senior Researcher"), ("Writer", "Technical Writer")):
        created = http.post("/api/v1/agents", json={
            "name": name, "role": role, "goal": f"Do excellent {role.lower()} work on {{topic}}",
            "backstory": f"An experienced {role.lower()}", "llm": model,
        })
        assert created.status_code == 201, created.text
    research = http.post("/api/v1/tasks", json={
        "name": "Research", "description": "Research {topic} and list three facts",
        "expected_output": "Three facts", "agent": "researcher",
    }).json()
    write = http.post("/api/v1/tasks", json={
        "name": "Write", "description": "Write a short summary about {topic}",
        "expected_output": "One paragraph", "agent": "writer", "context": [research["id"]],
    }).json()
    agents = http.get("/api/v1/agents").json()["items"]
    crew = http.post("/api/v1/crews", json={
        "name": f"Quick start crew {model}", "agent_ids": [a["id"] for a in reversed(agents)],
        "task_ids": [research["id"], write["id"]], "process": "sequential",
    })
    assert crew.status_code == 201, crew.text
    return crew.json()["id"]


def wait_for(http: httpx.Client, execution_id: str, statuses: set[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/api/v1/executions/{execution_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{execution_id} never reached {statuses}: {body}")


def read_sse(http: httpx.Client, path: str, timeout: float = 120) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with http.stream("GET", path, timeout=timeout) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append(current)
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(":")
                current[key] = value.strip()
    return events


def test_quick_start_runs_a_crew_offline_and_reads_it_back(server) -> None:
    with server.client() as http:
        crew_id = build_crew(http)
        started = http.post("/api/v1/executions", json={"crew_id": crew_id, "inputs": {"topic": "event sourcing"}})
        assert started.status_code == 201, started.text
        body = started.json()
        assert body["status"] == "PENDING" and body["message"] == "Execution started successfully"
        execution_id = body["execution_id"]

        events = read_sse(http, f"/api/v1/execution-logs/{execution_id}/sse")
        logs = [e for e in events if e.get("event") == "log"]
        assert logs and [int(e["id"]) for e in logs] == sorted(int(e["id"]) for e in logs)
        assert events[-1]["event"] == "status" and json.loads(events[-1]["data"])["status"] == "COMPLETED"

        done = http.get(f"/api/v1/executions/{execution_id}").json()
        assert done["status"] == "COMPLETED" and done["result"]
        request = {"crew_id": crew_id, "inputs": {"topic": "event sourcing"}}
        again = wait_for(http, http.post("/api/v1/executions", json=request).json()["execution_id"], TERMINAL)
        assert again["result"] == done["result"], "the offline model is deterministic"

        trace = http.get(f"/api/v1/execution-trace/{execution_id}").json()
        kinds = {span["type"] for span in trace["spans"]}
        assert {"task", "llm_call"} <= kinds
        history = http.get(f"/api/v1/execution-history/{execution_id}").json()
        assert [s["status"] for s in history["timeline"]] == ["PENDING", "PREPARING", "RUNNING", "COMPLETED"]


def test_a_hard_kill_mid_run_leaves_the_execution_cancelled_after_restart(server) -> None:
    with server.client() as http:
        crew_id = build_crew(http, model="offline/slow")
        request = {"crew_id": crew_id, "inputs": {"topic": "kills"}}
        execution_id = http.post("/api/v1/executions", json=request).json()["execution_id"]
        wait_for(http, execution_id, {"RUNNING"})
        deadline = time.monotonic() + 30
        while not http.get(f"/api/v1/execution-logs/{execution_id}").json()["items"] and time.monotonic() < deadline:
            time.sleep(0.05)
        logs_before = http.get(f"/api/v1/execution-logs/{execution_id}").json()["items"]
        assert logs_before

    server.kill()
    server.start()

    with server.client() as http:
        after = http.get(f"/api/v1/executions/{execution_id}").json()
        assert after["status"] == "CANCELLED"
        history = http.get(f"/api/v1/execution-history/{execution_id}").json()
        assert history["timeline"][-1]["message"] == "Job cancelled - service was restarted while job was running"
        assert history["timeline"][-1]["actor"] == "system:recovery"
        logs_after = http.get(f"/api/v1/execution-logs/{execution_id}").json()["items"]
        assert logs_after[: len(logs_before)] == logs_before
        fresh = http.post("/api/v1/executions", json={"crew_id": build_crew_again(http), "inputs": {"topic": "after"}})
        assert wait_for(http, fresh.json()["execution_id"], TERMINAL)["status"] == "COMPLETED"


def build_crew_again(http: httpx.Client) -> str:
    crews = http.get("/api/v1/crews").json()["items"]
    return next(c["id"] for c in crews if c["name"].endswith("offline/slow"))
