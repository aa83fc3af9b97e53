"""Live log streams (WebSocket and SSE): replay, follow, resume, end, tenancy.

The runner's part is played through the application service (see
``test_executions_api.Runner``); a stream must show every line exactly once,
in order, whether it was recorded before the client connected or after.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient

from domain.execution_progress import LogLine
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire
from tests.integration.execution_runs import Runner, start

pytestmark = pytest.mark.anyio
WAIT_S = 10.0
BAD_LAST_EVENT_IDS = ("abc", "-1", "1.5", str(2**63), "99999999999999999999", "1" * 5000,
                      "１２".encode(), "١٢".encode())
"""``Last-Event-ID`` values no stream sends: words, signs, beyond bigint, other scripts' digits."""


def lines(*numbers: int) -> list[LogLine]:
    return [LogLine(at=1_750_000_000.0 + n, level="info", source="crew", message=f"line {n}") for n in numbers]


async def running_execution(client: Any, *numbers: int) -> tuple[str, Runner]:
    started = await start(client)
    runner = Runner(client)
    job = await runner.run_until_running()
    if numbers:
        await runner.progress(job.execution_id, lines(*numbers))
    return started["execution_id"], runner


async def finished_execution(client: Any, count: int) -> tuple[str, Runner]:
    execution_id, runner = await running_execution(client, *range(1, count + 1))
    await runner.complete(execution_id, "done")
    return execution_id, runner


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Server-sent events as dicts with ``id``, ``event``, ``data`` and ``comment`` keys."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            key = "comment" if field == "" else field
            event[key] = json.loads(value) if key == "data" else value
        events.append(event)
    return events


class LiveSse:
    """Reads an SSE response while it is produced (the test client would wait for its end)."""

    def __init__(self, client: Any, path: str, headers: dict[str, str] | None = None) -> None:
        self.chunks: queue.Queue[bytes | None] = queue.Queue()
        self.buffer = ""
        self.status: int | None = None
        self.closed = threading.Event()
        route, _, query = path.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": route, "raw_path": route.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"testserver.local"),
                        *[(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]],
            "client": ("testclient", 50000), "server": ("testserver.local", 80), "extensions": {},
        }
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            while not self.closed.is_set():
                await anyio.sleep(0.02)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                self.chunks.put(message.get("body", b""))
                if not message.get("more_body", False):
                    self.chunks.put(None)

        self.done = client.blocking_portal.start_task_soon(client.app, scope, receive, send)

    def next_event(self) -> dict[str, Any] | None:
        """The next complete event, or None once the stream has ended."""
        while "\r\n\r\n" not in self.buffer:
            chunk = self.chunks.get(timeout=WAIT_S)
            if chunk is None:
                return None
            self.buffer += chunk.decode()
        block, self.buffer = self.buffer.split("\r\n\r\n", 1)
        return parse_sse(block + "\r\n\r\n")[0]

    def next_data_event(self) -> dict[str, Any] | None:
        """The next event that is not a heartbeat comment."""
        event = self.next_event()
        while event == {"comment": "heartbeat"}:
            event = self.next_event()
        return event

    def close(self) -> None:
        self.closed.set()
        self.done.result(timeout=WAIT_S)


# -- WebSocket -------------------------------------------------------------------


async def test_websocket_replays_then_follows_then_ends_with_the_status(client) -> None:
    execution_id, runner = await running_execution(client, 1, 2)
    with await client.websocket_connect(f"/api/v1/execution-logs/{execution_id}/stream") as ws:
        assert [ws.receive_json(timeout=WAIT_S)["seq"] for _ in range(2)] == [1, 2]
        await runner.progress(execution_id, lines(3, 4))
        followed = [ws.receive_json(timeout=WAIT_S) for _ in range(2)]
        assert [(m["type"], m["seq"], m["message"]) for m in followed] == [("log", 3, "line 3"), ("log", 4, "line 4")]
        await runner.complete(execution_id, "done")
        final = ws.receive_json(timeout=WAIT_S)
        assert (final["type"], final["status"], final["last_seq"]) == ("status", "COMPLETED", 4)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json(timeout=WAIT_S)
        assert closed.value.code == 1000


