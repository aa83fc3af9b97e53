"""Naming execution runs: an instant placeholder, improved by a model when one answers.

``POST /executions/generate-name`` never fails: if the model cannot be
reached or answers unusably, the placeholder is the name.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

import msgspec

from application.generation import Kind
from application.offline_generation import topic


class GeneratedName(msgspec.Struct, kw_only=True):
    name: str


MAX_NAME = 80


def _name_rules(value: GeneratedName, allowed: Collection[str]) -> GeneratedName:
    name = " ".join(value.name.split()).strip(" .\"'")
    if not name:
        from application.generation import Unusable

        raise Unusable("the name is empty")
    return GeneratedName(name=name[:MAX_NAME].rstrip())


JOB_NAME: Kind[GeneratedName] = Kind("job name", "generate_job_name", GeneratedName, "job_name", _name_rules)


def name_reply(description: str, tools: Iterable[str]) -> str:
    """The offline model's name: the description's topic words, as a run."""
    return json.dumps({"name": f"{topic(description)} Run"})


def describe_config(agents: dict[str, dict[str, object]], tasks: dict[str, dict[str, object]]) -> str:
    """What a run does, in a few lines, for the naming prompt."""
    lines = [f"Task: {t.get('name') or key}: {t.get('description', '')}" for key, t in list(tasks.items())[:5]]
    lines += [f"Agent: {a.get('role', key)}" for key, a in list(agents.items())[:5]]
    return "\n".join(str(line)[:300] for line in lines) or "An AI agent run"
