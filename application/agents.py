"""Agent commands: deleting an agent unassigns it from the tasks that point at it.

Kasal deletes those tasks; we keep them and record one ``AgentUnassigned``
event per task, saved in the same atomic write as the agent's deletion, so
the log says exactly which tasks lost their agent and why.
"""

from __future__ import annotations

from typing import Any

from application.documents import DocumentService
from application.ports import TaskDirectory
from application.store import KasalStore
from domain.agent import Agent
from domain.task import Task


class AgentService(DocumentService[Agent]):
    def __init__(self, store: KasalStore, tasks: TaskDirectory) -> None:
        super().__init__(store, Agent, unique_names=False)
        self.tasks = tasks

    def cascade_delete(self, document: Agent) -> list[Any]:
        unassigned: list[Any] = []
        for task_id in self.tasks.tasks_assigned_to(document.group_id, document.id):
            task = self.store.find(task_id)
            # The read model may be a moment behind: trust only the aggregate.
            if not isinstance(task, Task) or task.deleted or task.group_id != document.group_id:
                continue
            if task.unassign_agent(document.id):
                unassigned.append(task)
        return unassigned
