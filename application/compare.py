"""What differs between two executions: the configuration that ran, inputs, task outputs, result.

Pure: it reads only what the execution read model records (the configuration
snapshot, the recorded inputs, the task outcomes and the result as text
references) and never the content store. Texts are compared by what their
references prove: two SHA-256 hashes, or a hash and the digest of a text kept
whole inline; only when neither side's whole text is known (a long text an
old event cut to a preview) are size and preview compared.

Configuration paths are dotted (``agents.researcher.goal``). Objects are
compared key by key, so a key order that differs is no change, except for the
top-level ``agents`` and ``tasks``, whose order is the crew's: when the keys
both sides share come in another order, the path ``tasks.<order>`` lists each
side's keys. Lists are compared as whole values (one path for the list). A key
only one side has is one path whose other side is ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from application.content import digest

ORDERED_SECTIONS = ("agents", "tasks")
"""Top-level configuration objects whose key order is the order the crew has them in."""
ORDER = "<order>"


@dataclass(frozen=True)
class RunRecord:
    """One execution as the comparison needs it (from the execution read model)."""

    id: str
    status: str
    config: Mapping[str, Any]
    inputs: Mapping[str, Any] = field(default_factory=dict)
    task_outputs: Sequence[Mapping[str, Any]] = ()
    """``{task, status, output: TextRef | None, error}`` per task outcome, in the order they were recorded."""
    result: Mapping[str, Any] | None = None
    """The result's TextRef ``{preview, size, sha256}``, if the run has one."""
    usage: Mapping[str, Any] = field(default_factory=dict)


def compare(a: RunRecord, b: RunRecord) -> dict[str, Any]:
    """Every difference between ``a`` and ``b``, and what is the same, as plain data."""
    tasks = task_changes(a.task_outputs, b.task_outputs)
    return {
        "a": a.id, "b": b.id,
        "config": config_changes(a.config, b.config),
        "inputs": input_changes(a.inputs, b.inputs),
        "tasks": tasks,
        "result_same": same_text(a.result, b.result),
        "result": {"a": text_ref(a.result), "b": text_ref(b.result)},
        "usage": {"a": dict(a.usage), "b": dict(b.usage)},
        "status": {"a": a.status, "b": b.status},
    }


def same_value(x: Any, y: Any) -> bool:
    """Equal as JSON: ``1`` and ``true`` or ``1.0`` differ; an object's key order does not matter."""
    return _canonical(x) == _canonical(y)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _union(a: Iterable[str], b: Iterable[str]) -> list[str]:
    """The keys of ``a`` in order, then those only ``b`` has."""
    keys = list(a)
    seen = set(keys)
    return keys + [key for key in b if key not in seen]


def config_changes(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """``[{path, a, b}]`` for every leaf (or whole subtree only one side has) that differs."""
    changes: list[dict[str, Any]] = []
    for key in _union(a, b):
        path = f"{prefix}{key}"
        left, right = a.get(key), b.get(key)
        if key in a and key in b and isinstance(left, Mapping) and isinstance(right, Mapping):
            if not prefix and key in ORDERED_SECTIONS:
                changes += _order_change(path, left, right)
            changes += config_changes(left, right, f"{path}.")
        elif key not in a or key not in b or not same_value(left, right):
            changes.append({"path": path, "a": left, "b": right})
    return changes


def _order_change(path: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``<order>`` path when the keys both sides have come in another order (added or removed
    keys alone are no reordering: they have paths of their own)."""
    shared_a = [key for key in a if key in b]
    shared_b = [key for key in b if key in a]
    return [] if shared_a == shared_b else [{"path": f"{path}.{ORDER}", "a": list(a), "b": list(b)}]


def input_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``{same, changed: [{name, a, b}]}`` over the inputs' names (a missing one is ``None``).
    Secret inputs were recorded as ``[REDACTED]``, so two different secrets compare the same."""
    changed = [{"name": name, "a": a.get(name), "b": b.get(name)} for name in _union(a, b)
               if name not in a or name not in b or not same_value(a[name], b[name])]
    return {"same": not changed, "changed": changed}


def _outcomes(task_outputs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Each task's last recorded outcome, tasks in the order they first ended."""
    last: dict[str, Mapping[str, Any]] = {}
    for outcome in task_outputs:
        last[str(outcome.get("task", ""))] = outcome
    return last


def _side(outcome: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    return {"status": outcome.get("status"), "output": text_ref(outcome.get("output")), "error": outcome.get("error")}


def task_changes(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per task (by key): each side's status and output, and whether they are the same
    (same status and the same output text; a task one side never finished is not the same)."""
    ends_a, ends_b = _outcomes(a), _outcomes(b)
    answer: list[dict[str, Any]] = []
    for task in _union(ends_a, ends_b):
        left, right = ends_a.get(task), ends_b.get(task)
        same = (left is not None and right is not None and left.get("status") == right.get("status")
                and same_text(left.get("output"), right.get("output")))
        answer.append({"task": task, "same": same, "a": _side(left), "b": _side(right)})
    return answer


def text_ref(ref: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A TextRef as the answer shows it: ``{preview, size, sha256}``."""
    if ref is None:
        return None
    return {"preview": ref.get("preview", ""), "size": ref.get("size", 0), "sha256": ref.get("sha256")}


def _known_hash(ref: Mapping[str, Any]) -> str | None:
    """The text's SHA-256: recorded, or computed from a preview that is the whole text."""
    if ref.get("sha256"):
        return str(ref["sha256"])
    data = str(ref.get("preview", "")).encode()
    return digest(data) if len(data) == ref.get("size") else None


def same_text(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two recorded texts are the same text (two absent texts are)."""
    if a is None or b is None:
        return a is None and b is None
    if a.get("size") != b.get("size"):
        return False
    hash_a, hash_b = _known_hash(a), _known_hash(b)
    if hash_a is not None and hash_b is not None:
        return hash_a == hash_b
    return bool(a.get("preview") == b.get("preview"))
