"""A SIGKILL under write load loses no acknowledged write.

Sixteen writers, each on its own connection, create agents (distinct names, nested
``tool_configs`` in varied key orders), update agents they created (``If-Match`` the version
they were answered) and create tasks, while the whole ``kasal serve`` process tree is killed
with SIGKILL: no shutdown, no flush, no answer to the requests in flight. After a restart on
the same database, everything the service answered 2xx is there: each resource as its last
acknowledged write answered it, each acknowledged version in its history and in the audit log
(with the request's id and the log position the answer named), each acknowledged agent and
task once in the lists. Requests that got no answer may have landed or not; one that landed is
the resource's next version. Then the writers go on, from what was read back, and the server is
killed and checked again.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.conftest import ServerProcess

pytestmark = [pytest.mark.e2e]

WRITERS = 16
ROUNDS = 2
KILL_AFTER_S = 1.5
"""How long the writers write before the kill (and at least until some writes were answered)."""
WRITE_AFTER_KILL_S = 0.7
"""How long they go on trying against the dead server: their requests fail, none is answered."""
PAGE = 100
MOVED = ("version", "updated_at", "updated_by")
"""What a further write changes on a resource besides the fields it sends."""


@dataclass
class Ack:
    """A write the service answered 2xx: what it answered, and where it said the write landed."""

    kind: str  # "agents" or "tasks"
    body: dict[str, Any]
    request_id: str
    position: int


@dataclass
class Expected:
    """What a resource must read back as: its last acknowledged answer, or, when a later write of it
    went unanswered (``pending``: the fields it sent), possibly that write landed on top of it."""

    kind: str
    body: dict[str, Any]
    pending: dict[str, Any] | None = None


@dataclass
class Failure:
    """A request that got no answer."""

    at: float
    error: str
    sent: bool  # the connection broke under the request, rather than refusing it


@dataclass
class Ledger:
    """Everything the writers were told, shared between them."""

    acks: list[Ack] = field(default_factory=list)
    expected: dict[str, Expected] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def nested(rng: random.Random, depth: int = 3) -> dict[str, Any]:
    """A tool option value of some depth whose keys come in a random order."""
    keys = [f"k{n}" for n in range(rng.randint(1, 4))] + ["zeta", "alpha", "Mid"]
    rng.shuffle(keys)
    return {key: (nested(rng, depth - 1) if depth and rng.random() < 0.4 else
                  rng.choice([rng.randint(-1000, 1000), rng.random(), f"v{rng.randint(0, 99)}", None, True,
                              [rng.randint(0, 9), {"b": 1, "a": 2}]]))
            for key in keys}


def shuffled(rng: random.Random, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its keys sent in a random order."""
    keys = list(body)
    rng.shuffle(keys)
    return {key: body[key] for key in keys}


