"""A small HTTP/1.1 load generator in its own process, for machines without ``wrk``.

``python -m bench.rawload`` reads a JSON spec on stdin (host, port, method, path, base64
body, headers, concurrency, seconds, expect), opens ``concurrency`` keep-alive connections
with raw asyncio streams (far less CPU per request than an HTTP client library, and in
another interpreter than the server's), sends for ``seconds``, and prints one JSON line:
requests, bad statuses, socket errors, duration and latency quantiles. It prints ``go`` on
a line of its own first, right before the load starts, so the caller can begin measuring
the server's CPU there rather than at this interpreter's start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

QUANTILES = (50, 90, 99, 100)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    bad_status: int = 0
    socket_errors: int = 0
    first_error: str | None = None

    def fail(self, problem: str, *, socket: bool) -> None:
        if socket:
            self.socket_errors += 1
        else:
            self.bad_status += 1
        self.first_error = self.first_error or problem


def request_bytes(spec: dict[str, Any]) -> bytes:
    body = base64.b64decode(spec.get("body", ""))
    lines = [f"{spec['method']} {spec['path']} HTTP/1.1", f"Host: {spec['host']}:{spec['port']}",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in spec.get("headers", {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server will close the connection) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    if not chunked:
        return status, await reader.readexactly(length), close
    parts: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, b"".join(parts), close
        parts.append(chunk[:-2])


async def connection(spec: dict[str, Any], payload: bytes, until: float, tally: Tally) -> None:
    expect = spec.get("expect")
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < until:
        began = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
            assert reader is not None
            writer.write(payload)
            status, body, close = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            tally.latencies.append(time.perf_counter() - began)
            tally.fail(f"{type(exc).__name__}: {exc}", socket=True)
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        tally.latencies.append(time.perf_counter() - began)
        if status != expect if expect else not 200 <= status < 300:
            tally.fail(f"HTTP {status}: {body[:300]!r}", socket=False)
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    payload = request_bytes(spec)
    tally = Tally()
    print("go", flush=True)
    cpu0, began = time.process_time(), time.perf_counter()
    until = began + float(spec["seconds"])
    await asyncio.gather(*(connection(spec, payload, until, tally) for _ in range(int(spec["concurrency"]))))
    duration = time.perf_counter() - began
    ordered = sorted(tally.latencies)

    def quantile(q: int) -> float | None:
        if not ordered:
            return None
        return ordered[max(1, min(len(ordered), -(-q * len(ordered) // 100))) - 1]

    return {"requests": len(ordered), "bad_status": tally.bad_status, "socket_errors": tally.socket_errors,
            "duration": duration, "quantiles": {str(q): quantile(q) for q in QUANTILES},
            "client_cpu": time.process_time() - cpu0, "first_error": tally.first_error}


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
