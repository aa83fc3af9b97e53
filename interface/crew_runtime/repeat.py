"""Replays and reruns inside the crew child: recorded tools, and tasks whose outputs are reused.

- In a replay every tool is built as configured (so prompts describe it
  exactly as before) but never runs: ``replayed`` answers each use from the
  recording, repeating its output, or raising its recorded error.
- In a rerun from a task, the tasks before it are not run: ``reuse`` gives
  them their recorded outputs and makes the live tasks read those outputs as
  context just as the original run did (crewai's default context for a task
  is every earlier output; an async task without a context list gets none).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from crewai import Task
from crewai.tasks.task_output import TaskOutput
from crewai.tools import BaseTool

from domain import execution_progress as ep
from domain.replay import Replayer
from interface.crew_runtime.messages import CrewJob


class RecordedToolError(RuntimeError):
    """The error a tool raised in the original run, raised again by its replay."""


def replayed(tool: BaseTool, replayer: Replayer) -> BaseTool:
    """``tool`` with its runs answered from the recording (its description and arguments unchanged)."""
    def _run(*args: Any, **kwargs: Any) -> Any:
        given = json.dumps(kwargs, default=str) if kwargs or not args else str(args[0])
        use = replayer.tool(str(tool.name), given)
        if use.error is not None:
            raise RecordedToolError(use.error)
        return use.output

    object.__setattr__(tool, "_run", _run)  # this instance only; the model never runs the real tool
    return tool


def reuse(tasks: Mapping[str, Task], specs: Mapping[str, Mapping[str, Any]], outputs: Mapping[str, str]) -> list[Task]:
    """Give the tasks in ``outputs`` their recorded output; the other tasks, in order, are what runs."""
    earlier: list[Task] = []
    live: list[Task] = []
    for key, task in tasks.items():
        if key in outputs:
            task.output = TaskOutput(
                description=task.description, name=key, expected_output=task.expected_output,
                raw=outputs[key], agent=str(getattr(task.agent, "role", "") or ""),
            )
        else:
            if "context" not in specs[key]:  # crewai's default context, made explicit across the reused ones
                task.context = [] if task.async_execution else list(earlier)
            live.append(task)
        earlier.append(task)
    return live


def reused_observations(job: CrewJob) -> list[ep.Observation]:
    """What a rerun records of the tasks it reused: each started and completed with its recorded output."""
    if not job.reused:
        return []
    now = time.time()
    observations: list[ep.Observation] = [ep.LogLine(
        level="info", source="runtime", at=now,
        message=f"reusing the recorded outputs of {', '.join(job.reused)}",
    )]
    for key, output in job.reused.items():
        agent = job.agents.get(str(job.tasks[key].get("agent")), {})
        role = filled(str(agent.get("role") or ""), job.inputs)
        observations += [ep.TaskStarted(task=key, agent=role, at=now),
                         ep.TaskCompleted(task=key, agent=role, output=output, at=now)]
    return observations


def filled(text: str, inputs: Mapping[str, Any]) -> str:
    """``{name}`` placeholders filled from the inputs, as crewai fills an agent's role."""
    for name, value in inputs.items():
        text = text.replace("{" + str(name) + "}", str(value))
    return text
