"""``GET /api/v1/usage``: a group's spend per model, crew, day and actor, equal to its history.

Most runs are recorded straight through the event store, as the runner would
record them, with request times chosen by the test; one test drives runs
through the runner's service calls. Every answer is compared with what the
runs' own ``/execution-history`` entries say and with a sum the test makes
itself from what it recorded.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from application.tokens import TokenService
from domain.context import Actor, acting_as
from domain.execution import Execution
from domain.execution_progress import LlmCall, LogLine, TextRef
from interface.app import create_app
from interface.cli import COMMANDS
from interface.settings import Settings
from interface.wiring import Kasal, wire
from tests.integration.execution_runs import T0, Runner, start

pytestmark = pytest.mark.anyio

USAGE = "/api/v1/usage"
GROUP_BYS = ("model", "crew", "day", "actor")
MODELS = ("gpt-4o", "claude-3-5-sonnet", "offline/echo", "модель/ü-✓")
CREWS = (None, "crew-a", "crew-ü")
ACTORS = ("alice@example.com", "bob", "system:scheduler")
DAY0 = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Call:
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None


@dataclass(frozen=True)
class RunSpec:
    """One execution: when it was requested, by whom, for which crew, and its LLM calls in batches."""

    at: datetime
    actor: str = "alice@example.com"
    crew_id: str | None = None
    batches: tuple[tuple[Call, ...], ...] = ()
    ids: list[UUID] = field(default_factory=list, compare=False)

    @property
    def calls(self) -> list[Call]:
        return [call for batch in self.batches for call in batch]


@contextmanager
def requested_at(at: datetime) -> Iterator[None]:
    with mock.patch.object(Execution.Requested, "create_timestamp", staticmethod(lambda: at)):
        yield


def observations(batch: tuple[Call, ...]) -> list[Any]:
    return [LogLine(at=T0, message="calling models"), *(
        LlmCall(at=T0 + i, model=c.model, prompt="p", response="r", prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens, latency_ms=5, cost=c.cost) for i, c in enumerate(batch))]


def record_runs(kasal: Kasal, group: str, runs: list[RunSpec]) -> None:
    """Record each run (requested, started, its batches, completed) in two saves, letting the
    projector fold the first before the second, so rows are written from one page and from several."""
    executions = []
    for run in runs:
        with acting_as(Actor(group_id=group, actor=run.actor)), requested_at(run.at):
            execution = Execution.request(group, run_name="usage", model="offline/echo", inputs={},
                                          snapshot={"agents": {}, "tasks": {}}, crew_id=run.crew_id)
        run.ids.append(execution.id)
        with acting_as(Actor(group_id=group, actor="runner:usage-test")):
            execution.mark_preparing()
            execution.start()
            for batch in run.batches[:1]:
                execution.record_progress(observations(batch))
        executions.append(execution)
    assert kasal.projector.wait_sync(kasal.store.record(*executions), 10)
    with acting_as(Actor(group_id=group, actor="runner:usage-test")):
        for run, execution in zip(runs, executions, strict=True):
            for batch in run.batches[1:]:
                execution.record_progress(observations(batch))
            execution.complete(TextRef.inline("done"))
    assert kasal.projector.wait_sync(kasal.store.record(*executions), 10)


def exact(cost: float | None) -> Decimal:
    return Decimal(repr(cost or 0.0))


def expected(runs: list[RunSpec], group_by: str, since: datetime | None = None,
             until: datetime | None = None) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """The report the test expects, summed from what it recorded."""
    chosen = [r for r in runs if (since is None or r.at >= since) and (until is None or r.at < until)]
    keyed: dict[Any, dict[str, Any]] = {}
    total = {"executions": len(chosen), "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
             "cost": Decimal(0)}

    def add(figures: dict[str, Any], calls: list[Call]) -> None:
        figures["llm_calls"] += len(calls)
        figures["prompt_tokens"] += sum(max(c.prompt_tokens, 0) for c in calls)
        figures["completion_tokens"] += sum(max(c.completion_tokens, 0) for c in calls)
        figures["cost"] += sum((exact(c.cost) for c in calls), Decimal(0))

    def row(key: Any) -> dict[str, Any]:
        return keyed.setdefault(key, {"executions": 0, "llm_calls": 0, "prompt_tokens": 0,
                                      "completion_tokens": 0, "cost": Decimal(0)})

    for run in chosen:
        add(total, run.calls)
        if group_by == "model":
            for model in dict.fromkeys(c.model for c in run.calls):
                row(model)["executions"] += 1
                add(row(model), [c for c in run.calls if c.model == model])
            continue
        key = {"crew": run.crew_id, "actor": run.actor, "day": run.at.date().isoformat()}[group_by]
        row(key)["executions"] += 1
        add(row(key), run.calls)
    return keyed, total


def shown(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as the API answers them."""
    return {**figures, "total_tokens": figures["prompt_tokens"] + figures["completion_tokens"],
            "cost": float(figures["cost"])}


