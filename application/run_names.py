"""Naming execution runs: an instant placeholder, improved by a model when one answers.

``suggest`` (``POST /executions/generate-name``) never fails: if the model
cannot be reached or answers unusably, the placeholder is the name. The
runner asks ``for_job`` to improve a run's placeholder while it runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from application.crew_config import parse_config_map
from application.executions import ExecutionJob
from application.generation import Kind, Unusable
from application.generation_service import GenerationService
from application.offline_generation import topic
from domain.execution import placeholder_run_name

log = logging.getLogger("kasal.run_names")


class GeneratedName(msgspec.Struct, kw_only=True):
    name: str


MAX_NAME = 80


def _name_rules(value: GeneratedName, allowed: Collection[str]) -> GeneratedName:
    name = " ".join(value.name.split()).strip(" .\"'")
    if not name:
        raise Unusable("the name is empty")
    return GeneratedName(name=name[:MAX_NAME].rstrip())


def name_reply(description: str, tools: Iterable[str]) -> str:
    """The offline model's name: the description's topic words, as a run."""
    return json.dumps({"name": f"{topic(description)} Run"})


JOB_NAME: Kind[GeneratedName] = Kind("job name", "generate_job_name", GeneratedName, "job_name", _name_rules,
                                     name_reply)


def describe_config(agents: dict[str, dict[str, object]], tasks: dict[str, dict[str, object]]) -> str:
    """What a run does, in a few lines, for the naming prompt."""
    lines = [f"Task: {t.get('name') or key}: {t.get('description', '')}" for key, t in list(tasks.items())[:5]]
    lines += [f"Agent: {a.get('role', key)}" for key, a in list(agents.items())[:5]]
    return "\n".join(str(line)[:300] for line in lines) or "An AI agent run"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RunNamer:
    """Run names from the generation use case, as the caller's group."""

    def __init__(self, generation: GenerationService, clock: Callable[[], datetime] = _utc_now) -> None:
        self.generation = generation
        self.clock = clock

    async def suggest(self, agents_yaml: Any, tasks_yaml: Any, model: str | None) -> str:
        """A short name for a run of this config; the placeholder when the model cannot help
        (first task's name, first agent's role + " Run", or ``Execution-<timestamp>``)."""
        agents = parse_config_map(agents_yaml, field="agents_yaml")[0] or {}
        tasks = parse_config_map(tasks_yaml, field="tasks_yaml")[0] or {}
        fallback = placeholder_run_name(agents, tasks, self.clock())
        if not agents and not tasks:
            return fallback
        try:
            return (await self.generation.generate(JOB_NAME, describe_config(agents, tasks), model, [])).name
        except Exception as exc:  # the contract: a name is always answered
            log.info("run name generation fell back to the placeholder: %s", exc)
            return fallback

    async def for_job(self, job: ExecutionJob) -> str:
        """A model's name for a running job (errors are the caller's to ignore)."""
        return (await self.generation.generate(JOB_NAME, describe_config(job.agents, job.tasks), job.model, [])).name
