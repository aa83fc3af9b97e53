"""Parent side: start crews in child processes and stream their messages.

Crews run in separate processes so a misbehaving crew (hung tool, runaway
model loop, crash) can be cancelled or killed without harming the service.
A ``forkserver`` that has already imported crewai and litellm forks each
child, so runs start in milliseconds instead of paying the ~4-8 s import.
This module must stay light: it never imports crewai.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import anyio

from interface.crew_runtime import messages as m

PRELOAD_MODULES = ["interface.crew_runtime.child"]
CANCEL_GRACE_S = 1.5
EXIT_AFTER_RESULT_S = 2.0


def quiet_environment() -> dict[str, str]:
    """Settings that stop crewai/litellm from phoning home (each costs seconds offline)."""
    return {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "OTEL_SDK_DISABLED": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "CREWAI_DISABLE_VERSION_CHECK": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def apply_quiet_environment() -> None:
    """Apply :func:`quiet_environment` without overriding explicit settings."""
    for key, value in quiet_environment().items():
        os.environ.setdefault(key, value)


def _child_entry(conn: Connection, payload: bytes, tool_factory: Callable[[str], Any] | None) -> None:
    """Child trampoline: imports the heavy module only on the child side."""
    from interface.crew_runtime.child import main

    main(conn, payload, tool_factory)


def _probe(modules: list[str]) -> None:
    """Warm-up child: exit code 0 tells the parent the forkserver preload worked.

    Python 3.11's forkserver ignores the parent's sys.path, so a preload can
    fail silently (e.g. package not installed and cwd elsewhere); every run
    would then pay the full crewai import.
    """
    sys.exit(0 if all(name in sys.modules for name in modules) else 3)


READ_SLICE_S = 0.5


class CrewProcess:
    """One running crew: its message stream and its lifecycle controls."""

    def __init__(self, process: BaseProcess, conn: Connection, job: m.CrewJob) -> None:
        self._process = process
        self._conn = conn
        self._job = job
        self._started = time.monotonic()
        self._cancelled = False
        self._reader: anyio.CapacityLimiter | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    @property
    def execution_id(self) -> str:
        return self._job.execution_id

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def cancel(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """Stop the child: SIGTERM, then SIGKILL after ``grace_s``; blocks < 2 s."""
        self._cancelled = True
        if self._process.exitcode is None:
            self._process.terminate()
            self._process.join(grace_s)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join(0.4)

    async def acancel(self) -> None:
        """:meth:`cancel` without blocking the event loop."""
        await anyio.to_thread.run_sync(self.cancel)

    def _deadline(self) -> float | None:
        return None if self._job.timeout_s is None else self._started + self._job.timeout_s

    async def _read(self, deadline: float | None) -> bytes | None:
        """Next raw message; None when the deadline passed; EOFError when the child is gone.

        The wait happens in a reader thread (``poll`` wakes the moment data
        arrives). Registering pipe descriptors with the event loop instead lost
        wake-ups when many short-lived children reused descriptor numbers.
        """
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        wait = READ_SLICE_S if remaining is None else min(READ_SLICE_S, remaining)
        if self._reader is None:
            # A thread of its own, so many running crews never starve the
            # event-store commands that share anyio's default thread pool.
            self._reader = anyio.CapacityLimiter(1)
        if not self._conn.poll() and not await anyio.to_thread.run_sync(self._conn.poll, wait, limiter=self._reader):
            return None
        return await anyio.to_thread.run_sync(self._conn.recv_bytes, limiter=self._reader)

    async def _end_without_result(self) -> m.CrewFailed:
        await anyio.to_thread.run_sync(self._process.join, CANCEL_GRACE_S)
        if self._cancelled:
            return m.CrewFailed(error="execution cancelled")
        return m.CrewFailed(error=f"crew process exited with code {self._process.exitcode}")

    async def messages(self) -> AsyncIterator[m.Message]:
        """Yield the child's messages; always ends with exactly one terminal message.

        A child that dies silently yields a synthesized ``CrewFailed``; so does a
        job that exceeds ``timeout_s`` (the child is cancelled first).  Closing
        the stream early (wrap it in ``contextlib.aclosing`` to make that prompt)
        cancels the child so no crew keeps running unobserved.
        """
        deadline = self._deadline()
        try:
            while True:
                try:
                    data = await self._read(deadline)
                except (EOFError, OSError):
                    yield await self._end_without_result()
                    return
                if data is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        await self.acancel()
                        yield m.CrewFailed(error=f"execution timed out after {self._job.timeout_s:g} s")
                        return
                    continue
                message = m.decode_message(data)
                if isinstance(message, m.TERMINAL):
                    yield message
                    await anyio.to_thread.run_sync(self._process.join, EXIT_AFTER_RESULT_S)
                    return
                yield message
        finally:
            if self._process.exitcode is None:
                with anyio.CancelScope(shield=True):
                    await self.acancel()
            self._conn.close()


class CrewRuntime:
    """Starts crew children from a preloaded forkserver.

    ``set_forkserver_preload`` configures the process-wide forkserver, so one
    runtime per service process is expected.
    """

    def __init__(
        self,
        tool_factory: Callable[[str], Any] | None = None,
        preload: list[str] | None = None,
    ) -> None:
        self._tool_factory = tool_factory
        self._preload = list(PRELOAD_MODULES if preload is None else preload)
        self._context: Any = None
        self._running: list[CrewProcess] = []

    def start(self) -> None:
        """Prepare the forkserver context (cheap; the server starts on first use)."""
        if self._context is not None:
            return
        apply_quiet_environment()
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(self._preload)
        self._context = context

    def warm(self) -> bool:
        """Start the forkserver now (imports crewai once) so the first run is fast.

        Returns whether the preload took effect in the forked children.
        """
        self.start()
        process = self._context.Process(target=_probe, args=(self._preload,), daemon=True)
        process.start()
        process.join()
        return process.exitcode == 0

    def run(self, job: m.CrewJob) -> CrewProcess:
        """Start a child for ``job``; read its progress via ``CrewProcess.messages()``."""
        self.start()
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_entry,
            args=(writer, m.encode(job), self._tool_factory),
            name=f"crew-{job.execution_id}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            writer.close()
        handle = CrewProcess(process, reader, job)
        self._running = [p for p in self._running if p.exitcode is None] + [handle]
        return handle

    def close(self) -> None:
        """Cancel every child this runtime started that is still running."""
        for handle in self._running:
            if handle.exitcode is None:
                handle.cancel()
        self._running = []

    def __enter__(self) -> CrewRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