async def usage(client: Any, group: str, **params: Any) -> dict[str, Any]:
    response = await client.get(USAGE, params={k: v for k, v in params.items() if v is not None},
                                headers={"X-Group-Id": group})
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_report(answer: dict[str, Any], runs: list[RunSpec], group_by: str, since: datetime | None = None,
                  until: datetime | None = None) -> None:
    keyed, total = expected(runs, group_by, since, until)
    items = {item["key"]: {k: v for k, v in item.items() if k != "key"} for item in answer["items"]}
    assert items == {key: shown(figures) for key, figures in keyed.items()}
    assert answer["total"] == shown(total)
    keys = [key for key in items if key is not None]
    assert keys == sorted(keys)


async def history_sum(client: Any, group: str, runs: list[RunSpec]) -> dict[str, Any]:
    """The usage of ``runs`` added up from their ``/execution-history`` entries."""
    total = {"executions": 0, "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
             "cost": Decimal(0)}
    for run in runs:
        entry = (await client.get(f"/api/v1/execution-history/{run.ids[0]}", headers={"X-Group-Id": group})).json()
        total["executions"] += 1
        for name in ("llm_calls", "prompt_tokens", "completion_tokens", "total_tokens"):
            total[name] += entry["usage"][name]
        total["cost"] += exact(entry["usage"]["cost"])
    return {**total, "cost": float(total["cost"])}


# -- strategies ------------------------------------------------------------------

calls = st.builds(
    Call, model=st.sampled_from(MODELS), prompt_tokens=st.integers(-3, 2**40),
    completion_tokens=st.one_of(st.integers(0, 5000), st.just(2**62)),
    cost=st.one_of(st.none(), st.integers(0, 10**7).map(lambda n: n / 10**4)),
)
run_specs = st.builds(
    RunSpec, at=st.integers(0, 3 * 24 * 60).map(lambda m: DAY0 + timedelta(minutes=m)),
    actor=st.sampled_from(ACTORS), crew_id=st.sampled_from(CREWS),
    batches=st.lists(st.lists(calls, max_size=4).map(tuple), max_size=3).map(tuple),
)
instants = st.one_of(st.none(), st.integers(-60, 3 * 24 * 60 + 60).map(lambda m: DAY0 + timedelta(minutes=m)),
                     st.integers(-1, 4).map(lambda d: DAY0 + timedelta(days=d)))


# -- the report ------------------------------------------------------------------


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ours=st.lists(run_specs, min_size=1, max_size=6), theirs=st.lists(run_specs, max_size=4),
       since=instants, until=instants)
async def test_each_group_by_sums_exactly_its_own_groups_runs(client, ours, theirs, since, until) -> None:
    """Per key and in total, over any window; another group's runs in the same log never count."""
    if since is not None and until is not None and until < since:
        since, until = until, since
    run = uuid.uuid4().hex[:8]
    groups = (f"usage-{run}-a", f"usage-{run}-b")
    kasal = client.app.state.kasal
    await kasal.run(record_runs, kasal, groups[0], ours)
    await kasal.run(record_runs, kasal, groups[1], theirs)
    for group, runs in zip(groups, (ours, theirs), strict=True):
        for group_by in GROUP_BYS:
            answer = await usage(client, group, group_by=group_by, since=since and since.isoformat(),
                                 until=until and until.isoformat())
            assert answer["group_by"] == group_by
            assert_report(answer, runs, group_by, since, until)
        whole = await usage(client, group)
        assert whole["total"] == await history_sum(client, group, runs)