class Writer(threading.Thread):
    """One client writing as fast as it is answered until told to stop; it only updates its own agents."""

    def __init__(self, number: int, base_url: str, ledger: Ledger, stop: threading.Event, round_: int,
                 mine: list[str]) -> None:
        super().__init__(name=f"writer-{number}", daemon=True)
        self.number, self.base_url, self.ledger, self.stop, self.round = number, base_url, ledger, stop, round_
        self.mine = mine  # agents this writer created, acknowledged, and whose version it knows
        self.rng = random.Random(f"{round_}-{number}")
        self.sequence = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self.stop.is_set():
                self.sequence += 1
                roll = self.rng.random()
                if roll < 0.25 and self.mine:
                    self.update_agent(http)
                elif roll < 0.4:
                    self.create_task(http)
                else:
                    self.create_agent(http)

    def label(self) -> str:
        return f"w{self.number}-r{self.round}-n{self.sequence}-{uuid.uuid4().hex[:6]}"

    def create_agent(self, http: httpx.Client) -> None:
        label = self.label()
        body: dict[str, Any] = {
            "name": f"agent {label}", "role": f"Role of {label}", "goal": f"Goal of {label}",
            "backstory": f"Backstory of {label} " * self.rng.randint(1, 20), "llm": "offline/echo",
        }
        if self.rng.random() < 0.6:
            body["tools"] = ["calculator"]
            body["tool_configs"] = {"calculator": {"result_as_answer": self.rng.random() < 0.5, **nested(self.rng)}}
        if self.rng.random() < 0.5:
            body["temperature"] = round(self.rng.uniform(0, 2), 3)
        answer = self.send(http, "POST", "/api/v1/agents", shuffled(self.rng, body))
        if answer is not None:
            self.acknowledged("agents", answer)
            self.mine.append(answer.json()["id"])

    def update_agent(self, http: httpx.Client) -> None:
        agent_id = self.mine.pop(self.rng.randrange(len(self.mine)))
        with self.ledger.lock:
            version = self.ledger.expected[agent_id].body["version"]
        changes: dict[str, Any] = {"goal": f"Goal of {self.label()}"}
        if self.rng.random() < 0.5:
            changes["tools"] = ["calculator"]
            changes["tool_configs"] = {"calculator": nested(self.rng)}
        if self.rng.random() < 0.3:
            changes["max_iter"] = self.rng.randint(1, 1000)
        answer = self.send(http, "PUT", f"/api/v1/agents/{agent_id}", shuffled(self.rng, changes),
                           headers={"If-Match": f'"{version}"'}, pending=(agent_id, changes))
        if answer is not None:
            self.acknowledged("agents", answer)
            self.mine.append(agent_id)  # else its version is unknown: this writer leaves it alone

    def create_task(self, http: httpx.Client) -> None:
        label = self.label()
        body: dict[str, Any] = {"name": f"task {label}", "description": f"Do {label}",
                                "expected_output": f"The result of {label}"}
        if self.mine and self.rng.random() < 0.7:
            body["agent_id"] = self.rng.choice(self.mine)
        if self.rng.random() < 0.3:
            body["markdown"] = True
        answer = self.send(http, "POST", "/api/v1/tasks", shuffled(self.rng, body))
        if answer is not None:
            self.acknowledged("tasks", answer)

    def send(self, http: httpx.Client, method: str, path: str, body: dict[str, Any],
             headers: dict[str, str] | None = None, pending: tuple[str, dict[str, Any]] | None = None,
             ) -> httpx.Response | None:
        """The answer when it was 2xx; a request that got none is recorded as failed (and, for an
        update, as possibly landed), one answered otherwise as refused."""
        try:
            answer = http.request(method, path, json=body, headers=headers)
        except httpx.TransportError as error:
            with self.ledger.lock:
                self.ledger.failures.append(Failure(time.monotonic(), repr(error),
                                                    sent=not isinstance(error, httpx.ConnectError)))
                if pending is not None:
                    self.ledger.expected[pending[0]].pending = pending[1]
            if isinstance(error, httpx.ConnectError):
                time.sleep(0.05)  # nothing listens: do not spin
            return None
        if not answer.is_success:
            with self.ledger.lock:
                self.ledger.refusals.append(f"{method} {path} {body}: {answer.status_code} {answer.text[:500]}")
            return None
        return answer

    def acknowledged(self, kind: str, answer: httpx.Response) -> None:
        body = answer.json()
        ack = Ack(kind, body, answer.headers["X-Request-ID"], int(answer.headers["X-Kasal-Position"]))
        with self.ledger.lock:
            self.ledger.acks.append(ack)
            self.ledger.expected[body["id"]] = Expected(kind, body)


def kill_tree(server: ServerProcess) -> int:
    """SIGKILL the server and every process under it at once; how many processes that was."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    tree = [root, *root.children(recursive=True)]
    for process in tree:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while alive := [process for process in tree if running(process)]:
        assert time.monotonic() < deadline, f"still running after SIGKILL: {alive}"
        time.sleep(0.01)
    return len(tree)


def running(process: psutil.Process) -> bool:
    """Whether ``process`` still runs (a killed one not yet reaped by its parent does not)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def serving(server: ServerProcess) -> None:
    """Wait until as many API processes as ``KASAL_WEB_CONCURRENCY`` asks for hold the server's socket:
    one process on its own, or that many children of the supervisor that bound it."""
    assert server.process is not None
    wanted = int(server.env["KASAL_WEB_CONCURRENCY"])
    deadline = time.monotonic() + 30
    while True:
        listening = [child for child in psutil.Process(server.process.pid).children(recursive=True)
                     if any(c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
                            for c in child.net_connections("tcp"))]
        if (len(listening) or 1) == wanted:
            return
        assert time.monotonic() < deadline, f"{len(listening) or 1} API processes, not {wanted}"
        time.sleep(0.05)


