"""Find the JSON object in what a language model actually wrote.

Models asked for "one JSON object and nothing else" still wrap it in code
fences, think aloud in ``<think>`` blocks, add a sentence before or after,
and leave trailing commas. Rejecting all of that would make generation fail
for reasons a person would not call wrong, so we look for the object the
way a careful reader would: drop the thinking, prefer fenced blocks, take
the first balanced ``{...}`` (braces inside strings do not count) that parses
once trailing commas are removed. Anything else is an error that names what
was wrong, so the model can be asked again with that reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

MAX_CHARS = 200_000
"""Longer replies are cut: no generated definition is that long, and scanning stays cheap."""
MAX_PASSES = 20
"""Scans of the text for balanced braces (see ``balanced_objects``); bounds the work per reply."""
MAX_CANDIDATES = 200
"""Balanced spans tried as JSON before giving up; bounds the parsing work per reply."""

_THINK_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_FENCE = re.compile(r"```[\w+.-]*[ \t]*\n?(.*?)```", re.DOTALL)
# A JSON string (possibly unterminated at the end of the text) or a brace.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}]', re.DOTALL)
# A string (kept as it is) or a comma that only precedes a closing bracket.
_TRAILING_COMMA = re.compile(r'("(?:[^"\\]|\\.)*")|,(\s*[}\]])', re.DOTALL)


class LenientJsonError(ValueError):
    """No usable JSON object was found; the message says why, for the model to read."""


def without_thinking(text: str) -> str:
    """Drop reasoning blocks, a close tag whose opening was pre-filled, and an unclosed block."""
    text = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opening = _THINK_OPEN.search(text)
    return text[: opening.start()] if opening else text


def fenced_blocks(text: str) -> list[str]:
    """The contents of Markdown code fences, in order."""
    return [match.group(1) for match in _FENCE.finditer(text)]


def balanced_objects(text: str) -> Iterator[str]:
    """Every ``{...}`` span whose braces balance, ignoring braces inside strings, by start.

    One pass with a stack finds every span that starts at a brace the pass
    sees; a brace the pass took to be inside a string (a stray quote in the
    prose can cause that) starts a pass of its own. Work stays linear in the
    length of the text times ``MAX_PASSES``.
    """
    seen: set[int] = set()
    passes = 0
    for opening in re.finditer(r"\{", text):
        if opening.start() in seen:
            continue
        if passes == MAX_PASSES:
            return
        passes += 1
        spans: dict[int, int] = {}
        open_at: list[int] = []
        for token in _TOKEN.finditer(text, opening.start()):
            if token.group() == "{":
                seen.add(token.start())
                open_at.append(token.start())
            elif token.group() == "}" and open_at:
                spans[open_at.pop()] = token.end()
        for start in sorted(spans):
            yield text[start: spans[start]]


def without_trailing_commas(text: str) -> str:
    """``[1, 2,]`` → ``[1, 2]`` and ``{"a": 1,}`` → ``{"a": 1}``; strings are left untouched."""
    return _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text)


def parse_object(candidate: str) -> Any:
    """Parse one candidate, allowing raw newlines inside strings (models write them)."""
    return json.loads(without_trailing_commas(candidate), strict=False)


def extract_object(text: str) -> dict[str, Any]:
    """The first JSON object in a model's reply, found leniently (see the module docstring).

    Raises ``LenientJsonError`` when there is none.
    """
    visible = without_thinking(text[:MAX_CHARS])
    if not visible.strip():
        raise LenientJsonError("the answer was empty (or only reasoning); expected one JSON object")
    problem = "the answer contains no JSON object (nothing between { and })"
    candidates = (c for source in [*fenced_blocks(visible), visible] for c in balanced_objects(source))
    for tried, candidate in enumerate(candidates):
        if tried == MAX_CANDIDATES:
            break
        try:
            value = parse_object(candidate)
        except ValueError as exc:
            problem = f"the JSON object is not valid JSON: {exc}"
            continue
        if isinstance(value, dict):
            return value
    if "{" in visible and problem.startswith("the answer contains no"):
        problem = "the JSON object is incomplete: its braces do not balance"
    raise LenientJsonError(problem)
