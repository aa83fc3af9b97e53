"""``POST /api/v1/executions/generate-name``: a name for a run, never an error."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import post

from interface.wiring import Kasal


class GenerateNameRequest(msgspec.Struct, kw_only=True):
    agents_yaml: str | dict[str, Any] | None = None
    tasks_yaml: str | dict[str, Any] | None = None
    model: str | None = None


class GeneratedRunName(msgspec.Struct, kw_only=True):
    name: str


@post("/api/v1/executions/generate-name", summary="Suggest a name for a run", status_code=200,
      tags=["executions"], opt={"min_role": "operator"})
async def generate_name(kasal: Kasal, data: GenerateNameRequest) -> GeneratedRunName:
    """A short name for a run of this crew config. Never fails: when the model cannot answer,
    the name is the placeholder (first task's name, first agent's role + " Run", or
    ``Execution-<timestamp>``)."""
    name = await kasal.services.run_names.suggest(data.agents_yaml, data.tasks_yaml, data.model)
    return GeneratedRunName(name=name)