async def test_a_run_with_two_models_counts_once_under_each(client) -> None:
    runs = [RunSpec(at=DAY0, batches=((Call("gpt-4o", 10, 5, 0.01), Call("claude-3-5-sonnet", 7, 3, 0.02)),
                                      (Call("gpt-4o", 1, 1, 0.001),))),
            RunSpec(at=DAY0, batches=((Call("gpt-4o", 2, 2, 0.5),),))]
    kasal = client.app.state.kasal
    await kasal.run(record_runs, kasal, "two-models", runs)
    answer = await usage(client, "two-models", group_by="model")
    assert answer["items"] == [
        {"key": "claude-3-5-sonnet", "executions": 1, "llm_calls": 1, "prompt_tokens": 7, "completion_tokens": 3,
         "total_tokens": 10, "cost": 0.02},
        {"key": "gpt-4o", "executions": 2, "llm_calls": 3, "prompt_tokens": 13, "completion_tokens": 8,
         "total_tokens": 21, "cost": 0.511},
    ]
    assert answer["total"] == {"executions": 2, "llm_calls": 4, "prompt_tokens": 20, "completion_tokens": 11,
                               "total_tokens": 31, "cost": 0.531}


async def test_runs_through_the_runner_add_up_to_their_history(client) -> None:
    """Several runs, several models, progress in several batches, as the runner records them."""
    runner = Runner(client)
    models = ("gpt-4o", "claude-3-5-sonnet", "gpt-4o-mini")
    ids = []
    for n in range(4):
        ids.append((await start(client))["execution_id"])
        job = await runner.run_until_running()
        for batch in range(n + 1):
            await runner.progress(job.execution_id, [
                LlmCall(at=T0 + batch, model=models[(n + batch) % 3], prompt="P" * (3000 * batch), response="ok",
                        prompt_tokens=100 * n + batch, completion_tokens=7, latency_ms=3, cost=0.0001 * (n + 1) / 3)])
        await runner.complete(job.execution_id, "done")
    headers = runner.fresh()
    answer = (await client.get(USAGE, params={"group_by": "model"}, headers=headers)).json()
    histories = [(await client.get(f"/api/v1/execution-history/{i}", headers=headers)).json()["usage"] for i in ids]
    summed = {name: sum(h[name] for h in histories) for name in ("llm_calls", "prompt_tokens", "completion_tokens",
                                                                 "total_tokens")}
    cost = float(sum((exact(h["cost"]) for h in histories), Decimal(0)))
    assert answer["total"] == {"executions": 4, **summed, "cost": cost}
    by_model = answer["items"]
    assert sorted(item["key"] for item in by_model) == sorted(models)
    for name in summed:
        assert sum(item[name] for item in by_model) == summed[name]
    assert float(sum((Decimal(repr(item["cost"])) for item in by_model), Decimal(0))) == cost
    crews = (await client.get(USAGE, params={"group_by": "crew"}, headers=headers)).json()
    assert crews["items"] == [{"key": None, **answer["total"]}]  # inline YAML: no saved crew
    actors = (await client.get(USAGE, params={"group_by": "actor"}, headers=headers)).json()
    assert actors["items"] == [{"key": "local-admin", **answer["total"]}]


async def test_days_are_utc_dates_and_windows_take_offsets_and_naive_times(client) -> None:
    late = datetime(2025, 6, 1, 23, 30, tzinfo=UTC)
    runs = [RunSpec(at=late, batches=((Call("gpt-4o", 1, 1, 0.1),),)),
            RunSpec(at=late + timedelta(hours=1), batches=((Call("gpt-4o", 2, 2, 0.2),),))]
    kasal = client.app.state.kasal
    await kasal.run(record_runs, kasal, "days", runs)
    days = await usage(client, "days", group_by="day")
    assert [item["key"] for item in days["items"]] == ["2025-06-01", "2025-06-02"]
    # 01:00 at +02:00 is 23:00 UTC the day before: the first run is inside, the second too.
    window = await usage(client, "days", group_by="day", since="2025-06-02T01:00:00+02:00")
    assert window["total"]["executions"] == 2 and window["since"] == "2025-06-01T23:00:00Z"
    naive = await usage(client, "days", group_by="day", since="2025-06-02T00:00:00", until="2025-06-03")
    assert [item["key"] for item in naive["items"]] == ["2025-06-02"] and naive["total"]["executions"] == 1
    until_is_exclusive = await usage(client, "days", until=late.isoformat())
    assert until_is_exclusive["total"]["executions"] == 0 and until_is_exclusive["items"] == []
    blank = await usage(client, "days", since="", until="")
    assert blank["total"]["executions"] == 2 and blank["since"] is None and blank["group_by"] == "model"