def write_and_kill(server: ServerProcess, ledger: Ledger, round_: int, mine: list[list[str]]) -> dict[str, Any]:
    """Run the writers, SIGKILL the server tree under them, let them fail for a while, and stop them."""
    stop = threading.Event()
    writers = [Writer(n, server.base_url, ledger, stop, round_, mine[n]) for n in range(WRITERS)]
    acks_before = len(ledger.acks)
    started = time.monotonic()
    for writer in writers:
        writer.start()
    try:
        while time.monotonic() - started < KILL_AFTER_S or len(ledger.acks) - acks_before < WRITERS:
            assert time.monotonic() - started < 30, f"the writers got {len(ledger.acks) - acks_before} answers in 30 s"
            time.sleep(0.05)
        with ledger.lock:  # the answers in hand when the kill was sent
            acked_at_kill = len(ledger.acks) - acks_before
        killed_at = time.monotonic()
        processes = kill_tree(server)
        dead_s = time.monotonic() - killed_at
        time.sleep(WRITE_AFTER_KILL_S)
    finally:
        stop.set()
        for writer in writers:
            writer.join(40)
    assert not any(writer.is_alive() for writer in writers), "a writer did not stop"
    failures = [f for f in ledger.failures if f.at >= started]
    early = [f for f in failures if f.at < killed_at]
    return {"acked_at_kill": acked_at_kill, "acked": len(ledger.acks) - acks_before, "failed": len(failures),
            "in_flight": sum(f.sent for f in failures), "early": early, "processes": processes,
            "wrote_s": round(killed_at - started, 2), "dead_s": round(dead_s, 2)}


