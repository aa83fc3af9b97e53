"""Read model of usage: what each execution spent, per execution, per model and per day.

``GET /api/v1/usage`` adds these rows up over a window of request times.
Three tables, all pre-aggregated, so a report never reads a progress event:

- ``rm_usage_executions``: one row per execution with who asked, for which
  crew, when, and its running usage totals exactly as the last progress event
  recorded them, which is also what ``/execution-history/{id}`` shows (both
  fold the same ``usage`` field), and the models it has called so far.
- ``rm_usage_models``: one row per execution and model called, from the
  LLM-call spans of the progress events. Each event's change of the running
  totals is split over the models it called the way ``ProgressBuilder``
  summed them, and whatever a span cannot explain (there is nothing, for
  events the builder wrote) goes to the last model of the event, so the
  model rows of an execution always add up to its row above.
- ``rm_usage_days``: the same sums per group, UTC day and model, crew or
  actor (a run of inline YAML has the crew ``''``), with the executions each
  counts. A report reads the whole days of its window from here and only the
  instants before the first and after the last whole day from the rows above,
  so its cost grows with the days and keys in the window, not with the runs.

An execution's time is when it was requested. Costs are kept as ``numeric``
holding each recorded float's shortest decimal form, so sums are exact and do
not depend on the order rows are added in; a cost that is not a finite number
counts as zero. Token counts are ``numeric`` too: a sum of many huge counts
must not overflow and halt the projector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.execution import Execution
from projections.base import Projection

RUNS = "rm_usage_executions"
MODELS = "rm_usage_models"
DAYS = "rm_usage_days"
COUNTS = "llm_calls numeric NOT NULL, prompt_tokens numeric NOT NULL, completion_tokens numeric NOT NULL," \
         " cost numeric NOT NULL, position bigint NOT NULL"
SUMS = "llm_calls, prompt_tokens, completion_tokens, cost"
DDL = f"""
CREATE TABLE IF NOT EXISTS {RUNS} (
    group_id text NOT NULL,
    execution_id uuid NOT NULL,
    requested_at timestamptz NOT NULL,
    crew_id text,
    actor text NOT NULL,
    model text NOT NULL,
    models text[] NOT NULL,
    {COUNTS},
    PRIMARY KEY (group_id, execution_id)
);
CREATE INDEX IF NOT EXISTS {RUNS}_window ON {RUNS} (group_id, requested_at)
    INCLUDE (crew_id, actor, {SUMS});
CREATE TABLE IF NOT EXISTS {MODELS} (
    group_id text NOT NULL,
    execution_id uuid NOT NULL,
    model text NOT NULL,
    requested_at timestamptz NOT NULL,
    {COUNTS},
    PRIMARY KEY (group_id, execution_id, model)
);
CREATE INDEX IF NOT EXISTS {MODELS}_window ON {MODELS} (group_id, requested_at) INCLUDE (model, {SUMS});
CREATE TABLE IF NOT EXISTS {DAYS} (
    group_id text NOT NULL,
    by text NOT NULL,
    day date NOT NULL,
    key text NOT NULL,
    executions bigint NOT NULL,
    llm_calls numeric NOT NULL, prompt_tokens numeric NOT NULL, completion_tokens numeric NOT NULL,
    cost numeric NOT NULL,
    PRIMARY KEY (group_id, by, day, key)
);
"""
GroupBy = Literal["model", "crew", "day", "actor"]
ZERO = Decimal(0)


def money(value: Any) -> Decimal:
    """A recorded cost as the exact decimal its shortest form says; not a finite number: zero."""
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return ZERO
    return Decimal(repr(number)) if math.isfinite(number) else ZERO


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class Share:
    """What one model added to one execution's usage (within a page, or in all)."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = ZERO
    position: int = 0

    def add(self, calls: int, prompt: int, completion: int, cost: Decimal, position: int) -> None:
        self.llm_calls += calls
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost += cost
        self.position = max(self.position, position)


