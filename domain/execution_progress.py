"""What a running crew reports, and how it becomes small progress events.

A crew's child process reports *observations* (log lines, crew/agent/task
starts and ends, LLM calls, tool uses), these very Structs, msgpack-encoded on
its pipe; the runner hands them to the aggregate as they come. A run ends with
exactly one ``Outcome``: the crew's result or why it failed.

``ProgressBuilder`` turns observations into the payload of
``Execution.ProgressRecorded`` events: it numbers log lines, gives spans ids
and parents, sums usage, and starts a new event before one would pass the
size budget, so no event grows past ~16 KB however large a batch is. Large
texts are expected to arrive already offloaded as ``TextRef`` (the
application does that); a long plain string is cut to a preview here so an
event can never carry it whole.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.redaction import scrub

PREVIEW_CHARS = 240
INLINE_BYTES = 2000
EVENT_BUDGET_BYTES = 12_000
NAME_CHARS = 200
NAME_FIELDS = ("agent", "task", "tool", "model", "name", "source", "level")
ROOT_SPAN = "execution"
MAX_LISTED = 32
LISTED_CHARS = 80
"""At most ``MAX_LISTED`` tool or header names, each cut to ``LISTED_CHARS``, are recorded per call."""
LATEST_AT = 32_503_680_000.0  # 3000-01-01 in unix seconds


class TextRef(msgspec.Struct, frozen=True, kw_only=True):
    """A text kept in the content store: its hash, size and a short preview.

    ``sha256`` is None when the text was short enough to keep whole, in which
    case ``preview`` *is* the text.
    """

    preview: str
    size: int
    sha256: str | None = None

    @classmethod
    def inline(cls, text: str) -> TextRef:
        """A short text kept whole; a long one cut to a preview (its rest is lost)."""
        if fits_inline(text):
            return cls(preview=text, size=len(text.encode()))
        return cls(preview=text[:PREVIEW_CHARS], size=len(text.encode()))


def fits_inline(text: str) -> bool:
    """Short enough (in UTF-8 bytes, which is what events are stored as) to keep in an event."""
    return len(text) <= INLINE_BYTES // 4 or len(text.encode()) <= INLINE_BYTES


def clip_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")


Text = str | TextRef


class _Observation(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """When (unix seconds) something happened in the crew."""

    at: float


class LogLine(_Observation, frozen=True, tag="log"):
    level: str = "INFO"
    source: str = "crew"
    message: Text = ""


class CrewStarted(_Observation, frozen=True, tag="crew_started"):
    name: str = "crew"


class CrewCompleted(_Observation, frozen=True, tag="crew_completed"):
    result: Text = ""


class CrewFailed(_Observation, frozen=True, tag="crew_failed"):
    error: str = ""


class AgentStarted(_Observation, frozen=True, tag="agent_started"):
    agent: str


class AgentCompleted(_Observation, frozen=True, tag="agent_completed"):
    agent: str
    output: Text = ""


class TaskStarted(_Observation, frozen=True, tag="task_started"):
    task: str
    agent: str = ""


class TaskCompleted(_Observation, frozen=True, tag="task_completed"):
    task: str
    agent: str = ""
    output: Text = ""


class TaskFailed(_Observation, frozen=True, tag="task_failed"):
    task: str
    agent: str = ""
    error: str = ""


class LlmCall(_Observation, frozen=True, tag="llm_call"):
    """One model call and the request behind it.

    ``model`` is the LiteLLM name called; the request fields say what it was
    called with: sampling settings, the other LiteLLM arguments
    (``parameters``), the endpoint, the *names* of extra headers (never their
    values, nor any key), the system prompt and the tools offered to the
    agent. Events written before they existed decode with the defaults.
    """

    model: str
    prompt: Text = ""
    response: Text = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost: float | None = None
    agent: str | None = None
    task: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    parameters: dict[str, Any] = {}
    api_base: str | None = None
    headers: list[str] = []
    system_prompt: Text = ""
    tools: list[str] = []
    replayed: bool = False
    """Answered from the recording of the run a replay repeats: no model was called, nothing paid."""


class ToolUsed(_Observation, frozen=True, tag="tool_used"):
    tool: str
    input: Text = ""
    output: Text | None = None
    error: str | None = None
    agent: str | None = None
    task: str | None = None


Observation = (
    LogLine | CrewStarted | CrewCompleted | CrewFailed | AgentStarted | AgentCompleted
    | TaskStarted | TaskCompleted | TaskFailed | LlmCall | ToolUsed
)
Outcome = CrewCompleted | CrewFailed
OUTCOMES = (CrewCompleted, CrewFailed)
"""The observations that end a run; nothing follows one."""
TEXT_FIELDS: dict[type, tuple[str, ...]] = {
    LogLine: ("message",),
    CrewCompleted: ("result",),
    AgentCompleted: ("output",),
    TaskCompleted: ("output",),
    LlmCall: ("prompt", "response", "system_prompt"),
    ToolUsed: ("input", "output"),
}
"""Which fields of each observation may carry large text (offloaded by the application)."""


def ref_of(value: Text | None) -> dict[str, Any] | None:
    """Plain data for an event: a ``TextRef`` as a dict (strings kept whole or cut)."""
    if value is None:
        return None
    ref = value if isinstance(value, TextRef) else TextRef.inline(value)
    return msgspec.structs.asdict(ref)


def short(text: str | None) -> str | None:
    return None if text is None else clip_bytes(text, INLINE_BYTES)


def clipped(observation: Observation) -> Observation:
    """Names (agent, task, tool, model, …) cut to a sane length, so no event can outgrow its
    budget, and a time no read model could store (NaN, year 3000+) replaced by 0."""
    changes: dict[str, Any] = {
        name: value[:NAME_CHARS] for name in NAME_FIELDS
        if isinstance(value := getattr(observation, name, None), str) and len(value) > NAME_CHARS
    }
    if not 0.0 <= observation.at < LATEST_AT:
        changes["at"] = 0.0
    return msgspec.structs.replace(observation, **changes) if changes else observation


def empty_usage() -> dict[str, Any]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0.0, "llm_calls": 0}


class ProgressBuilder:
    """Folds a batch of observations into one or more ``ProgressRecorded`` payloads.

    Starts from the aggregate's counters (last log seq, last span number, open
    spans, usage) and carries them forward, so each payload records the
    counters *after* it, and applying a payload only assigns.
    """

    def __init__(self, log_seq: int, span_seq: int, open_spans: dict[str, str], usage: dict[str, Any]) -> None:
        self.log_seq = log_seq
        self.span_seq = span_seq
        self.open_spans = dict(open_spans)
        self.usage = dict(usage)
        self.payloads: list[dict[str, Any]] = []
        self._items: list[tuple[str, dict[str, Any]]] = []
        self._fresh()

    def _fresh(self) -> None:
        self._current: dict[str, list[dict[str, Any]]] = {"logs": [], "spans": [], "task_outputs": []}
        self._bytes = 0

    def _counters(self) -> dict[str, Any]:
        return {"log_seq": self.log_seq, "span_seq": self.span_seq, "open_spans": dict(self.open_spans),
                "usage": dict(self.usage)}

    def _add(self, bucket: str, item: dict[str, Any]) -> None:
        self._items.append((bucket, item))

    def _end_payload(self, counters: dict[str, Any]) -> None:
        if any(self._current.values()):
            self.payloads.append(scrub({**self._current, **counters}))
        self._fresh()

    def build(self, observations: list[Observation]) -> list[dict[str, Any]]:
        for observation in observations:
            self.add(observation)
        self._end_payload(self._counters())
        return self.payloads

    def add(self, observation: Observation) -> None:
        """Fold one observation; its items all land in one payload, opened afresh if it would not fit.

        A payload closed early records the counters from *before* this
        observation, so every payload's counters describe exactly its items.
        """
        before = self._counters()
        self._fold(clipped(observation))
        items, self._items = self._items, []
        size = sum(len(msgspec.json.encode(item)) for _, item in items)
        carried = len(msgspec.json.encode(self.open_spans))  # every payload repeats the open spans
        if self._bytes and self._bytes + size + carried > EVENT_BUDGET_BYTES:
            self._end_payload(before)
        for bucket, item in items:
            self._current[bucket].append(item)
        self._bytes += size

    # -- spans -------------------------------------------------------------

    def _next_span(self) -> str:
        self.span_seq += 1
        return f"span-{self.span_seq}"

    def _parent(self, agent: str | None = None, task: str | None = None) -> str:
        for key in (f"agent:{agent}" if agent else None, f"task:{task}" if task else None, "crew"):
            if key and key in self.open_spans:
                return self.open_spans[key]
        return ROOT_SPAN

    def _open(self, key: str, kind: str, name: str, at: float, parent: str, attributes: dict[str, Any]) -> None:
        span_id = self._next_span()
        self.open_spans[key] = span_id
        self._add("spans", {
            "op": "open", "span_id": span_id, "parent_span_id": parent, "type": kind, "name": name,
            "at": at, "status": "running", "attributes": attributes,
        })

    def _close(self, key: str, kind: str, name: str, at: float, status: str, attributes: dict[str, Any]) -> None:
        span_id = self.open_spans.pop(key, None)
        if span_id is None:  # an end without a start: record it as a point in time
            self._point(kind, name, at, at, self._parent(), status, attributes)
            return
        self._add("spans", {
            "op": "close", "span_id": span_id, "type": kind, "name": name, "at": at,
            "status": status, "attributes": attributes,
        })

    def _point(self, kind: str, name: str, started: float, ended: float, parent: str, status: str,
               attributes: dict[str, Any]) -> None:
        self._add("spans", {
            "op": "point", "span_id": self._next_span(), "parent_span_id": parent, "type": kind,
            "name": name, "started_at": started, "at": ended, "status": status, "attributes": attributes,
        })

    # -- observations ------------------------------------------------------

    def _fold(self, o: Observation) -> None:
        if isinstance(o, LogLine):
            self.log_seq += 1
            message = ref_of(o.message) or {"preview": "", "size": 0, "sha256": None}
            self._add("logs", {
                "seq": self.log_seq, "at": o.at, "level": o.level.upper(), "source": o.source,
                "message": message["preview"], "size": message["size"], "sha256": message["sha256"],
            })
        elif isinstance(o, CrewStarted):
            self._open("crew", "crew", o.name, o.at, ROOT_SPAN, {})
        elif isinstance(o, CrewCompleted):
            self._close("crew", "crew", "crew", o.at, "completed", {"result": ref_of(o.result)})
        elif isinstance(o, CrewFailed):
            self._close("crew", "crew", "crew", o.at, "failed", {"error": short(o.error)})
        elif isinstance(o, TaskStarted):
            self._open(f"task:{o.task}", "task", o.task, o.at, self._parent(), {"agent": o.agent})
        elif isinstance(o, (TaskCompleted, TaskFailed)):
            self._task_ended(o)
        elif isinstance(o, AgentStarted):
            self._open(f"agent:{o.agent}", "agent", o.agent, o.at, self._parent(task=self._current_task()), {})
        elif isinstance(o, AgentCompleted):
            self._close(f"agent:{o.agent}", "agent", o.agent, o.at, "completed", {"output": ref_of(o.output)})
        elif isinstance(o, LlmCall):
            self._llm_call(o)
        elif isinstance(o, ToolUsed):
            attributes = {"tool": o.tool, "agent": o.agent, "task": o.task, "input": ref_of(o.input),
                          "output": ref_of(o.output), "error": short(o.error)}
            status = "failed" if o.error else "completed"
            self._point("tool_usage", o.tool, o.at, o.at, self._parent(o.agent, o.task), status, attributes)

    def _current_task(self) -> str | None:
        """The task started last and not yet ended: an agent's span nests under it."""
        return next((key[5:] for key in reversed(self.open_spans) if key.startswith("task:")), None)

    def _task_ended(self, o: TaskCompleted | TaskFailed) -> None:
        if isinstance(o, TaskFailed):
            output, error, status = None, short(o.error), "failed"
        else:
            output, error, status = ref_of(o.output), None, "completed"
        self._close(f"task:{o.task}", "task", o.task, o.at, status, {"output": output, "error": error})
        self._add("task_outputs", {"task": o.task, "agent": o.agent, "status": status, "output": output,
                                  "error": error, "at": o.at})

    def _llm_call(self, o: LlmCall) -> None:
        usage = self.usage
        usage["prompt_tokens"] += max(o.prompt_tokens, 0)
        usage["completion_tokens"] += max(o.completion_tokens, 0)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["cost"] = round(float(usage["cost"]) + (0.0 if o.replayed else float(o.cost or 0.0)), 10)
        usage["llm_calls"] += 1
        if o.replayed:
            usage["replayed_calls"] = usage.get("replayed_calls", 0) + 1
        attributes = {
            "model": o.model, "agent": o.agent, "task": o.task, "prompt_tokens": o.prompt_tokens,
            "completion_tokens": o.completion_tokens, "cost": o.cost, "latency_ms": o.latency_ms,
            "prompt": ref_of(o.prompt), "response": ref_of(o.response), "request": request_of(o),
        }
        if o.replayed:
            attributes["replayed"] = True
        latency_s = o.latency_ms / 1000.0 if 0.0 <= o.latency_ms < 1e9 else 0.0
        started = max(0.0, o.at - latency_s)
        self._point("llm_call", o.model, started, o.at, self._parent(o.agent, o.task), "completed", attributes)


def request_of(o: LlmCall) -> dict[str, Any]:
    """The request a call made, small enough for an event: long lists and parameters cut."""
    parameters: Any = o.parameters
    encoded = msgspec.json.encode(parameters)
    if len(encoded) > INLINE_BYTES:
        parameters = {"truncated": clip_bytes(encoded.decode(errors="ignore"), PREVIEW_CHARS)}
    return {
        "model": o.model, "temperature": o.temperature, "max_tokens": o.max_tokens, "parameters": parameters,
        "api_base": None if o.api_base is None else o.api_base[:NAME_CHARS],
        "headers": [name[:LISTED_CHARS] for name in o.headers[:MAX_LISTED]],
        "system_prompt": ref_of(o.system_prompt),
        "tools": [name[:LISTED_CHARS] for name in o.tools[:MAX_LISTED]],
    }
