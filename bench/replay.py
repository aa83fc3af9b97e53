"""Running again: a replay against its original, a rerun from the last task against a full run.

On ``offline/slow`` every model call takes 0.2 s, standing in for a provider's
latency. A replay answers every call from the recording, so it should cost
the crew's own overhead only; a rerun from the last task runs that task live
and reuses the others' outputs. Times are wall times from the POST to a
terminal status, medians over a few repetitions, on a service of its own
with a warm runner.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from bench.registry import Context, Target, scenario
from bench.server import ServerProcess

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def slow_crew(tasks: int) -> dict[str, Any]:
    """One ``offline/slow`` agent doing ``tasks`` one-line tasks in order (one model call each)."""
    return {
        "agents_yaml": {"plodder": {"role": "Plodder", "goal": "Note {topic}", "backstory": "Slow",
                                    "llm": "offline/slow"}},
        "tasks_yaml": {f"step{n}": {"description": f"Write note {n} on {{topic}}", "expected_output": "One line",
                                    "agent": "plodder"} for n in range(tasks)},
        "inputs": {"topic": "replays"},
    }


def timed(http: httpx.Client, path: str, body: dict[str, Any] | None = None, timeout: float = 120) -> tuple[str, float]:
    """POST ``path`` (which starts an execution), wait until it ends COMPLETED: (its id, seconds)."""
    began = time.perf_counter()
    answer = http.post(path, json=body) if body is not None else http.post(path)
    if answer.status_code != 201:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text}")
    execution_id = str(answer.json()["execution_id"])
    while time.perf_counter() - began < timeout:
        status = http.get(f"/api/v1/executions/{execution_id}/status").json()["status"]
        if status in TERMINAL:
            if status != "COMPLETED":
                raise RuntimeError(f"execution {execution_id} ({path}) ended {status}")
            return execution_id, time.perf_counter() - began
        time.sleep(0.005)
    raise RuntimeError(f"execution {execution_id} ({path}) did not end in {timeout} s")


def report_pair(ctx: Context, label: str, first: list[float], second: list[float], *, target: Target | None,
                note: str) -> None:
    """Both medians (ms) and the ratio of the medians."""
    a, b = statistics.median(first), statistics.median(second)
    name_a, name_b = label.split(" vs ")
    ctx.report(f"{name_a} p50", round(a * 1000), "ms")
    ctx.report(f"{name_b} p50", round(b * 1000), "ms")
    ctx.report(f"{name_b} / {name_a}", round(b / a, 3), "ratio", target=target,
               note=f"{note}; {len(first)} repetitions")
    ctx.detail(label, {"first_s": [round(x, 3) for x in first], "second_s": [round(x, 3) for x in second]})


@scenario("replay", order=65)
def replay(ctx: Context) -> None:
    """Replay vs its original (3 slow tasks), rerun from the last task vs a full run (5 slow tasks)."""
    server = ServerProcess(ctx.databases.create(), name="replay")
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as http:
            timed(http, "/api/v1/executions", slow_crew(1), timeout=300)  # the first run waits for crewai's import
            originals, replays = [], []
            for _ in range(ctx.n(5, 2)):
                original_id, took = timed(http, "/api/v1/executions", slow_crew(3))
                originals.append(took)
                replays.append(timed(http, f"/api/v1/executions/{original_id}/replay")[1])
            report_pair(ctx, "original (3 tasks) vs replay", originals, replays, target=Target("<", 0.30),
                        note="3 model calls of 0.2 s each live, none in the replay")

            fulls, reruns = [], []
            for _ in range(ctx.n(5, 2)):
                full_id, took = timed(http, "/api/v1/executions", slow_crew(5))
                fulls.append(took)
                reruns.append(timed(http, f"/api/v1/executions/{full_id}/rerun", {"from_task": "step4"})[1])
            report_pair(ctx, "full run (5 tasks) vs rerun from the last", fulls, reruns, target=None,
                        note="1 of 5 model calls live in the rerun: 0.2 of its original's ≥1.0 s")
    finally:
        server.stop()
        server.cleanup()
