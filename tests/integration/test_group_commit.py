"""Group commit: concurrent saves share transactions, and each caller still gets exactly its own outcome.

The leader of each batch is slowed a little so that callers really queue
behind it and the lead really passes from one thread to the next; every test
counts the batches to show that it did.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import anyio
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError
from litestar.testing import AsyncTestClient

from application.group_commit import GroupCommitRecorder
from application.store import KasalStore, postgres_env
from domain.agent import Agent
from domain.context import Actor, acting_as
from interface.app import create_app
from interface.wiring import wire
from tests.integration.execution_runs import TERMINAL, wait_status

WRITERS = 16
GROUP = "group-commit"


@pytest.fixture
def store(empty_database_url: str) -> Iterator[KasalStore]:
    store = KasalStore(postgres_env(empty_database_url, pool_size=WRITERS + 2, max_overflow=4))
    recorder_of(store)
    yield store
    store.close()


def recorder_of(store: KasalStore) -> GroupCommitRecorder:
    recorder = store.recorder
    assert isinstance(recorder, GroupCommitRecorder)
    return recorder


def slow_leader(store: KasalStore, seconds: float = 0.005) -> None:
    """Hold each batch a moment before it is inserted, so the callers behind it queue."""
    recorder = recorder_of(store)
    insert = recorder._insert

    def held(events: Any) -> Any:
        time.sleep(seconds)
        return insert(events)

    recorder._insert = held  # type: ignore[method-assign]


def run_together(fn: Callable[[int], Any], count: int, timeout: float = 30) -> list[Any]:
    """``fn(0..count-1)`` on WRITERS threads; fails (rather than hangs) if a caller is never answered."""
    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    todo = iter(range(count))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                n = next(todo, None)
            if n is None:
                return
            try:
                results[n] = fn(n)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a save was never answered"
    if errors:
        raise errors[0]
    return [results[n] for n in range(count)]


def agent(n: int) -> Agent:
    return Agent.new(GROUP, {"name": f"agent {n}", "role": "r", "goal": "g", "backstory": "b"})


def as_writer(fn: Callable[[int], Any]) -> Callable[[int], Any]:
    def run(n: int) -> Any:
        with acting_as(Actor(group_id=GROUP, actor=f"writer-{n % WRITERS}", role="editor")):
            return fn(n)

    return run


def test_concurrent_saves_each_get_their_own_consecutive_positions(store: KasalStore) -> None:
    slow_leader(store)
    saves = 20 * WRITERS

    @as_writer
    def save(n: int) -> list[tuple[int, UUID, int]]:
        aggregates = [agent(n * 10 + i) for i in range(random.Random(n).randint(1, 3))]
        for aggregate in aggregates[1:]:
            aggregate.change({"goal": "changed"})  # a second event of the same aggregate in the save
        recordings = store.save(*aggregates)
        return [(r.notification.id, r.domain_event.originator_id, r.domain_event.originator_version)
                for r in recordings]

    answers = run_together(save, saves)

    recorded = {n.id: (n.originator_id, n.originator_version)
                for n in store.recorder.select_notifications(start=1, limit=10_000)}
    positions = [position for answer in answers for position, _, _ in answer]
    assert sorted(positions) == sorted(recorded) == list(range(1, len(positions) + 1))
    for answer in answers:
        # Each caller's positions are its own events, in its own order, with nobody else's between them.
        assert [recorded[position] for position, _, _ in answer] == [(aid, v) for _, aid, v in answer]
        assert [position for position, _, _ in answer] == list(range(answer[0][0], answer[0][0] + len(answer)))
    assert recorder_of(store).batches < saves / 2, "the saves were not batched"


def test_a_conflict_fails_only_its_own_caller_and_the_rest_of_the_batch_is_recorded(store: KasalStore) -> None:
    slow_leader(store, 0.02)
    with acting_as(Actor(group_id=GROUP, actor="setup", role="editor")):
        shared = [agent(n) for n in range(WRITERS // 2)]
        store.save(*shared)
    start = threading.Barrier(WRITERS)

    @as_writer
    def change(n: int) -> str:
        """Writers 2k and 2k+1 change shared[k] from the same version; odd writers also create one of their own."""
        target: Agent = store.repository.get(shared[n // 2].id)
        target.change({"goal": f"by writer {n}"})
        own = agent(1000 + n) if n % 2 else None
        start.wait()
        try:
            store.save(target)
        except IntegrityError:
            outcome = "conflict"
        else:
            outcome = "saved"
        if own is not None:
            store.save(own)
        return outcome

    outcomes = run_together(change, WRITERS)

    for k, aggregate in enumerate(shared):
        pair = outcomes[2 * k: 2 * k + 2]
        assert sorted(pair) == ["conflict", "saved"], f"agent {k}: {pair}"
        loaded: Agent = store.repository.get(aggregate.id)
        winner = 2 * k + pair.index("saved")
        assert (loaded.version, loaded.fields["goal"]) == (2, f"by writer {winner}")
    # The setup's agents, one change of each, and the odd writers' own agents: nothing else, nothing lost
    # (positions of a batch rolled back are not reused, so the events are counted, not the last position).
    assert len(store.recorder.select_notifications(start=1, limit=1000)) == 3 * (WRITERS // 2)


def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batches_go_on(store: KasalStore) -> None:
    recorder = recorder_of(store)
    insert = recorder._insert
    failed: list[int] = []

    def flaky(events: Any) -> Any:
        time.sleep(0.005)
        if len(events) > 1 and not failed:
            failed.append(len(events))
            raise OperationalError("the database went away")
        return insert(events)

    recorder._insert = flaky  # type: ignore[method-assign]
    saves = 8 * WRITERS

    @as_writer
    def save(n: int) -> int | None:
        try:
            store.save(agent(n))
        except OperationalError:
            return None
        return n

    outcomes = run_together(save, saves)  # nobody is left waiting

    assert failed, "no batch of several saves was formed"
    assert outcomes.count(None) == failed[0]  # every caller of the failed batch heard of it
    recorded = store.recorder.select_notifications(start=1, limit=1000)
    assert len(recorded) == saves - failed[0]  # and nothing of it was recorded
    with acting_as(Actor(group_id=GROUP, actor="after", role="editor")):
        assert store.record(agent(10_000)) == store.max_position() > recorded[-1].id


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_runs_complete_while_sixteen_writers_share_the_runners_commits(settings: Any) -> None:
    """The runner saves progress from its own threads while writers hammer the API: every batch's
    lead passes on, so no run is left RUNNING and every acknowledged agent is there."""
    crew = {"agents_yaml": {"writer": {"role": "Writer", "goal": "Write about {topic}", "backstory": "Terse",
                                       "llm": "offline/echo"}},
            "tasks_yaml": {f"note{i}": {"description": f"Write line {i} about {{topic}}", "expected_output": "A line",
                                        "agent": "writer"} for i in range(3)},
            "inputs": {"topic": "batches"}}
    kasal = wire(settings.with_(run_workers=True, max_concurrent_executions=4))
    app = create_app(kasal)
    async with AsyncTestClient(app=app, timeout=60) as client:
        runs = [(await client.post("/api/v1/executions", json=crew)).json()["execution_id"] for _ in range(4)]
        created: list[str] = []

        async def writer(n: int) -> None:
            for i in range(15):
                answer = await client.post("/api/v1/agents", json={
                    "name": f"w{n}-{i}", "role": "r", "goal": "g", "backstory": "b"})
                assert answer.status_code == 201, answer.text
                created.append(answer.json()["id"])

        async with anyio.create_task_group() as group:
            for n in range(WRITERS):
                group.start_soon(writer, n)
        finished = [await wait_status(client, run, TERMINAL, 120) for run in runs]
        assert [body["status"] for body in finished] == ["COMPLETED"] * 4
        listed: list[str] = []
        while len(listed) < len(created) + 1:
            page = (await client.get("/api/v1/agents", params={"limit": 100, "offset": len(listed)})).json()
            listed += [item["id"] for item in page["items"]]
            if not page["has_more"]:
                break
        assert sorted(listed) == sorted(created)
        assert recorder_of(kasal.store).batches < kasal.store.max_position()
