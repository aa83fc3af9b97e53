"""Agents: individual autonomous workers a crew is made of."""

from __future__ import annotations

from typing import Any

from domain.base import Document, stable_topics
from domain.errors import InvalidError
from domain.run_options import agent_refusals, refuse

DEFAULT_MODEL = "offline/echo"

AGENT_DEFAULTS: dict[str, Any] = {
    "name": "Unnamed Agent",
    "llm": DEFAULT_MODEL,
    "tools": [],
    "tool_configs": {},
    "max_iter": 25,
    "max_rpm": 10,
    "max_execution_time": None,
    "verbose": False,
    "allow_delegation": False,
    "cache": True,
    "memory": True,
    "temperature": None,
    "function_calling_llm": None,
    "system_template": None,
    "prompt_template": None,
    "response_template": None,
    "max_retry_limit": 2,
    "use_system_prompt": True,
    "respect_context_window": True,
    "allow_code_execution": False,
}
REQUIRED = ("role", "goal", "backstory")


@stable_topics("agent")
class Agent(Document):
    KIND = "agent"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        merged = {**AGENT_DEFAULTS, **{k: v for k, v in fields.items() if v is not None or k in AGENT_DEFAULTS}}
        for key in ("name", "llm"):
            if merged.get(key) is None:
                merged[key] = AGENT_DEFAULTS[key]
        missing = [f for f in REQUIRED if not str(merged.get(f) or "").strip()]
        if missing:
            raise InvalidError(
                "Agent is missing required fields: " + ", ".join(missing),
                errors=[(f, "Field required") for f in missing],
            )
        refuse("agent", agent_refusals(merged))
        return merged
