"""Any process layout keeps everything: two APIs that run no crews and two `kasal worker`
processes on one database, as docker-compose deploys them.

Secret inputs reach the crew a worker runs (the offline model's answer depends on every
character of its prompt), yet no event, read model, side table or process log holds them,
and their sealed row is gone once the run ends. A force-stop sent to the other API ends a
running crew on whichever worker holds it. Both APIs run the scheduler loop (workers do not),
so both race for a schedule's slot: it still fires once, and its crew runs on a worker.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from interface.scheduler import SchedulerLoop
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
# The longest a scheduler loop sleeps between ticks: after that, every API has looked at a schedule again.
SCHEDULER_TICK_S: float = inspect.signature(SchedulerLoop).parameters["max_sleep"].default


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


def one_shot_schedule(http: httpx.Client) -> tuple[str, datetime]:
    """A schedule of CALL with the first key, whose one slot in this test is the first minute boundary
    more than a scheduler tick away: by then every API's loop has seen it and sleeps until that very
    instant, so both race for it. Cron counts whole minutes, so the slot is up to a minute away; the
    caller does other work meanwhile. Returns the schedule's id and its slot."""
    soonest = datetime.now(UTC) + timedelta(seconds=SCHEDULER_TICK_S + 1)
    slot = soonest.replace(second=0, microsecond=0) + timedelta(minutes=1)
    answer = http.post("/api/v1/schedules", json={
        **CALL, "name": "Billing call", "cron_expression": f"{slot.minute} {slot.hour} * * *", "timezone": "UTC",
        "inputs": {"service": "billing", "api_key": FIRST},
    })
    assert answer.status_code == 201, answer.text
    schedule = answer.json()
    assert schedule["next_run_at"] == zulu(slot) and schedule["inputs"]["api_key"] == "[REDACTED]", schedule
    return schedule["id"], slot


def zulu(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def fired_once(
    http: httpx.Client, schedule_id: str, slot: datetime, workers: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    """The run ``schedule_id`` started for ``slot``, COMPLETED on a worker, checked to be its only fire.

    A second fire, by the API that lost the race, would come at the slot or at that API's next tick:
    so the checks wait until every scheduler loop has ticked again after the fire. Nothing can be
    awaited for a fire that must not happen; this wait is the only sleep.
    """
    deadline = slot + timedelta(seconds=30)
    while (schedule := http.get(f"/api/v1/schedules/{schedule_id}").json())["last_execution_id"] is None:
        assert datetime.now(UTC) < deadline, f"the schedule did not fire for {slot}: {schedule}"
        time.sleep(0.1)
    execution_id = schedule["last_execution_id"]
    assert wait_terminal(http, execution_id)["status"] == "COMPLETED"
    quiet = datetime.fromisoformat(schedule["last_run_at"]) + timedelta(seconds=SCHEDULER_TICK_S + 1)
    time.sleep(max(0.0, (quiet - datetime.now(UTC)).total_seconds()))

    schedule = http.get(f"/api/v1/schedules/{schedule_id}").json()
    assert (schedule["last_slot"], schedule["last_execution_id"], schedule["last_error"]) == (
        zulu(slot), execution_id, None)
    assert schedule["next_run_at"] == zulu(slot + timedelta(days=1))
    events = http.get("/api/v1/events", params={"aggregate_id": schedule_id, "type": "schedule."}).json()["items"]
    assert [e["type"] for e in events] == ["schedule.created.v1", "schedule.fired.v1"], events
    assert events[1]["data"]["slot"] == slot.isoformat() and events[1]["data"]["execution_id"] == execution_id
    started = http.get("/api/v1/events", params={"type": "execution.requested.v1", "actor": "system:scheduler"})
    assert [e["aggregate_id"] for e in started.json()["items"]] == [execution_id]
    history = http.get("/api/v1/execution-history", params={"limit": 100}).json()["items"]
    runs: list[dict[str, Any]] = [h for h in history if h["schedule_id"] == schedule_id]
    [run] = runs
    assert run["execution_id"] == execution_id and run["status"] == "COMPLETED"
    assert run["config"]["options"]["schedule"] == {"id": schedule_id, "slot": slot.isoformat(), "catch_up": False}
    # A runner's id is host:pid:suffix; the run's one runner is one of the workers (the APIs run none).
    runners = {e["actor"].split(":")[2] for e in run["timeline"] if e["actor"].startswith("runner:")}
    assert len(runners) == 1 and int(runners.pop()) in {worker.pid for worker in workers}, run["timeline"]
    return run


def test_secret_inputs_reach_crews_on_workers_a_schedule_fires_once_and_a_force_stop_ends_a_run(
    layout: tuple[list[ServerProcess], list[subprocess.Popen[bytes]]], database_url: str, tmp_path: Path,
) -> None:
    (one, two), workers = layout
    with one.client() as first, two.client() as second:
        schedule_id, slot = one_shot_schedule(first)  # first: its slot comes while the runs below go on
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
        # Before the force-stop, whose crew children the scheduled run's must not join.
        scheduled = fired_once(second, schedule_id, slot, workers)
        # The schedule's sealed key reached the crew: its answer is the first run's, same key and prompt.
        assert DIGEST.findall(str(scheduled["result"])) == digests[0]
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
