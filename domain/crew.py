"""Crews: a team of agents working through tasks under one process.

A crew is saved even when its ``agents_yaml``/``tasks_yaml`` do not (yet)
describe a runnable crew: people save drafts, and ``/crews/debug`` is where
they learn what is wrong. What the client sent is kept as sent; the decoded
entries (``agents_config``/``tasks_config``) are recorded alongside when the
application could decode them, and are ``None`` otherwise.
"""

from __future__ import annotations

from typing import Any

from domain.base import Document, stable_topics
from domain.errors import InvalidError
from domain.run_options import crew_refusals, refuse

PROCESSES = ("sequential", "hierarchical")

CREW_DEFAULTS: dict[str, Any] = {
    "description": "",
    "process": "sequential",
    "model": None,
    "verbose": False,
    "memory": False,
    "planning": False,
    "manager_llm": None,
    "max_rpm": None,
    "agent_ids": [],
    "task_ids": [],
    "nodes": [],
    "edges": [],
    "agents_yaml": None,
    "tasks_yaml": None,
    "agents_config": None,
    "tasks_config": None,
}
_NOT_NULL = ("description", "process", "verbose", "memory", "planning", "agent_ids", "task_ids", "nodes", "edges")


@stable_topics("crew")
class Crew(Document):
    KIND = "crew"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        merged = {**CREW_DEFAULTS, **fields}
        for key in _NOT_NULL:
            if merged.get(key) is None:
                merged[key] = CREW_DEFAULTS[key]
        if not str(merged.get("name") or "").strip():
            raise InvalidError("Crew is missing required fields: name", errors=[("name", "Field required")])
        if merged["process"] not in PROCESSES:
            raise InvalidError(
                f"Unknown process {merged['process']!r}",
                errors=[("process", "must be one of: " + ", ".join(PROCESSES))],
            )
        refuse("crew", crew_refusals(merged))
        return merged
