"""Wire protocol between the parent service and a crew child process.

The parent sends one :class:`CrewJob`; the child answers with a stream of
:data:`Message` values, ending with exactly one :class:`CrewCompleted` or
:class:`CrewFailed`.  Everything is a msgspec Struct encoded as msgpack, so this
module stays cheap to import (no crewai) in the service process.
"""

from __future__ import annotations

import time
from typing import Any, Union

import msgspec


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Common base: every message records when (unix time) it happened."""

    at: float = msgspec.field(default_factory=time.time)


class LogLine(_Msg, tag="log"):
    level: str
    source: str
    message: str


class CrewStarted(_Msg, tag="crew_started"):
    name: str


class CrewCompleted(_Msg, tag="crew_completed"):
    result: str


class CrewFailed(_Msg, tag="crew_failed"):
    error: str


class AgentStarted(_Msg, tag="agent_started"):
    agent: str


class AgentCompleted(_Msg, tag="agent_completed"):
    agent: str
    output: str


class TaskStarted(_Msg, tag="task_started"):
    task: str
    agent: str


class TaskCompleted(_Msg, tag="task_completed"):
    task: str
    agent: str
    output: str


class TaskFailed(_Msg, tag="task_failed"):
    task: str
    agent: str
    error: str


class LlmCall(_Msg, tag="llm_call"):
    model: str
    prompt: str
    response: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost: float | None
    agent: str | None
    task: str | None


class ToolUsed(_Msg, tag="tool_used"):
    tool: str
    input: str
    output: str | None
    error: str | None
    agent: str | None
    task: str | None


Message = Union[
    LogLine,
    CrewStarted,
    CrewCompleted,
    CrewFailed,
    AgentStarted,
    AgentCompleted,
    TaskStarted,
    TaskCompleted,
    TaskFailed,
    LlmCall,
    ToolUsed,
]
TERMINAL = (CrewCompleted, CrewFailed)


class CrewJob(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a child needs to run one crew; agents/tasks keep their given order."""

    execution_id: str
    agents: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    inputs: dict[str, Any] = {}
    process: str = "sequential"
    model: str = "offline/echo"
    manager_llm: str | None = None
    planning: bool = False
    credentials: dict[str, str] = {}
    timeout_s: float | None = None


_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(Message)
_job_decoder = msgspec.msgpack.Decoder(CrewJob)


def encode(value: Message | CrewJob) -> bytes:
    """Serialize a message or job for the pipe."""
    return _encoder.encode(value)


def decode_message(data: bytes) -> Message:
    """Parse one child-to-parent message."""
    return _message_decoder.decode(data)


def decode_job(data: bytes) -> CrewJob:
    """Parse the job handed to the child."""
    return _job_decoder.decode(data)
