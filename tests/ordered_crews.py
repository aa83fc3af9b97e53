"""Crews whose order is their meaning, for the tests that check it survives everything.

A crew's tasks run in the order they are written, and a task's ``context``
may only name tasks written before it. Keys vary in length on purpose:
PostgreSQL's ``jsonb`` stores object keys shortest first, so a store that
reorders mappings turns most of these crews into ones that cannot run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

FORMS = ("mapping", "json text", "yaml text")

_FIRST = "abcdefghijklmnopqrstuvwxyz"
config_keys = st.builds(str.__add__, st.sampled_from(_FIRST), st.text(_FIRST + "0123456789_", max_size=29))


@dataclass(frozen=True)
class OrderedCrew:
    agents: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]


@st.composite
def ordered_crews(draw: st.DrawFn, max_tasks: int = 7) -> OrderedCrew:
    """Agents and tasks in a random written order, each task's context naming earlier ones only."""
    agent_keys = draw(st.lists(config_keys, min_size=1, max_size=4, unique=True))
    task_keys = draw(st.lists(config_keys, min_size=2, max_size=max_tasks, unique=True))
    agents = {key: {"role": f"Role {key}", "goal": f"Goal of {key}", "backstory": "Knows things",
                    "llm": "offline/echo"} for key in agent_keys}
    tasks: dict[str, dict[str, Any]] = {}
    for index, key in enumerate(task_keys):
        entry: dict[str, Any] = {"description": f"Do {key}", "expected_output": "Done",
                                 "agent": draw(st.sampled_from(agent_keys))}
        if index:
            entry["context"] = draw(st.lists(st.sampled_from(task_keys[:index]), unique=True))
        tasks[key] = entry
    return OrderedCrew(agents, tasks)


def written(mapping: dict[str, Any], form: str) -> Any:
    """``mapping`` as a client may send it: an object, JSON text or YAML text (same order)."""
    if form == "json text":
        return json.dumps(mapping)
    if form == "yaml text":
        return yaml.safe_dump(mapping, sort_keys=False)
    return mapping


def in_order(value: Any) -> str:
    """A rendering that differs whenever two values differ, key order included (``==`` ignores it)."""
    return json.dumps(value)
