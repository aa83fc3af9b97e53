"""Which agent/task options CrewAI knows, and what type each must have.

The lists mirror the user-settable fields of ``crewai.Agent`` and
``crewai.Task`` (crewai 1.x) plus ``temperature``, which Kasal accepts on
agents.  Unknown options are only warned about: CrewAI ignores what it does
not know, so they are harmless but usually a typo.  Options without a type
check here hold objects YAML cannot express well; we accept them as given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ._util import describe

Check = Callable[[object], "str | None"]


def text(value: object) -> str | None:
    """A non-empty string: required prose fields and names."""
    if not isinstance(value, str):
        return f"must be a string, got {describe(value)}"
    return None if value.strip() else "must not be empty"


def string(value: object) -> str | None:
    """Any string (templates may legitimately be empty)."""
    return None if isinstance(value, str) else f"must be a string, got {describe(value)}"


def boolean(value: object) -> str | None:
    """true/false only: "yes" in quotes is a string and CrewAI would reject it."""
    return None if isinstance(value, bool) else f"must be true or false, got {describe(value)}"


def integer(minimum: int) -> Check:
    """A whole number no smaller than ``minimum`` (booleans are not numbers here)."""

    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, got {describe(value)}"
        return None if value >= minimum else f"must be at least {minimum}, got {value}"

    return check


def number(low: float, high: float) -> Check:
    """A real number within ``[low, high]``."""

    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {describe(value)}"
        return None if low <= value <= high else f"must be between {low:g} and {high:g}, got {value!r}"

    return check


def choice(*options: str) -> Check:
    """One of a fixed set of strings."""

    def check(value: object) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}, got {describe(value)}"

    return check


def mapping(value: object) -> str | None:
    """A nested mapping such as ``config``."""
    return None if isinstance(value, Mapping) else f"must be a mapping, got {describe(value)}"


def name_list(value: object) -> str | None:
    """The list itself; elements are checked where their paths are known."""
    return None if isinstance(value, list) else f"must be a list of names, got {describe(value)}"


def schema(value: object) -> str | None:
    """Output schemas: a registered schema name or an inline JSON schema."""
    if isinstance(value, Mapping) or (isinstance(value, str) and value.strip()):
        return None
    return f"must be a schema name or a JSON schema mapping, got {describe(value)}"


AGENT_REQUIRED = ("role", "goal", "backstory")
TASK_REQUIRED = ("description", "expected_output")

AGENT_CHECKS: dict[str, Check] = {
    "role": text,
    "goal": text,
    "backstory": text,
    "llm": text,
    "function_calling_llm": text,
    "tools": name_list,
    "tool_configs": mapping,
    "allow_delegation": boolean,
    "verbose": boolean,
    "memory": boolean,
    "cache": boolean,
    "allow_code_execution": boolean,
    "respect_context_window": boolean,
    "use_system_prompt": boolean,
    "multimodal": boolean,
    "inject_date": boolean,
    "reasoning": boolean,
    "planning": boolean,
    "use_better_compaction": boolean,
    "max_iter": integer(1),
    "max_rpm": integer(1),
    "max_execution_time": integer(1),
    "max_tokens": integer(1),
    "max_reasoning_attempts": integer(1),
    "max_retry_limit": integer(0),
    "guardrail_max_retries": integer(0),
    "temperature": number(0, 2),
    "system_template": string,
    "prompt_template": string,
    "response_template": string,
    "date_format": text,
    "code_execution_mode": choice("safe", "unsafe"),
    "guardrail": text,
    "config": mapping,
}

AGENT_OPTIONS = frozenset(AGENT_CHECKS) | {
    "a2a",
    "apps",
    "callbacks",
    "checkpoint",
    "embedder",
    "from_repository",
    "knowledge",
    "knowledge_config",
    "knowledge_sources",
    "mcps",
    "planning_config",
    "security_config",
    "skills",
    "step_callback",
    "tool_failure_policy",
}

TASK_CHECKS: dict[str, Check] = {
    "description": text,
    "expected_output": text,
    "agent": text,
    "context": name_list,
    "name": text,
    "tools": name_list,
    "async_execution": boolean,
    "human_input": boolean,
    "markdown": boolean,
    "create_directory": boolean,
    "allow_crewai_trigger_context": boolean,
    "output_json": schema,
    "output_pydantic": schema,
    "response_model": schema,
    "output_file": text,
    "config": mapping,
    "guardrail": text,
    "guardrail_max_retries": integer(0),
    "max_retries": integer(0),
}

TASK_OPTIONS = frozenset(TASK_CHECKS) | {
    "callback",
    "converter_cls",
    "guardrails",
    "input_files",
    "security_config",
    "tool_failure_policy",
}

AGENT_TEXT_FIELDS = ("role", "goal", "backstory")
TASK_TEXT_FIELDS = ("description", "expected_output", "output_file")
