"""Comparing two executions (``application.compare``): examples and properties."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from application.compare import RunRecord, compare, same_text

GOAL = "Find facts about {topic}"
CONFIG: dict[str, Any] = {
    "agents": {"researcher": {"role": "R", "goal": GOAL, "tools": ["calculator"]},
               "writer": {"role": "W", "goal": "Write", "tools": []}},
    "tasks": {"research": {"description": "Research", "agent": "researcher"},
              "write": {"description": "Write", "agent": "writer", "context": ["research"]}},
    "process": "sequential", "planning": False, "options": {}, "model": "offline/echo",
}
LONG = "x" * 5000


def inline(text: str) -> dict[str, Any]:
    return {"preview": text, "size": len(text.encode()), "sha256": None}


def hashed(text: str) -> dict[str, Any]:
    data = text.encode()
    return {"preview": text[:240], "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def record(id: str = "a", config: dict[str, Any] | None = None, **fields: Any) -> RunRecord:
    return RunRecord(id=id, status=fields.pop("status", "COMPLETED"), config=CONFIG if config is None else config,
                     **fields)


def with_goal(goal: str) -> dict[str, Any]:
    agents = {**CONFIG["agents"], "researcher": {**CONFIG["agents"]["researcher"], "goal": goal}}
    return {**CONFIG, "agents": agents}


def test_a_changed_goal_is_one_path_with_both_values() -> None:
    answer = compare(record("a"), record("b", with_goal("Find sources")))
    assert answer["config"] == [{"path": "agents.researcher.goal", "a": GOAL, "b": "Find sources"}]
    assert (answer["a"], answer["b"]) == ("a", "b")


def test_key_order_alone_is_no_change_except_for_the_order_of_tasks_and_agents() -> None:
    reordered_options = {**CONFIG, "options": {}, "agents": {"researcher": dict(reversed(
        list(CONFIG["agents"]["researcher"].items()))), "writer": CONFIG["agents"]["writer"]}}
    assert compare(record(), record(config=reordered_options))["config"] == []

    swapped = {**CONFIG, "tasks": dict(reversed(list(CONFIG["tasks"].items())))}
    assert compare(record(), record(config=swapped))["config"] == [
        {"path": "tasks.<order>", "a": ["research", "write"], "b": ["write", "research"]}]


def test_an_added_task_is_its_whole_definition_and_no_reordering() -> None:
    review = {"description": "Review", "agent": "writer"}
    more = {**CONFIG, "tasks": {**CONFIG["tasks"], "review": review}}
    assert compare(record(), record(config=more))["config"] == [{"path": "tasks.review", "a": None, "b": review}]


def test_lists_are_compared_whole_and_json_types_matter() -> None:
    tools = {**CONFIG, "agents": {**CONFIG["agents"], "writer": {**CONFIG["agents"]["writer"], "tools": ["x"]}},
             "planning": 0}
    assert compare(record(), record(config=tools))["config"] == [
        {"path": "agents.writer.tools", "a": [], "b": ["x"]}, {"path": "planning", "a": False, "b": 0}]


def test_inputs_list_each_changed_name() -> None:
    answer = compare(record(inputs={"topic": "AI", "depth": 2}), record(inputs={"topic": "bees", "tone": "dry"}))
    assert answer["inputs"] == {"same": False, "changed": [
        {"name": "topic", "a": "AI", "b": "bees"}, {"name": "depth", "a": 2, "b": None},
        {"name": "tone", "a": None, "b": "dry"}]}
    assert compare(record(inputs={"topic": "AI"}), record(inputs={"topic": "AI"}))["inputs"] == {
        "same": True, "changed": []}


def test_texts_are_the_same_by_hash_or_by_the_digest_of_a_whole_inline_text() -> None:
    assert same_text(hashed(LONG), hashed(LONG)) and not same_text(hashed(LONG), hashed(LONG[:-1] + "y"))
    assert same_text(inline("short"), hashed("short")) and same_text(hashed("short"), inline("short"))
    assert not same_text(inline("short"), hashed("shorT"))
    assert same_text(None, None) and not same_text(inline(""), None)
    cut = {"preview": LONG[:240], "size": 5000, "sha256": None}  # an old event kept only a preview
    assert same_text(cut, hashed(LONG)) and not same_text(cut, hashed("y" * 5000))


def test_tasks_are_the_same_only_with_the_same_status_and_output() -> None:
    a = [{"task": "research", "status": "completed", "output": hashed(LONG), "error": None},
         {"task": "write", "status": "completed", "output": inline("Para"), "error": None}]
    b = [{"task": "research", "status": "completed", "output": hashed(LONG), "error": None},
         {"task": "write", "status": "failed", "output": None, "error": "boom"}]
    answer = compare(record(task_outputs=a, result=inline("Para")), record("b", task_outputs=b[:1]))
    assert [(t["task"], t["same"]) for t in answer["tasks"]] == [("research", True), ("write", False)]
    assert answer["tasks"][1]["b"] is None and answer["tasks"][1]["a"]["output"] == inline("Para")
    assert answer["result_same"] is False and answer["result"] == {"a": inline("Para"), "b": None}

    failed = compare(record(task_outputs=a), record("b", task_outputs=b))["tasks"][1]
    assert failed["same"] is False and failed["b"] == {"status": "failed", "output": None, "error": "boom"}


# -- properties -------------------------------------------------------------------------------

KEYS = st.text(st.characters(codec="utf-8", exclude_characters="."), min_size=1, max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(
    max_size=8)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=12)
CONFIGS = st.dictionaries(KEYS, VALUES, max_size=5)
TEXTS = st.text(max_size=30).map(inline) | st.text(min_size=1, max_size=30).map(lambda t: hashed(t * 100))
OUTPUTS = st.lists(st.fixed_dictionaries({
    "task": st.sampled_from(["research", "write", "review"]), "status": st.sampled_from(["completed", "failed"]),
    "output": st.none() | TEXTS, "error": st.none() | st.text(max_size=8)}), max_size=4)
RECORDS = st.builds(
    RunRecord, id=st.uuids().map(str), status=st.sampled_from(["COMPLETED", "FAILED"]), config=CONFIGS,
    inputs=st.dictionaries(KEYS, VALUES, max_size=3), task_outputs=OUTPUTS, result=st.none() | TEXTS,
    usage=st.fixed_dictionaries({"total_tokens": st.integers(0, 10**6)}),
)


@given(RECORDS)
def test_a_run_compared_with_itself_differs_nowhere(run: RunRecord) -> None:
    answer = compare(run, run)
    assert answer["config"] == [] and answer["inputs"] == {"same": True, "changed": []}
    assert all(task["same"] for task in answer["tasks"]) and answer["result_same"]
    assert {task["task"] for task in answer["tasks"]} == {o["task"] for o in run.task_outputs}


@given(RECORDS, RECORDS)
def test_swapping_the_runs_swaps_every_side_and_keeps_the_paths(a: RunRecord, b: RunRecord) -> None:
    forth, back = compare(a, b), compare(b, a)

    def by_path(changes: list[dict[str, Any]], key: str) -> dict[str, tuple[Any, Any]]:
        return {change[key]: (json.dumps(change["a"]), json.dumps(change["b"])) for change in changes}

    assert by_path(back["config"], "path") == {p: (y, x) for p, (x, y) in by_path(forth["config"], "path").items()}
    assert len(back["config"]) == len(forth["config"])
    assert back["inputs"]["same"] == forth["inputs"]["same"]
    assert by_path(back["inputs"]["changed"], "name") == {
        n: (y, x) for n, (x, y) in by_path(forth["inputs"]["changed"], "name").items()}
    assert {t["task"]: (t["same"], t["b"], t["a"]) for t in back["tasks"]} == {
        t["task"]: (t["same"], t["a"], t["b"]) for t in forth["tasks"]}
    assert back["result_same"] == forth["result_same"]
    for part in ("result", "usage", "status"):
        assert (back[part]["a"], back[part]["b"]) == (forth[part]["b"], forth[part]["a"])
    assert (back["a"], back["b"]) == (forth["b"], forth["a"])


def leaves(config: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths (as keys) to every value that is not an object."""
    found: list[tuple[str, ...]] = []
    for key, value in config.items():
        found += leaves(value, (*prefix, key)) if isinstance(value, dict) else [(*prefix, key)]
    return found


def replaced(config: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    head, *rest = path
    return {**config, head: replaced(config[head], tuple(rest), value) if rest else value}


def at(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        config = config[key]
    return config


@given(CONFIGS.filter(leaves), st.data())
def test_one_changed_leaf_is_exactly_that_path(config: dict[str, Any], data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(leaves(config)))
    old = at(config, path)
    new = data.draw(VALUES.filter(lambda v: json.dumps(v, sort_keys=True) != json.dumps(old, sort_keys=True)))

    answer = compare(record(config=config), record("b", replaced(config, path, new)))

    assert answer["config"] == [{"path": ".".join(path), "a": old, "b": new}]
