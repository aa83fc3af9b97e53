"""Replay, rerun and compare on a real server process, and a replay cut off by a crash.

On ``offline/random`` every answer carries a fresh nonce, so two live runs of one crew
differ: a replay that ends with the original's outputs can only have answered from the
recording, and a rerun from the second task keeps the first task's output only because
it reused it. The compare endpoint reports exactly those sames and differences.

A replay is a run like any other: when the service is SIGKILLed while one runs, the
restarted service cancels it, and the original can still be replayed afterwards.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import psutil
import pytest

from domain.execution import RESTART_MESSAGE
from tests.e2e.conftest import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
TASK_KEYS = ["gather", "draft", "polish"]
RANDOM = {
    "agents_yaml": {"scribe": {"role": "Scribe", "goal": "Write about {topic}", "backstory": "Careful",
                               "llm": "offline/random"}},
    "tasks_yaml": {key: {"description": f"{key.capitalize()} notes on {{topic}}", "expected_output": "A line",
                         "agent": "scribe"} for key in TASK_KEYS},
    "inputs": {"topic": "replays"},
}
# A replay of these takes ~2 s (no 0.2 s delays): time enough to catch it part-way.
LONG_TASKS = 30
SLOW = {
    "agents_yaml": {"slow": {"role": "Plodder", "goal": "Plod through {topic}", "backstory": "Slow",
                             "llm": "offline/slow"}},
    "tasks_yaml": {f"step{n}": {"description": f"Step {n} of {{topic}}", "expected_output": "A line",
                                "agent": "slow"} for n in range(LONG_TASKS)},
    "inputs": {"topic": "crashes"},
}


def started(http: httpx.Client, path: str, body: dict[str, Any] | None = None) -> str:
    answer = http.post(path, json=body) if body is not None else http.post(path)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["execution_id"])


def finished(http: httpx.Client, execution_id: str, timeout: float = 90) -> dict[str, Any]:
    """The execution's history once it has ended."""
    deadline = time.monotonic() + timeout
    while http.get(f"/api/v1/executions/{execution_id}/status").json()["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"{execution_id} did not end in {timeout} s"
        time.sleep(0.05)
    history: dict[str, Any] = http.get(f"/api/v1/execution-history/{execution_id}").json()
    return history


def outputs(history: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(entry["task"], entry["output"]) for entry in history["task_outputs"]]


def compared(http: httpx.Client, a: str, b: str) -> dict[str, Any]:
    answer = http.get(f"/api/v1/executions/{a}/compare/{b}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_replay_repeats_a_random_run_and_a_rerun_reuses_only_the_tasks_before_its_start(
    server: ServerProcess,
) -> None:
    with server.client() as http:
        original = finished(http, started(http, "/api/v1/executions", RANDOM), timeout=120)
        assert original["status"] == "COMPLETED", original
        original_id = original["execution_id"]
        assert [task for task, _ in outputs(original)] == TASK_KEYS

        replay = finished(http, started(http, f"/api/v1/executions/{original_id}/replay"))
        rerun_id = started(http, f"/api/v1/executions/{original_id}/rerun", {"from_task": "draft"})
        rerun = finished(http, rerun_id)

        assert replay["status"] == "COMPLETED", replay
        assert replay["result"] == original["result"] and outputs(replay) == outputs(original)
        assert replay["replay_of"] == {"id": original_id}
        assert replay["usage"]["replayed_calls"] == original["usage"]["llm_calls"] > 0

        assert rerun["status"] == "COMPLETED", rerun
        assert rerun["rerun_of"] == {"id": original_id, "from_task": "draft"}
        assert [task for task, _ in outputs(rerun)] == TASK_KEYS
        assert outputs(rerun)[0] == outputs(original)[0]  # reused, not asked again
        assert all(ours != theirs for ours, theirs in zip(outputs(rerun)[1:], outputs(original)[1:], strict=True))
        assert rerun["result"] != original["result"]

        against_rerun = compared(http, original_id, rerun_id)
        assert [(t["task"], t["same"]) for t in against_rerun["tasks"]] == [
            ("gather", True), ("draft", False), ("polish", False)]
        assert against_rerun["result_same"] is False
        assert against_rerun["status"] == {"a": "COMPLETED", "b": "COMPLETED"}

        against_replay = compared(http, original_id, replay["execution_id"])
        assert [(t["task"], t["same"]) for t in against_replay["tasks"]] == [(key, True) for key in TASK_KEYS]
        assert against_replay["result_same"] is True
        assert against_replay["config"] == [] and against_replay["inputs"]["same"] is True

        repeats = http.get(f"/api/v1/execution-history/{original_id}").json()["repeats"]
        assert {(r["execution_id"], r["kind"], r["status"]) for r in repeats} == {
            (replay["execution_id"], "replay", "COMPLETED"), (rerun_id, "rerun", "COMPLETED")}


def crew_children(server: ServerProcess) -> set[int]:
    assert server.process is not None
    try:
        return {child.pid for child in psutil.Process(server.process.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_replay_cut_off_by_a_sigkill_ends_cancelled_and_the_original_replays_after_restart(
    server: ServerProcess,
) -> None:
    with server.client() as http:
        original = finished(http, started(http, "/api/v1/executions", SLOW), timeout=120)
        assert original["status"] == "COMPLETED", original
        original_id = original["execution_id"]
        assert len(outputs(original)) == LONG_TASKS

        replay_id = started(http, f"/api/v1/executions/{original_id}/replay")
        deadline = time.monotonic() + 30
        while (status := http.get(f"/api/v1/executions/{replay_id}/status").json()["status"]) != "RUNNING":
            assert status not in TERMINAL and time.monotonic() < deadline, f"the replay never ran: {status}"
            time.sleep(0.005)
        while not http.get(f"/api/v1/execution-history/{replay_id}").json()["task_outputs"]:
            assert time.monotonic() < deadline, "the replay never finished a task"
            time.sleep(0.01)
        children = crew_children(server)
        assert children, "no crew process runs the replay"

    server.kill()  # the service process only, as an OOM kill would: its crew children must not outlive it
    deadline = time.monotonic() + 10
    while lingering := {pid for pid in children if alive(pid)}:
        assert time.monotonic() < deadline, f"crew processes {lingering} outlived the killed service"
        time.sleep(0.05)
    server.start()

    with server.client() as http:
        cut_off = http.get(f"/api/v1/execution-history/{replay_id}").json()
        assert cut_off["status"] == "CANCELLED", cut_off
        assert cut_off["timeline"][-1]["message"] == RESTART_MESSAGE
        assert cut_off["timeline"][-1]["actor"] == "system:recovery"
        assert len(outputs(cut_off)) < LONG_TASKS  # it was stopped part-way, not after the end

        again = finished(http, started(http, f"/api/v1/executions/{original_id}/replay"), timeout=120)
        assert again["status"] == "COMPLETED", again
        assert again["result"] == original["result"] and outputs(again) == outputs(original)
        repeats = http.get(f"/api/v1/execution-history/{original_id}").json()["repeats"]
        assert {(r["execution_id"], r["status"]) for r in repeats} == {
            (replay_id, "CANCELLED"), (again["execution_id"], "COMPLETED")}
