"""Replaying a run from its recording: every model and tool call answered as it was answered.

An execution records each LLM call (the prompt, kept whole in the content
store or inline, and the response) and each tool use (input, output or
error). A replay runs the same configuration through the real crew runtime;
``Replayer`` stands in for the model and the tools, answering each call
from the recording. Calls are matched by content, in order: the next unused
recorded call with the same prompt (so tasks that run concurrently may
interleave differently), and for tools the next unused use of that tool,
whose input must be the same. A call the recording cannot answer is a
divergence, reported with the call's position and what differed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict, deque
from typing import Any

import msgspec

from domain.redaction import scrub


class RecordedCall(msgspec.Struct, frozen=True, kw_only=True):
    """One LLM call of the original run."""

    prompt_sha256: str
    response: str
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class RecordedTool(msgspec.Struct, frozen=True, kw_only=True):
    """One tool use of the original run: its output, or the error it raised."""

    tool: str
    input: str = ""
    output: str | None = None
    error: str | None = None


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay answers from; ``failure`` is the original's error when it FAILED."""

    execution_id: str
    calls: list[RecordedCall] = []
    tools: list[RecordedTool] = []
    failure: str | None = None


class Diverged(RuntimeError):
    """The replay asked for something its recording does not hold."""


class ReplayedFailure(RuntimeError):
    """A replay of a FAILED run reached the point where the original failed."""


def prompt_digest(text: str) -> str:
    """The hash a recorded prompt is kept under: SHA-256 of the text as stored."""
    return hashlib.sha256(str(scrub(text)).encode()).hexdigest()


def tool_name(name: str) -> str:
    """A tool's name as compared: crewai reports ``ScrapeWebsiteTool`` as ``scrape_website_tool``."""
    return "".join(c for c in name.lower() if c.isalnum())


def same_input(recorded: str, given: str) -> bool:
    """Whether a tool is called as it was: JSON arguments compared as data (a tool may add its
    defaults to what the model wrote, so the recorded arguments need only be among the given)."""
    if recorded == given:
        return True
    try:
        then, now = json.loads(recorded), json.loads(given)
    except ValueError:
        return False
    if isinstance(then, dict) and isinstance(now, dict):
        return all(key in now and now[key] == value for key, value in then.items())
    return bool(then == now)


class Replayer:
    """Answers a replay's calls from one recording (thread-safe: crews call from several threads)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._lock = threading.Lock()
        self._calls: dict[str, deque[tuple[int, RecordedCall]]] = defaultdict(deque)
        for position, call in enumerate(recording.calls, 1):
            self._calls[call.prompt_sha256].append((position, call))
        self._tools: dict[str, deque[tuple[int, RecordedTool]]] = defaultdict(deque)
        for position, use in enumerate(recording.tools, 1):
            self._tools[tool_name(use.tool)].append((position, use))
        self.calls_made = 0
        self.tools_used = 0

    def answer(self, model: str, prompt: str) -> RecordedCall:
        """The recorded answer to this prompt; ``Diverged`` (or the original's failure) if there is none."""
        sha = prompt_digest(prompt)
        with self._lock:
            self.calls_made += 1
            position = self.calls_made
            queue = self._calls.get(sha)
            if queue:
                return queue.popleft()[1]
            self._fail_beyond(position, len(self.recording.calls))
            expected = self._next_unused_call()
        where = f"LLM call {position} (model {model})"
        if expected is None:
            raise Diverged(f"replay diverged at {where}: the recording holds no further call")
        raise Diverged(f"replay diverged at {where}: its prompt (sha256 {sha[:12]}) differs from the "
                       f"recorded call {expected[0]} (sha256 {expected[1].prompt_sha256[:12]})")

    def tool(self, name: str, given: str) -> RecordedTool:
        """The recorded use of tool ``name`` with this input; ``Diverged`` if there is none."""
        with self._lock:
            self.tools_used += 1
            position = self.tools_used
            queue = self._tools.get(tool_name(name))
            if queue and same_input(queue[0][1].input, given):
                return queue.popleft()[1]
            self._fail_beyond(position, len(self.recording.tools))
            recorded = queue[0][1].input if queue else None
        where = f"tool use {position} ({name})"
        if recorded is None:
            raise Diverged(f"replay diverged at {where}: the recording holds no further use of {name}")
        raise Diverged(f"replay diverged at {where}: input {_clip(given)} differs from the recorded "
                       f"{_clip(recorded)}")

    def _fail_beyond(self, position: int, recorded: int) -> None:
        """Past the last recorded call of a run that FAILED, the replay fails as it did."""
        if self.recording.failure is not None and position > recorded:
            raise ReplayedFailure(self.recording.failure)

    def _next_unused_call(self) -> tuple[int, RecordedCall] | None:
        unused = [queue[0] for queue in self._calls.values() if queue]
        return min(unused, key=lambda item: item[0]) if unused else None


def _clip(text: Any, limit: int = 80) -> str:
    shown = str(text)
    return repr(shown if len(shown) <= limit else shown[:limit] + "…")
