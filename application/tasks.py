"""Task commands: documents whose agent reference is resolved when written.

Clients name a task's agent by id or by name (``research_agent`` for
"Research Agent"); the task records what was written in ``agent`` and the
agent it resolved to in ``agent_id``. A reference that resolves to nothing is
kept as written, because definitions may be created in any order.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from application.documents import DocumentService, Written
from application.ports import AgentDirectory
from application.store import KasalStore
from domain.context import current_actor
from domain.task import Task


class TaskService(DocumentService[Task]):
    def __init__(self, store: KasalStore, agents: AgentDirectory) -> None:
        super().__init__(store, Task, unique_names=False)
        self.agents = agents

    def create(self, fields: dict[str, Any], *, id: UUID | None = None) -> Written:  # noqa: A002
        return super().create(self.resolve_agent(fields), id=id)

    def change(
        self, document_id: UUID, changes: dict[str, Any], expected_version: int | None = None
    ) -> Written:
        return super().change(document_id, self.resolve_agent(changes), expected_version)

    def replace(
        self, document_id: UUID, fields: dict[str, Any], expected_version: int | None = None
    ) -> Written:
        return super().replace(document_id, self.resolve_agent(fields), expected_version)

    def resolve_agent(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Fill ``agent_id`` from ``agent``; an explicit ``agent_id`` wins.

        Sending only ``agent_id`` (even ``null``) clears ``agent``, so the written reference
        never disagrees with the assignment.
        """
        resolved = dict(fields)
        agent_id = resolved.get("agent_id")
        reference = resolved.get("agent")
        if agent_id is not None:
            resolved["agent_id"] = str(agent_id)
            resolved.setdefault("agent", None)
        elif "agent" in resolved:
            found = None
            if isinstance(reference, str) and reference.strip():
                found = self.agents.agent_id_for(current_actor().group_id, reference.strip())
            resolved["agent_id"] = None if found is None else str(found)
        elif "agent_id" in resolved:
            resolved["agent"] = None
        return resolved
