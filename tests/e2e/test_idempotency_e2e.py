"""A server killed between committing a keyed create and answering it: the retry is answered from the log."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AGENT = {"name": "Survivor", "role": "Researcher", "goal": "Outlive a crash", "backstory": "Stubborn"}
KEY = {"Idempotency-Key": "sigkill-after-commit"}


def created_agents(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM kasal_events WHERE topic = 'agent.created.v1'").fetchone()
    return int(row[0]) if row else 0


def wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_retry_after_sigkill_between_commit_and_answer_is_answered_from_the_log(database_url, tmp_path) -> None:
    # Long enough that the request is still waiting for its read model when it is killed.
    server = ServerProcess(database_url, tmp_path / "home", env={"KASAL_READ_YOUR_WRITES_TIMEOUT": "120"})
    server.start()
    blocker = psycopg.connect(database_url)
    outcome: list[Any] = []
    try:
        # The projector cannot apply the new agent while this lock is held: the request commits
        # its events (and the key), then waits for read-your-writes.
        blocker.execute("LOCK TABLE rm_agents IN ACCESS EXCLUSIVE MODE")

        def first_attempt() -> None:
            try:
                outcome.append(httpx.post(f"{server.base_url}/api/v1/agents", json=AGENT, headers=KEY, timeout=120))
            except httpx.HTTPError as error:
                outcome.append(error)

        request = threading.Thread(target=first_attempt, daemon=True)
        request.start()
        wait_until(lambda: created_agents(database_url) == 1)
        server.kill()
        request.join(30)
        assert outcome and isinstance(outcome[0], httpx.HTTPError), "the client never got an answer"
    finally:
        blocker.rollback()
        blocker.close()
    server.start()
    try:
        with server.client() as http:
            retry = http.post("/api/v1/agents", json=AGENT, headers=KEY)
            assert retry.status_code == 201, retry.text
            assert retry.headers["idempotent-replayed"] == "true"
            agent = retry.json()
            assert retry.headers["location"] == f"/api/v1/agents/{agent['id']}"
            assert agent == http.get(f"/api/v1/agents/{agent['id']}").json()
            assert http.get("/api/v1/agents").json()["total"] == 1
            # Once answered from the log, the same key keeps answering the same.
            again = http.post("/api/v1/agents", json=AGENT, headers=KEY)
            assert (again.status_code, again.json()) == (201, agent)
        assert created_agents(database_url) == 1
    finally:
        server.stop()
