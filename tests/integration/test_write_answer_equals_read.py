"""A write's answer is the resource exactly as the next read returns it.

The answer is taken from the row the projector has just committed when this
process projected it (no read-back), from the table otherwise, or folded from
the log while the table lags; whichever it was, a client that compares the
answer with a later GET (or caches the answer under its ETag) must see the
same bytes. Bodies carry what users send: nested configs, unicode, floats,
keys in any order.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.documents import RecentRows

pytestmark = pytest.mark.anyio

text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(str.strip)
scalars = (st.none() | st.booleans() | st.integers(-2**53, 2**53)
           | st.floats(allow_nan=False, allow_infinity=False) | text)
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                      max_leaves=8)


@st.composite
def agents(draw: st.DrawFn) -> dict[str, Any]:
    body = {"name": draw(text), "role": draw(text), "goal": draw(text), "backstory": draw(text),
            "tools": ["calculator"], "tool_configs": {"calculator": draw(st.dictionaries(text, nested, max_size=3))},
            "temperature": draw(st.none() | st.floats(0, 2)), "max_iter": draw(st.integers(1, 50))}
    keys = draw(st.permutations(list(body)))
    return {key: body[key] for key in keys}


async def same_as_read(client: Any, answer: Any, path: str) -> None:
    assert answer.status_code in (200, 201), answer.text
    read = await client.get(path)
    assert read.status_code == 200, read.text
    assert answer.json() == read.json()
    assert json.dumps(answer.json()) == json.dumps(read.json())  # key order too
    assert answer.headers["etag"] == read.headers["etag"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(created=agents(), replaced=agents(), changed=agents())
async def test_agent_writes_answer_what_reads_return(
    client: Any, created: dict[str, Any], replaced: dict[str, Any], changed: dict[str, Any],
) -> None:
    answer = await client.post("/api/v1/agents", json=created)
    path = f"/api/v1/agents/{answer.json()['id']}"
    await same_as_read(client, answer, path)
    await same_as_read(client, await client.put(path, json=replaced), path)
    await same_as_read(client, await client.put(path, json={"goal": changed["goal"],
                                                            "tool_configs": changed["tool_configs"]}), path)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=text, content=text, description=text)
async def test_template_and_task_writes_answer_what_reads_return(
    client: Any, name: str, content: str, description: str,
) -> None:
    answer = await client.post("/api/v1/templates", json={"name": name, "description": description,
                                                          "template": content})
    if answer.status_code == 201:  # a name taken by an earlier example is a 409, nothing to compare
        path = f"/api/v1/templates/{answer.json()['id']}"
        await same_as_read(client, answer, path)
        await same_as_read(client, await client.put(path, json={"template": content + "!"}), path)
    task = await client.post("/api/v1/tasks", json={"name": name, "description": description,
                                                    "expected_output": content, "config": {"markdown": True}})
    path = f"/api/v1/tasks/{task.json()['id']}"
    await same_as_read(client, task, path)
    await same_as_read(client, await client.put(f"{path}/full", json={"name": name, "description": content,
                                                                        "expected_output": description}), path)


def test_recent_rows_keep_only_committed_pages_and_the_exact_version() -> None:
    recent = RecentRows(size=2)
    first, second, third = ({"id": i, "version": 1} for i in range(3))
    recent.stage(first)
    assert recent.get(0, 1) is None  # staged, not committed
    recent.discard()  # the page failed
    recent.publish()
    assert recent.get(0, 1) is None
    for row in (first, second, third):
        recent.stage(row)
    recent.publish()
    assert recent.get(0, 1) is None  # pushed out by newer rows
    assert recent.get(2, 1) == third
    assert recent.get(2, 2) is None  # another version is read from the table
