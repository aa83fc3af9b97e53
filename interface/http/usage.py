"""``GET /api/v1/usage``: what the caller's group spent on model calls, per key and in total.

The answer adds up the usage read model (``projections/usage.py``), which is
folded from the same progress events as each execution's usage in
``/execution-history/{id}``, so the ``total`` over a window is the sum of the
history entries of the executions requested in it.

An execution belongs to the instant it was requested: ``since`` (inclusive)
and ``until`` (exclusive) select by it, and ``day`` is its UTC date. Under
``group_by=model`` an execution counts once under every model it called, with
the calls, tokens and cost of that model only: the per-model tokens and costs
add up to the total, the executions may add up to more, and an execution that
called no model is in the total only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Controller, get

from interface.http.common import Instant, group_id, instant_param, invalid
from interface.wiring import Kasal
from projections.usage import GroupBy


class UsageFigures(msgspec.Struct, kw_only=True):
    executions: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float


class UsageItem(UsageFigures, kw_only=True):
    key: str | None


class UsageReport(msgspec.Struct, kw_only=True):
    group_by: str
    since: datetime | None
    until: datetime | None
    items: list[UsageItem]
    total: UsageFigures


def figures(row: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = int(row.get("prompt_tokens", 0)), int(row.get("completion_tokens", 0))
    cost = Decimal(row.get("cost", 0))  # an exact sum of costs recorded to 10 places: float() rounds once
    return {"executions": int(row.get("executions", 0)), "llm_calls": int(row.get("llm_calls", 0)),
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "cost": float(cost)}


class UsageController(Controller):
    path = "/api/v1"
    tags = ["usage"]

    @get("/usage", summary="Usage per model, crew, day or actor", opt={"min_role": "auditor"})
    async def usage(
        self, kasal: Kasal, group_by: GroupBy = "model", since: Instant = None, until: Instant = None,
    ) -> UsageReport:
        """Executions, LLM calls, prompt/completion/total tokens and cost of the caller's group, per
        ``group_by`` key (``model``, ``crew``, ``day`` in UTC, ``actor`` who requested) and in ``total``,
        for executions requested at or after ``since`` and before ``until`` (ISO 8601; default: all)."""
        start = instant_param(since, "since", blank_is_none=True)
        end = instant_param(until, "until", blank_is_none=True)
        if start is not None and end is not None and start > end:
            raise invalid("until", "query", "until must not be before since")
        rows, total = await kasal.views.usage.report(group_id(), group_by, start, end)
        return UsageReport(
            group_by=group_by, since=start, until=end, total=UsageFigures(**figures(total)),
            items=[UsageItem(key=row["key"], **figures(row)) for row in rows],
        )
