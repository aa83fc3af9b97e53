"""``POST /api/v1/executions/generate-name``: a name for a run, never an error."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import msgspec
from litestar import post

from application.crew_config import parse_config_map
from application.run_names import JOB_NAME, describe_config, name_reply
from domain.execution import placeholder_run_name
from interface.core import Core
from interface.http.generation import OFFLINE_REPLIES, GenerationFeature

log = logging.getLogger("kasal.run_names")
OFFLINE_REPLIES.setdefault(JOB_NAME.noun, name_reply)


class GenerateNameRequest(msgspec.Struct, kw_only=True):
    agents_yaml: str | dict[str, Any] | None = None
    tasks_yaml: str | dict[str, Any] | None = None
    model: str | None = None


class GeneratedRunName(msgspec.Struct, kw_only=True):
    name: str


@post("/api/v1/executions/generate-name", summary="Suggest a name for a run", status_code=200,
      tags=["executions"], opt={"min_role": "operator"})
async def generate_name(core: Core, data: GenerateNameRequest) -> GeneratedRunName:
    """A short name for a run of this crew config. Never fails: when the model cannot answer,
    the name is the placeholder (first task's name, first agent's role + " Run", or
    ``Execution-<timestamp>``)."""
    agents = parse_config_map(data.agents_yaml, field="agents_yaml")[0] or {}
    tasks = parse_config_map(data.tasks_yaml, field="tasks_yaml")[0] or {}
    fallback = placeholder_run_name(agents, tasks, datetime.now(timezone.utc))
    if not agents and not tasks:
        return GeneratedRunName(name=fallback)
    try:
        generated = await core.get(GenerationFeature).generate(JOB_NAME, describe_config(agents, tasks), data.model, [])
        return GeneratedRunName(name=generated.name)
    except Exception as exc:  # the contract: this endpoint never fails
        log.info("run name generation fell back to the placeholder: %s", exc)
        return GeneratedRunName(name=fallback)
