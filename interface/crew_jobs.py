"""What a crew child is handed: a claimed execution turned into a ``CrewJob``.

The runner asks this once it has claimed a run: the group's provider keys,
how to call each model the crew names, each tool as the group configured it,
and, for a replay or a rerun from a task, the recording or the task outputs
it reuses.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from anyio.to_thread import run_sync as in_thread

from application.executions import ExecutionJob, ExecutionService
from application.replay import REPLAY_OF, RERUN_OF, ReplayService
from domain.model_config import ModelCall, model_call
from interface.crew_runtime.messages import CrewJob
from interface.tool_resolver import ToolResolver


class CrewJobs:
    def __init__(
        self, service: ExecutionService, *, credentials: Callable[[str], Awaitable[dict[str, str]]],
        models: Callable[[str, str], Awaitable[dict[str, Any] | None]], timeout_s: float,
        tools: ToolResolver | None = None, replays: ReplayService | None = None,
    ) -> None:
        self.service = service
        self.credentials = credentials
        self.models = models
        self.timeout_s = timeout_s
        self.tools = tools
        self.replays = replays

    async def build(self, job: ExecutionJob) -> CrewJob:
        """The job's child's whole description; the keys it is handed are scrubbed from what it records."""
        credentials = await self.credentials(job.group_id)
        # A provider error or a chatty model can repeat a key: never record one.
        self.service.protect(job.execution_id, credentials.values())
        agents = {key: dict(agent) for key, agent in job.agents.items()}
        names = {job.model, job.manager_llm or "", *(str(agent.get(field) or "") for agent in agents.values()
                                                      for field in ("llm", "function_calling_llm"))}
        models = {name: await self._model_call(job.group_id, name) for name in sorted(names) if name}
        tools = await self.tools.specs(job.group_id, [*agents.values(), *job.tasks.values()]) if self.tools else {}
        return CrewJob(
            execution_id=str(job.execution_id), agents=agents, tasks=job.tasks, inputs=job.inputs,
            process=job.process, model=job.model, manager_llm=job.manager_llm, planning=job.planning,
            credentials=credentials, timeout_s=self.timeout_s, models=models, crew=job.crew_settings, tools=tools,
            files_dir=self.tools.files_dir(job.group_id) if self.tools else None,
            allow_private_urls=bool(self.tools and self.tools.allow_private_urls),
            **await self._repeated(job),
        )

    async def _repeated(self, job: ExecutionJob) -> dict[str, Any]:
        """What a replay answers from, or the outputs a rerun from a task reuses."""
        origin = job.origin or {}
        if self.replays is None:
            return {}
        if origin.get(REPLAY_OF):
            return {"replay": await in_thread(self.replays.recording, uuid.UUID(origin[REPLAY_OF]))}
        if origin.get(RERUN_OF) and origin.get("from_task"):
            reused = await in_thread(self.replays.reused_outputs, uuid.UUID(origin[RERUN_OF]), origin["from_task"],
                                     list(job.tasks))
            return {"reused": reused}
        return {}

    async def _model_call(self, group_id: str, name: str) -> ModelCall:
        """How to call what ``name`` means in the group's catalogue (a name it lacks is called as is)."""
        record = await self.models(group_id, name)
        return model_call(record) if record else ModelCall(model=name)

