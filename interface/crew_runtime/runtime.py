"""Parent side: start crews in child processes and stream what they observe.

Crews run in separate processes so a misbehaving crew (hung tool, runaway
model loop, crash) can be cancelled or killed without harming the service.
A ``forkserver`` that has already imported crewai and litellm forks each
child, so runs start in milliseconds instead of paying the ~4-8 s import.
This module must stay light: it never imports crewai.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import anyio

from domain.execution_progress import OUTCOMES, CrewFailed, Observation
from interface.crew_runtime.messages import CrewJob, decode_observation, encode
from interface.settings import quiet_libraries

PRELOAD_MODULES = ["interface.crew_runtime.child"]
CANCEL_GRACE_S = 1.5
EXIT_AFTER_RESULT_S = 2.0
READ_SLICE_S = 0.5


def _child_entry(conn: Connection, payload: bytes, tool_factory: Callable[[str], Any] | None) -> None:
    """Child trampoline: imports the heavy module only on the child side."""
    from interface.crew_runtime.child import main

    main(conn, payload, tool_factory)


def main_modules() -> list[str]:
    """The service's main module, for the forkserver to import once.

    Every child prepares itself by importing the parent's main module (the
    ``kasal`` script or ``python -m interface.cli``), unless the forkserver it
    was forked from already has: without this each run pays ~0.1 s for the
    command line's imports. Only for the service's own command line: another
    main (a test runner) is left alone.
    """
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) == "interface.cli":  # python -m interface.cli
        return ["interface.cli"]
    if getattr(getattr(main, "main", None), "__module__", None) == "interface.cli":  # the kasal script
        return ["__main__"]
    return []


def _probe(modules: list[str]) -> None:
    """Warm-up child: exit code 0 tells the parent the forkserver preload worked.

    Python 3.11's forkserver ignores the parent's sys.path, so a preload can
    fail silently (e.g. package not installed and cwd elsewhere); every run
    would then pay the full crewai import.
    """
    sys.exit(0 if all(name in sys.modules for name in modules) else 3)


def exit_description(code: int) -> str:
    """How a child process ended, in words a run's error can carry."""
    if code < 0:
        try:
            return f"was killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class CrewProcess:
    """One running crew: its observation stream and its lifecycle controls."""

    def __init__(self, process: BaseProcess, conn: Connection, job: CrewJob) -> None:
        self._process = process
        self._conn = conn
        self._job = job
        self._started = time.monotonic()
        self._cancelled = False
        self._closed = False
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

    @property
    def closed(self) -> bool:
        """Whether its stream has ended (and the child was stopped if it still ran)."""
        return self._closed

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

    def _receive(self, timeout: float) -> bytes | None:
        """Blocking: the next message; None when none came within ``timeout``; EOFError once the
        child is gone and everything it sent has been read.

        Waits on the process as well as the pipe. EOF alone is not enough to
        notice a dead child: its pipe's write end can outlive it in another
        process (a grandchild it forked, say), and then EOF never comes. A
        child writes before it exits, so once its sentinel fires whatever it
        sent is already in the pipe and is read first.
        """
        if not wait([self._conn, self._process.sentinel], timeout):
            return None
        if self._conn.poll():
            return self._conn.recv_bytes()
        raise EOFError("the crew process has exited")

    async def _read(self, deadline: float | None) -> bytes | None:
        """Next raw message; None when a read slice or the deadline passed; EOFError when the child is gone.

        The wait happens in a reader thread, which wakes the moment data
        arrives or the child exits. Registering pipe descriptors with the event
        loop instead lost wake-ups when many short-lived children reused
        descriptor numbers.
        """
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        timeout = READ_SLICE_S if remaining is None else min(READ_SLICE_S, remaining)
        if self._reader is None:
            # A thread of its own, so many running crews never starve the
            # event-store commands that share anyio's default thread pool.
            self._reader = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(self._receive, timeout, limiter=self._reader)

    async def _end_without_result(self) -> CrewFailed:
        await anyio.to_thread.run_sync(self._process.join, CANCEL_GRACE_S)
        if self._cancelled:
            return CrewFailed(error="execution cancelled", at=time.time())
        code = self._process.exitcode
        if code is None:  # still running, so the finally of ``messages`` stops it
            return CrewFailed(error="crew process closed its pipe without reporting a result", at=time.time())
        return CrewFailed(error=f"crew process {exit_description(code)} before reporting a result", at=time.time())

    async def messages(self) -> AsyncGenerator[Observation, None]:
        """Yield the child's observations; always ends with exactly one ``Outcome``.

        A child that ends without one (crash, ``os._exit``, a signal) yields a
        synthesized ``CrewFailed`` naming its exit code; so does a job that
        exceeds ``timeout_s`` (the child is cancelled first). Closing the
        stream early (wrap it in ``contextlib.aclosing`` to make that prompt)
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
                        yield CrewFailed(error=f"execution timed out after {self._job.timeout_s:g} s", at=time.time())
                        return
                    continue
                observation = decode_observation(data)
                yield observation
                if isinstance(observation, OUTCOMES):
                    await anyio.to_thread.run_sync(self._process.join, EXIT_AFTER_RESULT_S)
                    return
        finally:
            if self._process.exitcode is None:
                with anyio.CancelScope(shield=True):
                    await self.acancel()
            self._conn.close()
            self._closed = True


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
        self._lock = threading.Lock()  # runs start from several threads

    def start(self) -> None:
        """Prepare the forkserver context (cheap; the server starts on first use)."""
        if self._context is not None:
            return
        quiet_libraries()  # the forkserver inherits the environment and imports crewai/litellm
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(self._preload + main_modules())
        self._context = context

    def warm(self) -> bool:
        """Start the forkserver now (imports crewai once) so the first run is fast.

        Returns whether the preload took effect in the forked children.
        """
        self.start()
        process = self._context.Process(target=_probe, args=(self._preload,), daemon=True)
        process.start()
        process.join()
        return bool(process.exitcode == 0)

    def run(self, job: CrewJob) -> CrewProcess:
        """Start a child for ``job``; read its progress via ``CrewProcess.messages()``.

        Blocks until the forkserver has forked the child, which on the first
        run means until it has imported crewai: call it off the event loop.
        """
        self.start()
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_entry,
            args=(writer, encode(job), self._tool_factory),
            name=f"crew-{job.execution_id}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            writer.close()
        handle = CrewProcess(process, reader, job)
        with self._lock:
            self._running = [p for p in self._running if not p.closed] + [handle]
        return handle

    def close(self) -> None:
        """Cancel every child this runtime started that is still running."""
        with self._lock:
            running, self._running = self._running, []
        for handle in running:
            if not handle.closed:
                handle.cancel()

    def __enter__(self) -> CrewRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
