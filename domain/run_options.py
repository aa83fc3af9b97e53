"""What a run cannot honour, so it is refused when written rather than ignored when run.

Agents, tasks and crews carry CrewAI's options. Most reach the crew (see
``interface/crew_runtime/child.py``); the ones here cannot, in this service:
code execution needs a sandbox, human input needs someone at a terminal,
memory needs an embedding service, callbacks and guardrail functions are
code that JSON cannot carry, and output files would be written on the
service's host. A value that changes nothing (``false``, ``null``, empty)
is always accepted, because Kasal clients send every field with its
default; only a value that would change the run is refused, with the
reason. Documents apply these rules in ``prepare``; the crew config
validator applies the same ones to ``agents_yaml``/``tasks_yaml`` entries,
so an inline crew cannot slip past them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from domain.errors import InvalidError

Path = tuple[str, ...]
Refusal = tuple[Path, str]  # where in the definition, and why the run cannot honour it
Rule = Callable[[object], str | None]

NO_SANDBOX = "needs a sandbox to run generated code, which this service does not have"
NO_HUMAN = "would stop the run to wait for a person at the crew's terminal; runs here have none"
NO_EMBEDDER = "needs an embedding service for its vector store, which this service does not configure"
NO_CODE = "is Python code in CrewAI; a stored definition cannot carry it"
NO_FILES = "would write files on the service's host; read the output from the execution instead"
TEMPLATE_PAIR = ("system_template", "prompt_template")
RESPONSE = "{{ .Response }}"
CONFIG_PASSED = frozenset({"output_json", "output_pydantic", "markdown", "human_input", "output_file"})
KASAL_CONFIG_DEFAULTS: dict[str, object] = {
    "cache_response": False, "cache_ttl": 3600, "retry_on_fail": True, "max_retries": 3, "timeout": None,
    "priority": 1, "error_handling": "default", "validation_function": None, "callback_function": None,
}
"""What Kasal's task form puts in every task's ``config``: accepted as sent, since they change nothing
here, so existing clients' tasks are not refused; another value of one of them is."""


def _when_true(reason: str) -> Rule:
    return lambda value: reason if value is True else None


def _when_set(reason: str) -> Rule:
    """Refused unless empty: ``null``, ``false``, ``""``, ``[]`` or ``{}`` change nothing."""
    return lambda value: reason if value not in (None, False, "", [], {}) else None


