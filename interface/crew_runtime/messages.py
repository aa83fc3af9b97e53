"""The pipe between the service and a crew child: the job going in, observations coming out.

The parent sends one :class:`CrewJob`; the child answers with the domain's
observations (``domain.execution_progress``), ending with exactly one
``Outcome``. Both travel as msgpack, so this module stays cheap to import
(no crewai) in the service process.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.execution_progress import Observation
from domain.model_config import ModelCall
from domain.replay import Recording


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One tool a job's agents or tasks name, as the group has configured it."""

    kind: str
    """The catalogue tool it is (``SerperDevTool``); empty when the name matched nothing runnable."""
    config: dict[str, Any] = {}
    """The group's configuration of it (catalogue defaults with the group's setting over them)."""
    refusal: str | None = None
    """Why it cannot run here, when the runner knows it cannot (the run then fails naming it)."""


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
    crew: dict[str, Any] = {}
    """The crew's own settings that reach crewai's ``Crew`` (``verbose``, ``max_rpm``)."""
    models: dict[str, ModelCall] = {}
    """How to call each model the job names (``model``, agents' ``llm``, ``manager_llm``), by that name."""

    tools: dict[str, ToolSpec] = {}
    """Each tool name the agents and tasks use, resolved in the group's catalogue."""
    files_dir: str | None = None
    """The group's directory; file tools read nothing outside it."""
    allow_private_urls: bool = False
    """Whether web tools may fetch loopback and private addresses."""
    replay: Recording | None = None
    """A replay: every model and tool call is answered from this recording, none is made."""
    reused: dict[str, str] = {}
    """A rerun from a task: the recorded outputs of the tasks before it, by key, not run again."""

    def call(self, name: str) -> ModelCall:
        """The configuration of the model ``name``; a name the runner did not resolve is called as is."""
        return self.models.get(name) or ModelCall(model=name)


_encoder = msgspec.msgpack.Encoder()
_observation_decoder = msgspec.msgpack.Decoder(Observation)
_job_decoder = msgspec.msgpack.Decoder(CrewJob)


def encode(value: Observation | CrewJob) -> bytes:
    """Serialize an observation or a job for the pipe."""
    return _encoder.encode(value)


def decode_observation(data: bytes) -> Observation:
    """Parse one child-to-parent observation."""
    return _observation_decoder.decode(data)


def decode_job(data: bytes) -> CrewJob:
    """Parse the job handed to the child."""
    return _job_decoder.decode(data)
