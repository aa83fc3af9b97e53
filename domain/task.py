"""Tasks: a unit of work with the output it must produce, optionally assigned to an agent.

A task may name its agent before that agent exists (definitions arrive in any
order), so ``agent`` keeps the reference as written and ``agent_id`` holds the
agent it resolved to, or ``None``. Resolving names is the application's job:
the domain only records the result.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.base import Document, KasalAggregate, stable_topics
from domain.errors import InvalidError
from domain.run_options import refuse, task_refusals

TASK_DEFAULTS: dict[str, Any] = {
    "agent_id": None,
    "agent": None,
    "tools": [],
    "context": [],
    "async_execution": False,
    "output_json": None,
    "output_file": None,
    "human_input": False,
    "markdown": False,
    "config": {},
}
REQUIRED = ("name", "description", "expected_output")


@stable_topics("task")
class Task(Document):
    KIND = "task"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        merged = {**TASK_DEFAULTS, **fields}
        for key in ("tools", "context", "config"):
            if merged.get(key) is None:
                merged[key] = TASK_DEFAULTS[key]
        missing = [f for f in REQUIRED if not str(merged.get(f) or "").strip()]
        if missing:
            raise InvalidError(
                "Task is missing required fields: " + ", ".join(missing),
                errors=[(f, "Field required") for f in missing],
            )
        if merged["agent_id"] is not None:
            merged["agent_id"] = str(merged["agent_id"])
        refuse("task", task_refusals(merged))
        return merged

    @property
    def agent_id(self) -> str | None:
        value = self.fields.get("agent_id")
        return None if value is None else str(value)

    def unassign_agent(self, agent_id: UUID | str) -> bool:
        """Forget an agent that was deleted; True when this task was assigned to it.

        The written reference goes too: the agent it named is gone, and a task
        left pointing at it by name would silently pick up a namesake later.
        """
        self.check_alive()
        if self.agent_id != str(agent_id):
            return False
        self.trigger_event(type(self).AgentUnassigned, agent_id=str(agent_id),
                           changes={"agent_id": None, "agent": None})
        return True

    class AgentUnassigned(KasalAggregate.Event):
        """The task's agent was deleted; ``changes`` is merged into the read model."""

        agent_id: str
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields = {**aggregate.fields, **self.changes}