def pages(http: httpx.Client, kind: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Every item of a list, page by page, and the ``total`` each page answered."""
    items: list[dict[str, Any]] = []
    totals: list[int] = []
    while True:
        answer = http.get(f"/api/v1/{kind}", params={"limit": PAGE, "offset": len(items)})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        totals.append(page["total"])
        if not page["has_more"]:
            return items, totals


def audit(http: httpx.Client, kind: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The audit log's events of ``kind`` by (resource id, version)."""
    events: dict[tuple[str, int], dict[str, Any]] = {}
    after = 0
    while True:
        answer = http.get("/api/v1/events", params={"kind": kind, "after": after, "limit": 1000})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        for event in page["items"]:
            events[(event["aggregate_id"], event["version"])] = event
        after = page["next_after"]
        if not page["has_more"]:
            return events


def same_but_moved(found: dict[str, Any], before: dict[str, Any], changes: dict[str, Any]) -> bool:
    """Whether ``found`` is ``before`` with the unanswered update ``changes`` landed on it as its next version."""
    if found["version"] != before["version"] + 1:
        return False
    return all(found[key] == value for key, value in changes.items()) and all(
        found[key] == value for key, value in before.items() if key not in changes and key not in MOVED)


def lost_writes(http: httpx.Client, ledger: Ledger) -> list[str]:
    """Every way the restarted service disagrees with what it acknowledged (empty: nothing lost).

    Settles each resource's state as read back, so the next round expects and writes on from it.
    """
    lost: list[str] = []
    for resource_id, expected in ledger.expected.items():
        answer = http.get(f"/api/v1/{expected.kind}/{resource_id}")
        if answer.status_code != 200:
            lost.append(f"{expected.kind} {resource_id} v{expected.body['version']}: GET {answer.status_code}")
            continue
        found = answer.json()
        if found == expected.body or (
                expected.pending is not None and same_but_moved(found, expected.body, expected.pending)):
            expected.body, expected.pending = found, None
        else:
            lost.append(f"{expected.kind} {resource_id}: acknowledged {expected.body}, unanswered "
                        f"{expected.pending}, found {found}")

    for ack in ledger.acks:
        resource_id, version = ack.body["id"], ack.body["version"]
        answer = http.get(f"/api/v1/{ack.kind}/{resource_id}/versions/{version}")
        if answer.status_code != 200 or answer.json() != ack.body:
            lost.append(f"{ack.kind} {resource_id} version {version}: answered {ack.body}, "
                        f"history has {answer.status_code} {answer.text[:1000]}")

    events = {**audit(http, "agent"), **audit(http, "task")}
    for ack in ledger.acks:
        resource_id, version = ack.body["id"], ack.body["version"]
        event = events.get((resource_id, version))
        if event is None or (event["correlation_id"], event["position"]) != (ack.request_id, ack.position):
            lost.append(f"{ack.kind} {resource_id} version {version} (request {ack.request_id}, position "
                        f"{ack.position}): audit log has {event}")

    for kind in ("agents", "tasks"):
        items, totals = pages(http, kind)
        listed = Counter(item["id"] for item in items)
        twice = sorted(resource_id for resource_id, count in listed.items() if count > 1)
        if twice or set(totals) != {len(items)}:
            lost.append(f"{kind} list: {len(items)} items, totals {sorted(set(totals))}, listed twice {twice}")
        by_id = {item["id"]: item for item in items}
        for resource_id, expected in ledger.expected.items():
            if expected.kind == kind and by_id.get(resource_id) != expected.body:
                lost.append(f"{kind} list: {resource_id} is {by_id.get(resource_id)}, expected {expected.body}")
    return lost


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}-api-processes")
def server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """``kasal serve`` with one API process, or several (``KASAL_WEB_CONCURRENCY``) under one supervisor."""
    processes: int = request.param
    # A small pool (shared out among the processes): the suite shares one PostgreSQL server.
    process = ServerProcess(database_url, tmp_path / "home", env={
        "KASAL_WEB_CONCURRENCY": str(processes), "KASAL_POOL_SIZE": str(4 * processes)})
    process.start()
    serving(process)
    yield process
    if process.process is not None and process.process.poll() is None:
        children = psutil.Process(process.process.pid).children(recursive=True)
        process.stop()
        for child in children:
            with suppress(psutil.NoSuchProcess):
                child.kill()


def test_a_sigkill_under_write_load_loses_no_acknowledged_write(server: ServerProcess) -> None:
    ledger = Ledger()
    mine: list[list[str]] = [[] for _ in range(WRITERS)]
    for round_ in range(1, ROUNDS + 1):
        seen = write_and_kill(server, ledger, round_, mine)
        print(f"round {round_}: {seen}")
        # It was killed mid-load: answers came before the kill, and requests broke because of it.
        assert seen["acked_at_kill"] >= WRITERS and seen["in_flight"] >= 1, seen
        assert seen["early"] == [], f"requests failed before the kill: {seen['early']}"
        assert ledger.refusals == [], "\n".join(ledger.refusals)
        server.start()
        serving(server)
        with server.client() as http:
            # Every API process answers only once its read models hold all that was acknowledged.
            http.headers["X-Kasal-Min-Position"] = str(max(ack.position for ack in ledger.acks))
            lost = lost_writes(http, ledger)
        assert lost == [], f"round {round_}: {len(lost)} acknowledged writes lost or changed:\n" + "\n".join(lost)
        for n in range(WRITERS):  # the agents whose update went unanswered are settled now: write on from them
            mine[n] = [resource_id for resource_id, expected in ledger.expected.items()
                       if expected.kind == "agents" and expected.body["name"].startswith(f"agent w{n}-")]
    written = Counter("update" if ack.body["version"] > 1 else f"{ack.kind} create" for ack in ledger.acks)
    print(f"acknowledged: {dict(written)}")
    assert set(written) == {"agents create", "update", "tasks create"}, written