async def test_a_websocket_reconnecting_after_its_last_seq_misses_nothing_and_repeats_nothing(client) -> None:
    execution_id, runner = await running_execution(client, 1, 2, 3)
    with await client.websocket_connect(f"/api/v1/execution-logs/{execution_id}/stream") as ws:
        seen = [ws.receive_json(timeout=WAIT_S)["seq"] for _ in range(2)]
    await runner.progress(execution_id, lines(4, 5))
    await runner.complete(execution_id, "done")
    with await client.websocket_connect(f"/api/v1/execution-logs/{execution_id}/stream?after={seen[-1]}") as ws:
        rest = [ws.receive_json(timeout=WAIT_S) for _ in range(4)]
    assert seen + [m["seq"] for m in rest[:-1]] == [1, 2, 3, 4, 5]
    assert rest[-1]["type"] == "status"


async def test_a_websocket_for_another_groups_execution_closes_with_4404(client) -> None:
    execution_id, _ = await finished_execution(client, 1)
    for path, group in ((execution_id, "other"), (str(uuid.uuid4()), "local")):
        stream, headers = f"/api/v1/execution-logs/{path}/stream", {"X-Group-Id": group}
        with pytest.raises(WebSocketDisconnect) as closed, await client.websocket_connect(stream, headers=headers):
            pass
        assert closed.value.code == 4404


# -- Server-Sent Events ----------------------------------------------------------


async def test_sse_replays_a_finished_execution_and_ends_with_its_status(client) -> None:
    execution_id, runner = await finished_execution(client, 3)
    for path in (f"/api/v1/execution-logs/{execution_id}/sse", f"/api/v1/sse/executions/{execution_id}/stream"):
        response = await client.get(path, headers=runner.fresh())
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.text)
        expected = [("log", "1"), ("log", "2"), ("log", "3"), ("status", None)]
        assert [(e["event"], e.get("id")) for e in events] == expected
        assert events[1]["data"]["message"] == "line 2" and events[-1]["data"]["status"] == "COMPLETED"


async def test_sse_resumes_after_last_event_id_or_after(client) -> None:
    execution_id, runner = await finished_execution(client, 4)
    path = f"/api/v1/execution-logs/{execution_id}/sse"
    by_header = parse_sse((await client.get(path, headers={**runner.fresh(), "Last-Event-ID": "1"})).text)
    by_query = parse_sse((await client.get(f"{path}?after=3")).text)
    assert [e.get("id") for e in by_header] == ["2", "3", "4", None]
    assert [e.get("id") for e in by_query] == ["4", None]


async def test_a_bad_last_event_id_is_422_before_the_stream_starts(client) -> None:
    execution_id, runner = await finished_execution(client, 2)
    for path in (f"/api/v1/execution-logs/{execution_id}/sse", f"/api/v1/sse/executions/{execution_id}/stream",
                 f"/api/v1/execution-logs/{execution_id}/stream"):
        for value in BAD_LAST_EVENT_IDS:
            headers = {**runner.fresh(), "Accept": "text/event-stream", "Last-Event-ID": value}
            response = await client.get(path, headers=headers)
            assert response.status_code == 422, (path, value, response.text)
            assert response.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]
        resumed = await client.get(path, headers={**runner.fresh(), "Last-Event-ID": " 1 "})
        assert [e.get("id") for e in parse_sse(resumed.text)] == ["2", None]


@pytest.fixture
async def quick_heartbeats(settings: Settings) -> AsyncIterator[Any]:
    """A client of a service whose idle streams send a heartbeat every 0.2 s."""
    async with AsyncTestClient(app=create_app(wire(settings, log_heartbeat_s=0.2))) as client:
        yield client


async def test_sse_follows_new_lines_with_heartbeats_while_idle(quick_heartbeats: Any) -> None:
    client = quick_heartbeats
    execution_id, runner = await running_execution(client, 1)
    stream = LiveSse(client, f"/api/v1/execution-logs/{execution_id}/sse")
    try:
        first = stream.next_event()
        assert first is not None and (first["id"], first["event"], first["data"]["message"]) == ("1", "log", "line 1")
        assert stream.next_event() == {"comment": "heartbeat"}
        await runner.progress(execution_id, lines(2))
        followed = stream.next_data_event()
        assert followed is not None and (followed["id"], followed["data"]["message"]) == ("2", "line 2")
        await runner.complete(execution_id, "done")
        final = stream.next_data_event()
        assert final is not None and (final["event"], final["data"]["status"]) == ("status", "COMPLETED")
        assert stream.next_data_event() is None and stream.status == 200
    finally:
        stream.close()


async def test_a_client_leaving_an_sse_stream_ends_it(client) -> None:
    execution_id, _ = await running_execution(client, 1)
    stream = LiveSse(client, f"/api/v1/execution-logs/{execution_id}/sse")
    assert stream.next_event() is not None
    stream.close()
    assert stream.done.done()