BAD_PARAMETERS = [
    ({"group_by": "provider"}, "group_by"),
    ({"group_by": "MODEL"}, "group_by"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2025-13-01"}, "until"),
    ({"since": "\uff12\uff10\uff12\uff15-06-01"}, "since"),  # full-width digits
    ({"until": "2025-06-01T00:00:00+25:00"}, "until"),
    ({"since": "0001-01-01T00:00:00+05:00"}, "since"),  # before the first instant there is
    ({"since": "2025-06-02", "until": "2025-06-01"}, "until"),
]


async def test_bad_parameters_are_422_naming_the_parameter(client) -> None:
    for params, name in BAD_PARAMETERS:
        response = await client.get(USAGE, params=params)
        assert response.status_code == 422, (params, response.text)
        assert [issue["loc"] for issue in response.json()["detail"]] == [["query", name]], params


async def test_a_group_without_runs_gets_zeros(client) -> None:
    answer = await usage(client, f"empty-{uuid.uuid4().hex[:6]}", group_by="crew")
    assert answer["items"] == [] and answer["total"] == {
        "executions": 0, "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0.0}


async def test_an_auditor_token_reads_its_own_groups_usage(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as client:
        kasal = client.app.state.kasal
        tokens = {}
        for group in ("audited", "other"):
            with acting_as(Actor(group_id=group, actor="test", role="admin")):
                issued = await kasal.run(TokenService(kasal.store).issue, "auditor", None)
            assert await kasal.run(kasal.projector.wait_sync, issued.position, 10)
            tokens[group] = {"Authorization": f"Bearer {issued.token}"}
        await kasal.run(record_runs, kasal, "audited", [RunSpec(at=DAY0, batches=((Call("gpt-4o", 3, 4, 0.5),),))])
        mine = await client.get(USAGE, headers=tokens["audited"])
        assert mine.status_code == 200 and mine.json()["total"]["llm_calls"] == 1
        theirs = await client.get(USAGE, headers={**tokens["other"], "X-Group-Id": "audited"})
        assert theirs.status_code == 200 and theirs.json()["total"]["executions"] == 0
        assert (await client.get(USAGE)).status_code == 401


async def test_rebuilt_usage_equals_the_live_one(settings: Settings) -> None:
    runs = [RunSpec(at=DAY0 + timedelta(hours=i), crew_id=CREWS[i % 3], actor=ACTORS[i % 3], batches=tuple(
        tuple(Call(MODELS[(i + b + c) % 4], 10 * i + c, b, round(0.0003 * (i + c), 4)) for c in range(i % 3 + 1))
        for b in range(i % 4))) for i in range(12)]
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        kasal = client.app.state.kasal
        await kasal.run(record_runs, kasal, "rebuilt", runs)
        live = [await usage(client, "rebuilt", group_by=g) for g in GROUP_BYS]
    for group_by, answer in zip(GROUP_BYS, live, strict=True):
        assert_report(answer, runs, group_by)
    tables = ("rm_usage_executions", "rm_usage_models", "rm_usage_days")

    def rows() -> dict[str, list[Any]]:
        with psycopg.connect(settings.database_url) as conn:
            return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}

    before = rows()
    assert all(before.values())
    with psycopg.connect(settings.database_url) as conn:
        for table in tables:
            conn.execute(f"DELETE FROM {table}")
    assert COMMANDS["projections"](argparse.Namespace(action="rebuild"), settings) == 0
    assert rows() == before
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        assert [await usage(client, "rebuilt", group_by=g) for g in GROUP_BYS] == live
