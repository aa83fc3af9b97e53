"""Execution traces: ``/api/v1/execution-trace/{id}`` and Kasal's ``/traces/job/{id}``.

Spans carry previews of prompts, responses and outputs; the whole text of
any reference (``{sha256, size, preview}``) is one more call to
``/execution-trace/{id}/content/{sha256}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.params import Parameter

from domain.errors import NotFoundError
from interface.http.common import group_id
from interface.http.executions import execution_or_404
from interface.wiring import Kasal

Sha256 = Annotated[str, Parameter(pattern="^[0-9a-f]{64}$", description="sha256 of the text, hex")]
SinceId = Annotated[int, Parameter(ge=0, le=2**63 - 1, description="Only records numbered after this one")]


class SpanRead(msgspec.Struct, kw_only=True):
    span_id: str
    parent_span_id: str | None
    type: str
    name: str
    started_at: datetime
    ended_at: datetime | None
    duration_ms: float | None
    status: str
    attributes: dict[str, Any]


class TraceRead(msgspec.Struct, kw_only=True):
    execution_id: str
    status: str
    spans: list[SpanRead]


class KasalTrace(msgspec.Struct, kw_only=True):
    """Kasal's trace record, mapped from a span."""

    id: int
    job_id: str
    event_source: str
    event_context: str
    event_type: str
    output: str | None
    trace_metadata: dict[str, Any]
    span_id: str
    parent_span_id: str | None
    duration_ms: float | None
    created_at: datetime


class KasalTraces(msgspec.Struct, kw_only=True):
    job_id: str
    traces: list[KasalTrace]


class ContentRead(msgspec.Struct, kw_only=True):
    sha256: str
    text: str


def kasal_event_type(span: dict[str, Any]) -> str:
    kind, status = span["type"], span["status"]
    if kind in ("crew", "task"):
        return f"{kind}_{'started' if status == 'running' else status}"
    if kind == "tool_usage" and status == "failed":
        return "tool_error"
    return str({"agent": "agent_execution", "state": "execution_status"}.get(kind, kind))


def preview(attributes: dict[str, Any]) -> str | None:
    for key in ("output", "response", "result"):
        ref = attributes.get(key)
        if isinstance(ref, dict) and ref.get("preview") is not None:
            return str(ref["preview"])
    return attributes.get("error") or attributes.get("message")


def kasal_trace(execution_id: UUID, number: int, span: dict[str, Any]) -> KasalTrace:
    attributes = span["attributes"]
    agent = attributes.get("agent") or (span["name"] if span["type"] == "agent" else None)
    task = attributes.get("task") or (span["name"] if span["type"] == "task" else None)
    return KasalTrace(
        id=number, job_id=str(execution_id), event_source=agent or span["type"], event_context=task or span["name"],
        event_type=kasal_event_type(span), output=preview(attributes), trace_metadata=attributes,
        span_id=span["span_id"], parent_span_id=span["parent_span_id"], duration_ms=span["duration_ms"],
        created_at=span["started_at"],
    )


class ExecutionTraceController(Controller):
    path = "/api/v1/execution-trace"
    tags = ["execution trace"]

    @get("/{execution_id:uuid}", summary="Get an execution's trace")
    async def get_trace(self, kasal: Kasal, execution_id: UUID) -> TraceRead:
        """Spans in time order: the execution, each status it passed through, the crew, tasks,
        agents, LLM calls (model, tokens, cost, latency) and tool uses, with parents and durations."""
        row = await execution_or_404(kasal, execution_id)
        spans = await kasal.views.execution_trace.spans(group_id(), execution_id)
        return TraceRead(execution_id=str(execution_id), status=row["status"],
                         spans=[SpanRead(**span) for span in spans])

    @get("/{execution_id:uuid}/content/{sha256:str}", summary="Get the whole text behind a reference")
    async def get_content(self, kasal: Kasal, execution_id: UUID, sha256: Sha256) -> ContentRead:
        """The whole prompt, response or output a span's ``{sha256, size, preview}`` stands for."""
        await execution_or_404(kasal, execution_id)
        text = await kasal.views.contents.text(group_id(), sha256)
        if text is None:
            raise NotFoundError(f"content {sha256} not found")
        return ContentRead(sha256=sha256, text=text)


@get("/api/v1/traces/job/{execution_id:uuid}", summary="Get an execution's trace (Kasal alias)",
     tags=["execution trace"])
async def kasal_traces(kasal: Kasal, execution_id: UUID, since_id: SinceId = 0) -> KasalTraces:
    """``{job_id, traces}`` in Kasal's record shape; ``since_id`` returns only later records."""
    await execution_or_404(kasal, execution_id)
    spans = await kasal.views.execution_trace.spans(group_id(), execution_id)
    traces = [kasal_trace(execution_id, n, span) for n, span in enumerate(spans, start=1) if n > since_id]
    return KasalTraces(job_id=str(execution_id), traces=traces)

