"""Running an execution again: a replay from its recording, or a rerun from one of its tasks.

- ``replay``: a new execution with the original's configuration and inputs,
  marked ``origin = {"replay_of": id}``; its runner answers every model and
  tool call from the original's recording (``recording``), so it needs no
  provider, key or network, and repeats no tool's side effect.
- ``rerun_draft``: what a rerun would run (the original's configuration with
  the caller's changes), for the planner to check like any request; the
  execution is then requested with ``origin = {"rerun_of": id, "from_task":
  key}``, and its runner reuses the recorded outputs of the tasks before
  ``from_task`` (``reused_outputs``) instead of running them.

Both read the original through the caller's group (another group's id is
404) and refuse an original that has not ended (409).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from application.content import ContentStore
from application.executions import ExecutionService, Requested
from application.store import KasalStore
from domain.errors import ConflictError, InvalidError
from domain.execution import Execution
from domain.replay import RecordedCall, RecordedTool, Recording, prompt_digest

REPLAY_OF = "replay_of"
RERUN_OF = "rerun_of"


@dataclass(frozen=True, slots=True)
class RerunDraft:
    """What a rerun runs, before the planner checks it like any request."""

    original: UUID
    agents: dict[str, Any]
    tasks: dict[str, Any]
    inputs: dict[str, Any]
    model: str
    process: str
    manager_llm: str | None
    from_task: str | None
    run_name: str
    options: dict[str, Any] = field(default_factory=dict)
    crew_settings: dict[str, Any] = field(default_factory=dict)
    planning: bool = False
    crew_id: str | None = None

    def origin(self) -> dict[str, Any]:
        return {RERUN_OF: str(self.original), "from_task": self.from_task}


class ReplayService:
    """Replays and reruns of the caller's group's executions, and the recordings runners replay from."""

    def __init__(self, store: KasalStore, content: ContentStore, executions: ExecutionService) -> None:
        self.store = store
        self.content = content
        self.executions = executions

    def replay(self, execution_id: UUID) -> Requested:
        """Request a replay of an ended execution (PENDING; a runner replays it)."""
        original = self._ended(execution_id)
        snapshot = self.executions.snapshot_of(original)
        return self.executions.request_execution(
            agents=snapshot.get("agents", {}), tasks=snapshot.get("tasks", {}), inputs=dict(original.inputs),
            model=original.model, process=snapshot.get("process") or "sequential",
            manager_llm=snapshot.get("manager_llm"), planning=bool(snapshot.get("planning")),
            reasoning=bool(snapshot.get("reasoning")), execution_type=original.execution_type,
            crew_id=original.crew_id, crew_version=original.crew_version,
            run_name=f"Replay of {original.run_name}"[:200], options=snapshot.get("options") or {},
            crew_settings=snapshot.get("crew") or {}, origin={REPLAY_OF: str(original.id)},
        )

    def rerun_draft(
        self, execution_id: UUID, *, from_task: str | None = None, inputs: Mapping[str, Any] | None = None,
        model: str | None = None, config: Mapping[str, Any] | None = None,
    ) -> RerunDraft:
        """The original's configuration with ``config`` merged over it, ``inputs`` over its inputs and
        ``model`` for its model; ``from_task`` (a task's key or name) must be one of its tasks."""
        original = self._ended(execution_id)
        snapshot = merged(self.executions.snapshot_of(original), dict(config or {}))
        tasks = snapshot.get("tasks")
        if not isinstance(tasks, dict) or not isinstance(snapshot.get("agents"), dict):
            raise InvalidError("config must keep agents and tasks as objects",
                               errors=[("config", "agents and tasks are objects of keyed entries")])
        process = str(snapshot.get("process") or "sequential")
        key = None if from_task is None else task_key(tasks, from_task)
        if key is not None and process == "hierarchical":
            raise InvalidError("A hierarchical crew cannot be rerun from a task: its manager decides the order",
                               errors=[("from_task", "not for a hierarchical process")])
        if key is not None:
            order = list(tasks)
            missing_outputs(original, order[:order.index(key)])
        return RerunDraft(
            original=original.id, agents=snapshot["agents"], tasks=tasks,
            inputs={**original.inputs, **dict(inputs or {})}, model=model or original.model, process=process,
            manager_llm=snapshot.get("manager_llm"), from_task=key,
            run_name=f"Rerun of {original.run_name}"[:200], options=dict(snapshot.get("options") or {}),
            crew_settings=dict(snapshot.get("crew") or {}), planning=bool(snapshot.get("planning")),
            crew_id=original.crew_id,
        )

    # -- the runner's side (system use: any group) ---------------------------

    def recording(self, execution_id: UUID) -> Recording:
        """Every model call and tool use ``execution_id`` recorded, in order, texts whole."""
        execution, events = self._events(execution_id)
        calls: list[RecordedCall] = []
        tools: list[RecordedTool] = []
        for event in events:
            for span in getattr(event, "spans", None) or []:
                attributes = span.get("attributes") or {}
                if span.get("type") == "llm_call":
                    calls.append(RecordedCall(
                        prompt_sha256=self._sha(attributes.get("prompt")),
                        response=self._text(execution, attributes.get("response")) or "",
                        model=str(attributes.get("model") or span.get("name") or ""),
                        prompt_tokens=int(attributes.get("prompt_tokens") or 0),
                        completion_tokens=int(attributes.get("completion_tokens") or 0),
                    ))
                elif span.get("type") == "tool_usage":
                    tools.append(RecordedTool(
                        tool=str(attributes.get("tool") or span.get("name") or ""),
                        input=self._text(execution, attributes.get("input")) or "",
                        output=self._text(execution, attributes.get("output")), error=attributes.get("error"),
                    ))
        failure = execution.error if execution.status.value == "FAILED" else None
        return Recording(execution_id=str(execution_id), calls=calls, tools=tools, failure=failure)

    def reused_outputs(self, execution_id: UUID, before: str, order: list[str]) -> dict[str, str]:
        """The outputs ``execution_id`` recorded for the tasks that come before task ``before`` in
        ``order`` (the rerun's tasks), by task key, in that order."""
        execution: Execution = self.store.repository.get(execution_id)  # its task outputs: no event list needed
        earlier = order[:order.index(before)] if before in order else []
        outputs = missing_outputs(execution, earlier)
        return {key: self._text(execution, outputs[key].get("output")) or "" for key in earlier}

    def _ended(self, execution_id: UUID) -> Execution:
        execution = self.executions.load(execution_id)
        if not execution.finished:
            raise ConflictError(f"Execution {execution_id} is {execution.status.value}: only an ended run "
                                "can be run again", errors=[("execution_id", "not ended yet")])
        return execution

    def _events(self, execution_id: UUID) -> tuple[Execution, list[Any]]:
        events = self.store.history(execution_id)
        execution: Execution = self.store.repository.get(execution_id)
        return execution, events

    def _text(self, execution: Execution, ref: Any) -> str | None:
        """A recorded text whole: inline in its reference, or from the content store."""
        if not isinstance(ref, dict):
            return None if ref is None else str(ref)
        if not ref.get("sha256"):
            return str(ref.get("preview") or "")
        data = self.content.get(execution.group_id, ref["sha256"])
        if data is None:
            raise InvalidError(f"a recorded text of execution {execution.id} is missing from the content store")
        return data.decode()

    @staticmethod
    def _sha(ref: Any) -> str:
        if isinstance(ref, dict) and ref.get("sha256"):
            return str(ref["sha256"])
        return prompt_digest(str(ref.get("preview") or "") if isinstance(ref, dict) else str(ref or ""))


def missing_outputs(execution: Execution, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The completed task outcomes of ``execution`` by key; ``InvalidError`` unless each of ``keys`` has one."""
    outputs = {str(entry.get("task")): entry for entry in execution.task_outputs
               if entry.get("status", "completed") == "completed"}
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise InvalidError(f"The original run has no output of task {missing[0]!r} to reuse",
                           errors=[("from_task", f"task {missing[0]} did not complete in the original run")])
    return outputs


def task_key(tasks: Mapping[str, Any], wanted: str) -> str:
    """The key of the task ``wanted`` names: its key, else its ``name`` (ignoring case)."""
    if wanted in tasks:
        return wanted
    for key, spec in tasks.items():
        if isinstance(spec, dict) and str(spec.get("name") or "").strip().casefold() == wanted.strip().casefold():
            return key
    raise InvalidError(f"The run has no task {wanted!r}; its tasks: {', '.join(tasks)}",
                       errors=[("from_task", "not a task key or name of the run")])


def merged(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` laid over ``base`` key by key, objects recursively; ``None`` removes a key."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result
