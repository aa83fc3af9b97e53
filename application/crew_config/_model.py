"""Result types of crew-config validation.

They are msgspec Structs so the interface layer can return a report as JSON
without a translation step.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Finding(msgspec.Struct, frozen=True):
    """One problem, located by a dotted path into the submitted config.

    ``path`` looks like ``agents_yaml.researcher.goal`` or
    ``tasks_yaml.research.context[0]``; syntax errors point at the whole field
    (``agents_yaml``) and carry "line N, column M" in ``message``.
    """

    path: str
    message: str


class ParsedCrew(msgspec.Struct):
    """The decoded agents and tasks, in the order they were written.

    Order matters: CrewAI runs tasks sequentially in definition order.
    """

    agents: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]


class CrewReport(msgspec.Struct):
    """Everything a caller needs to accept, reject or run a crew config."""

    valid: bool
    errors: list[Finding]
    warnings: list[Finding]
    agents: list[str]
    tasks: list[str]
    placeholders: list[str]
    parsed: ParsedCrew | None