@dataclass
class Run:
    """One execution's usage row, and what this page adds to its model and day rows."""

    group_id: str
    execution_id: UUID
    requested_at: datetime
    crew_id: str | None
    actor: str
    model: str
    position: int
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    models: frozenset[str] = frozenset()
    shares: dict[str, Share] = field(default_factory=dict)
    stored: tuple[int, int, int, Decimal] | None = None  # the counts its row holds (None: no row yet)

    @classmethod
    def requested(cls, event: Any, position: int) -> Run:
        return cls(event.group_id, event.originator_id, event.timestamp, event.crew_id, event.actor,
                   event.model, position)

    def record(self, event: Any, position: int) -> None:
        """Fold one ``ProgressRecorded``: its running totals, split over the models it called."""
        usage = event.usage if isinstance(event.usage, dict) else {}
        calls, prompt, completion, cost = self.llm_calls, self.prompt_tokens, self.completion_tokens, self.cost
        last = None
        for span in event.spans:
            if span.get("type") != "llm_call" or span.get("op") != "point":
                continue
            attributes = span.get("attributes") or {}
            last = str(attributes.get("model") or span.get("name") or "")
            p, c = max(count(attributes.get("prompt_tokens")), 0), max(count(attributes.get("completion_tokens")), 0)
            after = float(money(cost)) + float(money(attributes.get("cost")))
            after = round(after, 10) if math.isfinite(after) else 0.0
            self._share(last, 1, p, c, money(after) - money(cost), position)
            calls, prompt, completion, cost = calls + 1, prompt + p, completion + c, after
        self.llm_calls = count(usage.get("llm_calls"))
        self.prompt_tokens = count(usage.get("prompt_tokens"))
        self.completion_tokens = count(usage.get("completion_tokens"))
        self.cost = float(money(usage.get("cost")))
        rest = (self.llm_calls - calls, self.prompt_tokens - prompt, self.completion_tokens - completion,
                money(self.cost) - money(cost))
        if any(rest):
            self._share(self.model if last is None else last, *rest, position)
        if last is not None or any(rest):
            self.position = position

    def _share(self, model: str, calls: int, prompt: int, completion: int, cost: Decimal, position: int) -> None:
        self.shares.setdefault(model, Share()).add(calls, prompt, completion, cost, position)

    def counts(self) -> tuple[Any, ...]:
        return self.llm_calls, self.prompt_tokens, self.completion_tokens, money(self.cost), self.position

    @property
    def day(self) -> date:
        return self.requested_at.astimezone(UTC).date()

    def day_sums(self) -> Iterator[tuple[tuple[str, str], list[Any]]]:
        """What this page adds to the run's day rows: ``((by, key), [executions, calls, prompt, completion, cost])``."""
        before = self.stored or (0, 0, 0, ZERO)
        change = [self.llm_calls - before[0], self.prompt_tokens - before[1], self.completion_tokens - before[2],
                  money(self.cost) - before[3]]
        if self.stored is None or any(change):
            executions = 1 if self.stored is None else 0
            yield ("crew", self.crew_id or ""), [executions, *change]
            yield ("actor", self.actor), [executions, *change]
        for model, share in self.shares.items():
            yield ("model", model), [0 if model in self.models else 1, share.llm_calls, share.prompt_tokens,
                                     share.completion_tokens, share.cost]


