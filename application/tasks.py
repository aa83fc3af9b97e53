"""Task commands: documents whose agent reference is resolved when written.

Clients name a task's agent by id or by name (``research_agent`` for
"Research Agent"); the task records what was written in ``agent`` and the
agent it resolved to in ``agent_id``. A name that resolves to nothing is
kept as written, because definitions may be created in any order. An id is
different: ids are made when something is created, so one the caller's group
does not have can never come to mean anything (it is another group's, or
gone). Such an ``agent_id``, ``agent`` or ``context`` entry is refused.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from application.documents import DocumentService
from application.ids import parse_id
from application.ports import AgentDirectory
from application.store import KasalStore
from domain.agent import Agent
from domain.context import current_actor
from domain.task import Task


class TaskService(DocumentService[Task]):
    def __init__(self, store: KasalStore, agents: AgentDirectory) -> None:
        super().__init__(store, Task, unique_names=False)
        self.agents = agents

    def checked(self, fields: dict[str, Any]) -> dict[str, Any]:
        resolved = self.resolve_agent(fields)
        context = resolved.get("context") or []
        self.require_own(Task, [(f"context[{i}]", ref) for i, ref in enumerate(context) if _is_id(ref)])
        return resolved

    def resolve_agent(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Fill ``agent_id`` from ``agent``; an explicit ``agent_id`` wins.

        Sending only ``agent_id`` (even ``null``) clears ``agent``, so the written reference
        never disagrees with the assignment.
        """
        resolved = dict(fields)
        agent_id = resolved.get("agent_id")
        reference = resolved.get("agent")
        if agent_id is not None:
            self.require_own(Agent, [("agent_id", agent_id)])
            resolved["agent_id"] = str(agent_id)
            resolved.setdefault("agent", None)
        elif "agent" in resolved:
            found = None
            if isinstance(reference, str) and reference.strip():
                found = self._agent_named(reference.strip())
            resolved["agent_id"] = None if found is None else str(found)
        elif "agent_id" in resolved:
            resolved["agent"] = None
        return resolved

    def _agent_named(self, reference: str) -> UUID | None:
        """The caller's group's agent ``reference`` names by id or by name; an unknown id is 422."""
        found = self.agents.agent_id_for(current_actor().group_id, reference)
        if found is None and _is_id(reference):
            # The store, not the read model, decides: the agent may have been created a moment ago.
            self.require_own(Agent, [("agent", reference)])
            return UUID(reference)
        return found


def _is_id(reference: Any) -> bool:
    return parse_id(reference) is not None
