"""Small helpers for building readable, precisely located findings."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_MAX_LISTED = 20
_MAX_SHOWN_TEXT = 40
_MAX_SHOWN_NAME = 60

NOUNS = {"agents_yaml": "agent", "tasks_yaml": "task"}


def noun_for(field: str) -> str:
    """What the entries of ``field`` are called in messages ("agent", "task")."""
    return NOUNS.get(field, "entry")


def encodable(text: str) -> bool:
    """Whether ``text`` survives UTF-8 encoding (no lone surrogates).

    YAML and JSON ``\\uD800``-style escapes can decode to lone surrogates,
    which no JSON response can carry.
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with lone surrogates spelled as escapes, safe to put in a message."""
    return text if encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def child(path: str, key: object) -> str:
    """Extend a dotted path; odd keys are JSON-quoted so the path stays unambiguous."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    text = printable(key) if isinstance(key, str) else repr(key)
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"


def item(path: str, index: int) -> str:
    """Path of a list element."""
    return f"{path}[{index}]"


def describe(value: object) -> str:
    """Name a value the way a YAML author thinks of it, for "got ..." messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN_TEXT else value[:_MAX_SHOWN_TEXT] + "..."
        return f"the string {json.dumps(printable(shown), ensure_ascii=False)}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a value of type {type(value).__name__}"


def listing(names: Iterable[str]) -> str:
    """A bounded, human-readable list of names (known keys can be many)."""
    shown = [name if len(name) <= _MAX_SHOWN_NAME else name[:_MAX_SHOWN_NAME] + "..." for name in names]
    if not shown:
        return "(none)"
    text = ", ".join(shown[:_MAX_LISTED])
    return text + (f", ... ({len(shown) - _MAX_LISTED} more)" if len(shown) > _MAX_LISTED else "")


def suggestion(name: str, options: Iterable[str]) -> str:
    """A " (did you mean X?)" hint for near-miss spellings, else ""."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""