class UsageProjection(Projection):
    name = RUNS
    tables = (RUNS, MODELS, DAYS)
    ddl = DDL

    def topics(self) -> frozenset[str]:
        return frozenset({Execution.Requested.TOPIC, Execution.ProgressRecorded.TOPIC})

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        self.apply_page(cur, [(event, position)])

    def apply_page(self, cur: Cursor[Any], items: list[tuple[Any, int]]) -> None:
        """Fold the page per execution in memory, then write each touched row once."""
        new: dict[tuple[str, UUID], Run] = {}
        for event, position in items:
            if isinstance(event, Execution.Requested):
                new.setdefault((event.group_id, event.originator_id), Run.requested(event, position))
        earlier = {(e.group_id, e.originator_id) for e, _ in items if isinstance(e, Execution.ProgressRecorded)}
        runs = {**self._runs(cur, earlier - new.keys()), **new}
        for event, position in items:
            run = runs.get((event.group_id, event.originator_id))
            if run is not None and isinstance(event, Execution.ProgressRecorded):
                run.record(event, position)
        self._write_days(cur, runs.values())
        if new:
            cur.executemany(
                f"INSERT INTO {RUNS} (group_id, execution_id, requested_at, crew_id, actor, model, models, {SUMS},"
                " position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(r.group_id, r.execution_id, r.requested_at, r.crew_id, r.actor, r.model, sorted(r.shares),
                  *r.counts()) for r in new.values()],
            )
        changed = [run for key, run in runs.items() if key not in new and run.shares]
        if changed:
            cur.executemany(
                f"UPDATE {RUNS} SET models = %s, llm_calls = %s, prompt_tokens = %s, completion_tokens = %s,"
                " cost = %s, position = %s WHERE group_id = %s AND execution_id = %s",
                [(sorted(r.models | r.shares.keys()), *r.counts(), r.group_id, r.execution_id) for r in changed],
            )
        shares = [(r.group_id, r.execution_id, model, r.requested_at, s.llm_calls, s.prompt_tokens,
                   s.completion_tokens, s.cost, s.position) for r in runs.values() for model, s in r.shares.items()]
        if shares:
            cur.executemany(
                f"INSERT INTO {MODELS} AS m (group_id, execution_id, model, requested_at, {SUMS}, position)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (group_id, execution_id, model)"
                " DO UPDATE SET llm_calls = m.llm_calls + EXCLUDED.llm_calls,"
                " prompt_tokens = m.prompt_tokens + EXCLUDED.prompt_tokens,"
                " completion_tokens = m.completion_tokens + EXCLUDED.completion_tokens,"
                " cost = m.cost + EXCLUDED.cost, position = EXCLUDED.position",
                shares,
            )

    def _write_days(self, cur: Cursor[Any], runs: Iterable[Run]) -> None:
        """Add what the page changed to the day rows, one statement per page."""
        sums: dict[tuple[str, str, date, str], list[Any]] = {}
        for run in runs:
            for (by, key), change in run.day_sums():
                total = sums.setdefault((run.group_id, by, run.day, key), [0, 0, 0, 0, ZERO])
                for i, value in enumerate(change):
                    total[i] += value
        if sums:
            cur.executemany(
                f"INSERT INTO {DAYS} AS d (group_id, by, day, key, executions, {SUMS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (group_id, by, day, key)"
                " DO UPDATE SET executions = d.executions + EXCLUDED.executions,"
                " llm_calls = d.llm_calls + EXCLUDED.llm_calls,"
                " prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,"
                " completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens, cost = d.cost + EXCLUDED.cost",
                [(*key, *change) for key, change in sorted(sums.items(), key=lambda item: repr(item[0]))],
            )

    def _runs(self, cur: Cursor[Any], keys: set[tuple[str, UUID]]) -> dict[tuple[str, UUID], Run]:
        """The stored rows of executions requested in earlier pages, read in one statement."""
        if not keys:
            return {}
        cur.execute(
            f"SELECT group_id, execution_id, requested_at, crew_id, actor, model, position, models, {SUMS}"
            f" FROM {RUNS} WHERE (group_id, execution_id) IN (SELECT * FROM unnest(%s::text[], %s::uuid[]))",
            ([group for group, _ in keys], [execution for _, execution in keys]),
        )
        runs = {}
        for group, execution, at, crew, actor, model, position, models, *sums in cur.fetchall():
            stored = (int(sums[0]), int(sums[1]), int(sums[2]), sums[3])
            runs[(group, execution)] = Run(group, execution, at, crew, actor, model, position, *stored[:3],
                                           float(stored[3]), frozenset(models), stored=stored)
        return runs


