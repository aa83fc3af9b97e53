"""Comparing two executions: ``GET /api/v1/executions/{a}/compare/{b}``.

Two runs of a crew (another goal, other inputs, or the same crew on a model
that answers differently) are compared on what they recorded: the
configuration snapshot that ran (with the run's model), the inputs, each
task's status and output, the result, usage and status. The differencing is
``application.compare``; this module reads both executions of the caller's
group and shapes the answer.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, get

from application.compare import RunRecord, compare
from domain.errors import NotFoundError
from interface.http.common import group_id
from interface.http.executions import Usage
from interface.http.structs import to_struct
from interface.wiring import Kasal


class TextRefRead(msgspec.Struct, kw_only=True):
    """A recorded text: whole in ``preview`` when ``sha256`` is null, else its first characters."""

    preview: str
    size: int
    sha256: str | None


class ConfigChange(msgspec.Struct, kw_only=True):
    path: str
    a: Any
    b: Any


class InputChange(msgspec.Struct, kw_only=True):
    name: str
    a: Any
    b: Any


class InputsDiff(msgspec.Struct, kw_only=True):
    same: bool
    changed: list[InputChange]


class TaskSide(msgspec.Struct, kw_only=True):
    status: str
    output: TextRefRead | None
    error: str | None


class TaskDiff(msgspec.Struct, kw_only=True):
    task: str
    same: bool
    a: TaskSide | None
    b: TaskSide | None


class ResultPair(msgspec.Struct, kw_only=True):
    a: TextRefRead | None
    b: TextRefRead | None


class UsagePair(msgspec.Struct, kw_only=True):
    a: Usage
    b: Usage


class StatusPair(msgspec.Struct, kw_only=True):
    a: str
    b: str


class Comparison(msgspec.Struct, kw_only=True):
    a: str
    b: str
    config: list[ConfigChange]
    inputs: InputsDiff
    tasks: list[TaskDiff]
    result_same: bool
    result: ResultPair
    usage: UsagePair
    status: StatusPair


def run_record(row: dict[str, Any]) -> RunRecord:
    """An execution row as the comparison reads it: the snapshot (however it was kept) and the model."""
    config = row.get("config")
    if config is None and row.get("config_text"):
        config = json.loads(row["config_text"])
    return RunRecord(
        id=str(row["id"]), status=row["status"], config={**(config or {}), "model": row["model"]},
        inputs=row.get("inputs") or {}, task_outputs=row.get("task_outputs") or [], result=row.get("result_ref"),
        usage=row.get("usage") or {},
    )


async def _execution(kasal: Kasal, side: str, execution_id: UUID) -> dict[str, Any]:
    row = await kasal.views.executions.get(group_id(), execution_id)
    if row is None:
        raise NotFoundError(f"execution {execution_id} ({side}) not found")
    return row


class CompareController(Controller):
    path = "/api/v1/executions"
    tags = ["executions"]

    @get("/{a:uuid}/compare/{b:uuid}", summary="Compare two executions")
    async def compare(self, kasal: Kasal, a: UUID, b: UUID) -> Comparison:
        """What differs between two executions of the caller's group: ``config`` lists each changed
        path of the configuration that ran (``agents.researcher.goal``; ``tasks.<order>`` when the
        tasks' order changed; lists as whole values), ``inputs`` the changed inputs, ``tasks`` each
        task's status and output on both sides (``same``: same status and output text), then whether
        the results are the same text, and both runs' result, usage and status. An id the group does
        not have is 404, naming it."""
        first = await _execution(kasal, "a", a)
        second = await _execution(kasal, "b", b)
        return to_struct(compare(run_record(first), run_record(second)), Comparison)