def schema_of(value: object) -> dict[str, Any] | None:
    """The JSON schema an ``output_json``/``output_pydantic`` value holds (an object, or its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Mapping) and (value.get("type") == "object" or isinstance(value.get("properties"), Mapping)):
        return dict(value)
    return None


def _schema(value: object) -> str | None:
    if not isinstance(value, str | Mapping) or value == "" or schema_of(value) is not None:
        return None  # not text or an object at all: the type checks say so
    return ("must be a JSON schema of an object (with \"properties\"), as an object or its JSON text; "
            "this service has no registry of named output models")


def _code_mode(value: object) -> str | None:
    return "unsafe " + NO_SANDBOX if value == "unsafe" else None


AGENT_RULES: dict[str, Rule] = {
    "allow_code_execution": _when_true(NO_SANDBOX),
    "code_execution_mode": _code_mode,
    "multimodal": _when_true("needs image tools this service does not provide"),
    "guardrail": _when_set(NO_CODE + " (or an LLM check) this service does not run for agents"),
    "callbacks": _when_set(NO_CODE),
    "step_callback": _when_set(NO_CODE),
    "config": _when_set("would set CrewAI fields behind the API's back; set the fields themselves"),
    "embedder": _when_set(NO_EMBEDDER),
    "knowledge": _when_set(NO_EMBEDDER),
    "knowledge_sources": _when_set(NO_EMBEDDER),
    "knowledge_config": _when_set(NO_EMBEDDER),
    "a2a": _when_set("calls remote agents, which this service does not connect to"),
    "apps": _when_set("needs CrewAI platform apps, which this service does not connect to"),
    "mcps": _when_set("names MCP servers directly; use the tool catalogue instead"),
    "from_repository": _when_set("loads agents from the CrewAI platform, which this service does not connect to"),
    "checkpoint": _when_set(NO_FILES),
    "skills": _when_set("loads skill files from the service's host"),
    "planning_config": _when_set(NO_CODE),
    "security_config": _when_set(NO_CODE),
    "tool_failure_policy": _when_set(NO_CODE),
}

TASK_RULES: dict[str, Rule] = {
    "human_input": _when_true(NO_HUMAN),
    "output_file": _when_set(NO_FILES),
    "output_json": _schema,
    "output_pydantic": _schema,
    "response_model": _when_set("needs native function calling; use output_json or output_pydantic"),
    "callback": _when_set(NO_CODE),
    "guardrail": _when_set(NO_CODE + " (or an LLM check) this service does not run"),
    "guardrails": _when_set(NO_CODE + " (or an LLM check) this service does not run"),
    "converter_cls": _when_set(NO_CODE),
    "input_files": _when_set(NO_FILES),
    "security_config": _when_set(NO_CODE),
    "tool_failure_policy": _when_set(NO_CODE),
}

CREW_RULES: dict[str, Rule] = {
    "memory": _when_true(NO_EMBEDDER),
}


def _apply(rules: Mapping[str, Rule], fields: Mapping[str, Any], prefix: Path = ()) -> list[Refusal]:
    found: list[Refusal] = []
    for name, rule in rules.items():
        reason = rule(fields.get(name))
        if reason:
            found.append(((*prefix, name), reason))
    return found


def _templates(fields: Mapping[str, Any]) -> list[Refusal]:
    """CrewAI uses custom templates only as a pair (``response_template`` only with both)."""
    found: list[Refusal] = []
    given = [name for name in TEMPLATE_PAIR if fields.get(name)]
    if len(given) == 1:
        other = next(name for name in TEMPLATE_PAIR if name not in given)
        found.append(((given[0],), f"takes effect only together with {other}; CrewAI ignores one alone"))
    response = fields.get("response_template")
    if response and len(given) < 2:
        found.append((("response_template",), "takes effect only with system_template and prompt_template"))
    elif isinstance(response, str) and response and not response.partition(RESPONSE)[2].strip():
        found.append((("response_template",), f"needs text after {RESPONSE}: CrewAI ends each answer there, and "
                                              "without one it would cut every answer to nothing"))
    return found


def _tool_configs(fields: Mapping[str, Any]) -> list[Refusal]:
    """Each entry configures a tool the agent uses, with an object of that tool's options."""
    configs = fields.get("tool_configs")
    if not isinstance(configs, Mapping):
        return []
    tools = fields.get("tools")
    used = {str(t) for t in tools} if isinstance(tools, list) else set()
    found: list[Refusal] = []
    for name, options in configs.items():
        if not isinstance(options, Mapping):
            found.append((("tool_configs", str(name)), "must be an object of the tool's options"))
        elif str(name) not in used:
            found.append((("tool_configs", str(name)),
                          f"configures tool {name!r}, which the agent's tools do not list"))
    return found


def agent_refusals(fields: Mapping[str, Any]) -> list[Refusal]:
    """``(field, reason)`` for every value of an agent the run could not honour."""
    return [*_apply(AGENT_RULES, fields), *_templates(fields), *_tool_configs(fields)]


def task_refusals(fields: Mapping[str, Any]) -> list[Refusal]:
    """``(field, reason)`` for a task; its free-form ``config`` is checked key by key."""
    found = _apply(TASK_RULES, fields)
    config = fields.get("config")
    if isinstance(config, Mapping):
        found += _apply(TASK_RULES, config, ("config",))
        for key, value in config.items():
            if key in KASAL_CONFIG_DEFAULTS and value == KASAL_CONFIG_DEFAULTS[key] \
                    and type(value) is type(KASAL_CONFIG_DEFAULTS[key]):
                continue
            if key not in CONFIG_PASSED and key not in TASK_RULES and value not in (None, False, "", [], {}):
                found.append((("config", str(key)), "is not a task option a run here honours; set the task's own "
                              "fields (" + ", ".join(sorted(CONFIG_PASSED)) + " are read from config too)"))
    return found


def crew_refusals(fields: Mapping[str, Any]) -> list[Refusal]:
    """``(field, reason)`` for a crew's own settings."""
    return _apply(CREW_RULES, fields)


class RefusedFieldsError(InvalidError):
    """Fields a run could not honour; answered 422 in pydantic's shape, each field in ``loc``."""

    def __init__(self, kind: str, refusals: list[Refusal]) -> None:
        super().__init__(
            f"This {kind} cannot run as written: " + "; ".join(f"{'.'.join(p)} {reason}" for p, reason in refusals),
            errors=[(".".join(path), reason) for path, reason in refusals],
        )
        self.refusals = refusals


def refuse(kind: str, refusals: list[Refusal]) -> None:
    """Raise ``RefusedFieldsError`` naming every refused field, or return."""
    if refusals:
        raise RefusedFieldsError(kind, refusals)
