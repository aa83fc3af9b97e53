"""What a crew child says: the pipe's writer, and crewai's events as the domain's observations.

``translate`` maps one crewai event to an observation (``domain.execution_progress``);
``EventForwarder`` is the stream sink that sends them in emission order.

Child side only (it imports crewai): ``child`` imports it once the libraries are quieted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

import msgspec
from crewai.events.types import agent_events as ae
from crewai.events.types import crew_events as ce
from crewai.events.types import task_events as te
from crewai.events.types import tool_usage_events as tue

from domain import execution_progress as ep
from interface.crew_runtime.messages import encode


class Sender:
    """Thread-safe writer of observations; crewai emits from several threads."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, observation: ep.Observation) -> None:
        data = encode(observation)
        with self._lock:
            self._conn.send_bytes(data)

    def log(self, level: str, source: str, message: str) -> None:
        self.send(ep.LogLine(level=level, source=source, message=message, at=time.time()))


class _Timestamped(Protocol):
    """What every crewai event carries."""

    timestamp: datetime


def _at(event: _Timestamped) -> float:
    return event.timestamp.timestamp()


def _role(agent: Any) -> str:
    return str(getattr(agent, "role", "") or "")


def task_key(task: Any) -> str | None:
    """The job's key for a task; crewai's own tasks (e.g. the planner) get a short label."""
    if task is None:
        return None
    name = getattr(task, "name", None)
    if name:
        return str(name)
    words = str(getattr(task, "description", "")).split()
    return "(crewai) " + " ".join(words[:6])


def translate(event: Any) -> ep.Observation | None:
    """Map one crewai event to an observation (None for events we do not forward)."""
    at = _at(event)
    if isinstance(event, ce.CrewKickoffStartedEvent):
        return ep.CrewStarted(name=event.crew_name or "crew", at=at)
    if isinstance(event, ae.AgentExecutionStartedEvent):
        return ep.AgentStarted(agent=_role(event.agent), at=at)
    if isinstance(event, ae.AgentExecutionCompletedEvent):
        return ep.AgentCompleted(agent=_role(event.agent), output=event.output, at=at)
    if isinstance(event, ae.AgentExecutionErrorEvent):
        return ep.LogLine(level="error", source=_role(event.agent), message=event.error, at=at)
    task = getattr(event, "task", None)
    task_name = task_key(task) or str(getattr(event, "task_name", None) or "")
    task_agent = _role(getattr(task, "agent", None))
    if isinstance(event, te.TaskStartedEvent):
        return ep.TaskStarted(task=task_name, agent=task_agent, at=at)
    if isinstance(event, te.TaskCompletedEvent):
        return ep.TaskCompleted(task=task_name, agent=task_agent, output=event.output.raw, at=at)
    if isinstance(event, te.TaskFailedEvent):
        return ep.TaskFailed(task=task_name, agent=task_agent, error=event.error, at=at)
    if isinstance(event, (tue.ToolUsageFinishedEvent, tue.ToolUsageErrorEvent)):
        args = event.tool_args if isinstance(event.tool_args, str) else json.dumps(event.tool_args, default=str)
        finished = isinstance(event, tue.ToolUsageFinishedEvent)
        return ep.ToolUsed(
            tool=event.tool_name, input=args,
            output=str(event.output) if finished else None,
            error=None if finished else str(event.error),
            agent=_role(event.agent) or event.agent_role, task=task_key(event.from_task) or event.task_name, at=at,
        )
    if isinstance(event, (tue.ToolSelectionErrorEvent, tue.ToolValidateInputErrorEvent)):
        return ep.LogLine(level="warning", source=event.agent_role or "tool", message=str(event.error), at=at)
    return None


class EventForwarder:
    """Stream sink that forwards crewai events in emission order.

    Handlers registered with ``crewai_event_bus.on`` run on a thread pool, so
    their order is not the emission order; stream sinks are called inline by
    ``crewai_event_bus.emit`` in the emitting thread, which keeps the order.
    """

    def __init__(self, sender: Sender, tool_names: Mapping[str, str] | None = None) -> None:
        self._sender = sender
        self._tool_names = tool_names or {}

    def __call__(self, source: Any, event: Any) -> None:
        try:
            message = translate(event)
            if isinstance(message, ep.ToolUsed) and message.tool in self._tool_names:
                message = msgspec.structs.replace(message, tool=self._tool_names[message.tool])
        except Exception as exc:
            message = ep.LogLine(level="warning", source="runtime", message=f"cannot forward {event.type}: {exc!r}",
                             at=time.time())
        if message is not None:
            self._sender.send(message)
