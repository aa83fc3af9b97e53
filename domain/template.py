"""Prompt templates: named texts with ``{placeholders}`` the generators fill in.

The placeholder language is deliberately tiny so a template can be checked
when it is saved rather than when a generation fails: ``{name}`` (a Python
identifier) is a placeholder, ``{{`` and ``}}`` are literal braces, and any
other brace is an error. That keeps JSON examples in prompts unambiguous:
they are written with doubled braces.
"""

from __future__ import annotations

import json
import re
from typing import Any

from domain.base import Document, stable_topics
from domain.errors import InvalidError

SYSTEM_GROUP = "system"
"""Group of the built-in templates every group sees (until it overrides one by name)."""

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


class TemplateSyntaxError(InvalidError):
    """A brace that is neither a ``{placeholder}`` nor an escaped ``{{`` / ``}}``."""


def _scan(text: str) -> list[tuple[int, int, str | None]]:
    """``(start, end, placeholder-or-None)`` for every brace token; raises on a stray brace."""
    tokens: list[tuple[int, int, str | None]] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{", "}"):
            snippet = text[max(0, match.start() - 15): match.start() + 15]
            raise TemplateSyntaxError(
                f"Stray '{token}' at character {match.start()} (near {snippet!r}): write "
                "{name} for a placeholder and {{ or }} for a literal brace",
                errors=[("template", f"stray '{token}' at character {match.start()}")],
            )
        tokens.append((match.start(), match.end(), match.group(1)))
    return tokens


def placeholders(text: str) -> list[str]:
    """Distinct placeholder names in order of first use."""
    seen: dict[str, None] = {}
    for _, _, name in _scan(text):
        if name is not None:
            seen.setdefault(name, None)
    return list(seen)


def escape(text: str) -> str:
    """Literal text as template text (every brace doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def render(text: str, values: dict[str, Any]) -> str:
    """Fill every placeholder; values that are not strings are written as JSON.

    Values for names the template does not use are ignored, so a caller can
    pass everything it knows to a template a group has trimmed down.
    """
    tokens = _scan(text)
    missing = [n for n in dict.fromkeys(name for _, _, name in tokens if name) if n not in values]
    if missing:
        raise InvalidError(
            "Missing template variables: " + ", ".join(missing),
            errors=[("variables", f"missing value for '{n}'") for n in missing],
        )
    parts: list[str] = []
    at = 0
    for start, end, name in tokens:
        parts.append(text[at:start])
        parts.append(_as_text(values[name]) if name else text[start])
        at = end
    parts.append(text[at:])
    return "".join(parts)


@stable_topics("template")
class Template(Document):
    KIND = "template"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        name = str(fields.get("name") or "").strip()
        text = fields.get("template")
        if not isinstance(text, str):
            text = ""
        problems = []
        if not name:
            problems.append(("name", "Field required"))
        if not text.strip():
            problems.append(("template", "Field required"))
        if problems:
            raise InvalidError(
                "Template is missing required fields: " + ", ".join(f for f, _ in problems), errors=problems
            )
        used = placeholders(text)
        declared = fields.get("variables")
        variables = used if declared is None else list(dict.fromkeys(declared))
        missing = [v for v in used if v not in variables]
        unused = [v for v in variables if v not in used]
        if missing or unused:
            errors = [("variables", f"'{v}' is used in the template but not listed") for v in missing]
            errors += [("variables", f"'{v}' is listed but not used in the template") for v in unused]
            summary = "; ".join(
                part for part in (
                    "missing: " + ", ".join(missing) if missing else "",
                    "unused: " + ", ".join(unused) if unused else "",
                ) if part
            )
            raise InvalidError(f"Template variables do not match its placeholders ({summary})", errors=errors)
        return {
            "name": name,
            "description": str(fields.get("description") or ""),
            "template": text,
            "variables": variables,
            "is_active": bool(fields.get("is_active", True)),
        }

    @staticmethod
    def with_changes(fields: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """Fields after a partial change: new text without a variables list re-derives it."""
        if "template" in changes and "variables" not in changes:
            changes = {**changes, "variables": None}
        return {**fields, **changes}

    def change(self, changes: dict[str, Any]) -> dict[str, Any]:
        return super().change(self.with_changes(self.fields, changes))

    @property
    def built_in(self) -> bool:
        return self.group_id == SYSTEM_GROUP