_FIGURES = (
    "coalesce(sum(executions), 0) AS executions, coalesce(sum(llm_calls), 0) AS llm_calls,"
    " coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens,"
    " coalesce(sum(cost), 0) AS cost"
)


@dataclass(frozen=True)
class Source:
    """Where a ``group_by`` reads: its day rows, and the rows and key for the window's edges."""

    by: str
    day_key: str
    table: str
    row_key: str


SOURCES: dict[str, Source] = {
    "model": Source("model", "key", MODELS, "model"),
    "crew": Source("crew", "nullif(key, '')", RUNS, "crew_id"),
    "actor": Source("actor", "key", RUNS, "actor"),
    "day": Source("crew", "to_char(day, 'YYYY-MM-DD')", RUNS, "to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
}
TOTAL = Source("crew", "NULL::text", RUNS, "NULL::text")


@dataclass(frozen=True)
class Window:
    """``[since, until)`` as whole UTC days ``[first, end)`` plus the instants outside them."""

    first: date | None
    end: date | None
    edges: tuple[tuple[datetime | None, datetime | None], ...]

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None) -> Window:
        first = None if since is None else _day_from(since)
        end = None if until is None else until.astimezone(UTC).date()
        if first is not None and end is not None and first >= end:
            return cls(first, first, ((since, until),))  # no whole day: the rows alone
        edges = []
        if since is not None and first is not None and since < _midnight(first):
            edges.append((since, _midnight(first)))
        if until is not None and end is not None and _midnight(end) < until:
            edges.append((_midnight(end), until))
        return cls(first, end, tuple(edges))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _day_from(instant: datetime) -> date:
    """The first UTC day that starts at or after ``instant``."""
    day = instant.astimezone(UTC).date()
    return day if _midnight(day) >= instant else day + timedelta(days=1)


def _select(source: Source, group_id: str, window: Window) -> tuple[str, list[Any]]:
    """The figures per key of one source over a window: whole days from the day rows, edges from the rows."""
    days = ["group_id = %s", "by = %s"]
    params: list[Any] = [group_id, source.by]
    for condition, bound in (("day >= %s", window.first), ("day < %s", window.end)):
        if bound is not None:
            days.append(condition)
            params.append(bound)
    parts = [f"SELECT {source.day_key} AS key, executions, {SUMS} FROM {DAYS} WHERE {' AND '.join(days)}"]
    for low, high in window.edges:
        edge = ["group_id = %s"]
        params.append(group_id)
        for condition, bound in (("requested_at >= %s", low), ("requested_at < %s", high)):
            if bound is not None:
                edge.append(condition)
                params.append(bound)
        parts.append(f"SELECT {source.row_key}, 1, {SUMS} FROM {source.table} WHERE {' AND '.join(edge)}")
    return " UNION ALL ".join(parts), params


class UsageView:
    """Usage of one group over a window of request times, per key and in total."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def report(
        self, group_id: str, group_by: GroupBy, since: datetime | None, until: datetime | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``(rows per key, the total)``; ``since`` inclusive, ``until`` exclusive, None unbounded.

        Rows carry ``key`` and the figures; a key an execution has no value
        for (the crew of a run of inline YAML) is None and sorts last.
        """
        window = Window.of(since, until)
        keyed, keyed_params = _select(SOURCES[group_by], group_id, window)
        total, total_params = _select(TOTAL, group_id, window)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {_FIGURES} FROM ({total}) AS picked", total_params)
            totals = await cur.fetchone() or {}
            await cur.execute(f"SELECT key, {_FIGURES} FROM ({keyed}) AS picked GROUP BY key ORDER BY key NULLS LAST",
                              keyed_params)
            return await cur.fetchall(), totals
