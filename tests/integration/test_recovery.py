"""Restart recovery on the path production takes: a runner starting up cancels what runners
that are gone left unfinished, and leaves alone what a live runner owns.

Runner liveness is a PostgreSQL advisory lock held for as long as a runner's
process lives; a second ``RunnerRegistry`` registered here, on a connection
of its own, is such a live process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg_pool import ConnectionPool

from application.executions import ExecutionService
from application.store import KasalStore, postgres_env
from domain.context import Actor, acting_as
from domain.execution import RESTART_MESSAGE, Execution
from interface.app import create_app
from interface.content_store import PostgresContentStore
from interface.runner_registry import DDL, RunnerRegistry
from interface.wiring import wire
from projections.executions import ExecutionIndexQueries
from tests.fakes_runtime import FakeCrewRuntime
from tests.integration.execution_runs import HISTORY, wait_status

pytestmark = pytest.mark.anyio

AGENTS = {"a": {"role": "R", "goal": "G", "backstory": "B"}}
TASKS = {"t": {"description": "D", "expected_output": "O", "agent": "a"}}
GROUP = "local"  # the group requests act in without credentials, so the API shows these runs


class LeftBehind:
    """Executions as earlier processes left them, written to the event store before the service starts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store = KasalStore(postgres_env(url, pool_size=2))
        self.pool = ConnectionPool(url, min_size=1, max_size=2)
        self.service = ExecutionService(self.store, PostgresContentStore(self.pool), ExecutionIndexQueries(self.pool))

    def pending(self) -> UUID:
        with acting_as(Actor(GROUP, "someone")):
            return self.service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo").execution_id

    def claimed(self, runner_id: str, status: str) -> UUID:
        """An execution ``runner_id`` claimed and moved to PREPARING or RUNNING."""
        execution_id = self.pending()
        with acting_as(Actor(GROUP, f"runner:{runner_id}", "operator", str(execution_id))):
            execution = self.store.load(Execution, execution_id)
            execution.claim(runner_id, now=time.time(), lease_s=300)
            self.store.record(execution)
            self.service.mark_preparing(execution_id, runner_id)
            if status == "RUNNING":
                self.service.mark_running(execution_id, runner_id)
        assert self.status(execution_id) == status
        return execution_id

    def status(self, execution_id: UUID) -> str:
        """What the event store says, not a read model that may lag."""
        with acting_as(Actor(GROUP, "someone")):
            return self.store.load(Execution, execution_id).status.value

    def runner_that_died(self, runner_id: str) -> None:
        """A runner's registration as a crash leaves it: its row stays, its lock is gone."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(DDL)
            conn.execute("INSERT INTO kasal_runners (runner_id) VALUES (%s)", (runner_id,))

    def close(self) -> None:
        self.store.close()
        self.pool.close()


@pytest.fixture
def left_behind(database_url: str) -> Iterator[LeftBehind]:
    given = LeftBehind(database_url)
    yield given
    given.close()


def service_app(settings: Any, runtime: FakeCrewRuntime) -> Any:
    return create_app(wire(settings.with_(run_workers=True), crew_runtime=runtime))


async def test_a_starting_runner_cancels_what_a_runner_that_is_gone_left_unfinished(
    settings, left_behind: LeftBehind,
) -> None:
    left_behind.runner_that_died("dead-runner")
    unfinished = [left_behind.pending(), left_behind.claimed("dead-runner", "PREPARING"),
                  left_behind.claimed("dead-runner", "RUNNING")]
    runtime = FakeCrewRuntime()

    async with AsyncTestClient(app=service_app(settings, runtime)) as client:
        recovered = [await wait_status(client, execution_id, "CANCELLED", path=HISTORY)
                     for execution_id in unfinished]

    for history in recovered:
        last = history["timeline"][-1]
        assert (last["status"], last["actor"], last["message"]) == ("CANCELLED", "system:recovery", RESTART_MESSAGE)
    assert runtime.jobs == []


async def test_a_starting_runner_leaves_what_a_live_runner_owns_alone(settings, left_behind: LeftBehind) -> None:
    live = RunnerRegistry(left_behind.url, "live-runner")
    live.register()
    try:
        left_behind.runner_that_died("dead-runner")
        orphan = left_behind.claimed("dead-runner", "RUNNING")
        owned = left_behind.claimed("live-runner", "RUNNING")
        waiting = left_behind.pending()
        runtime = FakeCrewRuntime()

        async with AsyncTestClient(app=service_app(settings, runtime)) as client:
            await wait_status(client, orphan, "CANCELLED", path=HISTORY)
            # Not cancelled as the service's own leftover: while another process lives, the
            # queue may be its, so the new runner takes it up and runs it.
            ran = await wait_status(client, waiting, "COMPLETED", path=HISTORY)
            assert left_behind.status(owned) == "RUNNING"
    finally:
        live.close()
    assert "CANCELLED" not in [step["status"] for step in ran["timeline"]]
    assert [job.execution_id for job in runtime.jobs] == [str(waiting)]
