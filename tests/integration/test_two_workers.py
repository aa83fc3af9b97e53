"""Two runners (as two processes would) claiming from one database never share an execution."""

from __future__ import annotations

import threading
from uuid import UUID

from psycopg_pool import ConnectionPool

from application.executions import ExecutionService
from application.store import KasalStore, postgres_env
from domain.context import Actor, acting_as
from interface.content_store import PostgresContentStore
from projections.engine import Projector
from projections.executions import ExecutionIndexQueries, ExecutionsProjection

AGENTS = {"a": {"role": "R", "goal": "G", "backstory": "B"}}
TASKS = {"t": {"description": "D", "expected_output": "O", "agent": "a"}}


def service_on(url: str) -> tuple[ExecutionService, KasalStore, ConnectionPool]:
    store = KasalStore(postgres_env(url, pool_size=4))
    pool = ConnectionPool(url, min_size=1, max_size=4)
    content = PostgresContentStore(pool)
    content.create_table()
    return ExecutionService(store, content, ExecutionIndexQueries(pool)), store, pool


def test_two_runners_claim_every_execution_exactly_once(database_url: str) -> None:
    requester, store, pool = service_on(database_url)
    projector = Projector(database_url, store, [ExecutionsProjection()])
    with acting_as(Actor("g", "someone")):
        requested = {requester.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo").execution_id
                     for _ in range(40)}
    projector.start()
    assert projector.wait_sync(store.max_position(), timeout=30)

    claims: dict[str, list[UUID]] = {"one": [], "two": []}
    runners = {name: service_on(database_url) for name in claims}

    def claim_all(name: str) -> None:
        service = runners[name][0]
        while (job := service.claim_next(f"runner-{name}")) is not None:
            claims[name].append(job.execution_id)
            with acting_as(job.actor(f"runner-{name}")):  # as a runner does right after claiming
                service.mark_preparing(job.execution_id, f"runner-{name}")

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not set(claims["one"]) & set(claims["two"])
    assert set(claims["one"]) | set(claims["two"]) == requested
    assert len(claims["one"]) + len(claims["two"]) == 40
    for _service, other_store, other_pool in runners.values():
        other_store.close()
        other_pool.close()
    projector.stop()
    store.close()
    pool.close()
