"""The execution runner: claims PENDING executions and runs their crews.

Each claimed execution moves PREPARING → RUNNING, its crew runs in a child
process (``CrewRuntime``), and what the child reports is appended to the log
in batches (a few events per second, not one per line). The run ends
COMPLETED, FAILED, or CANCELLED — the last when a user cancels, which
terminates the child. A concurrency limit bounds running executions; the rest
wait as PENDING in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import eventsourcing.persistence
import psycopg
from anyio.to_thread import run_sync as in_thread
from psycopg_pool import PoolClosed

from application.execution_control import CancelRegistry
from application.executions import ExecutionJob, ExecutionService
from application.recovery import recover_orphans, sweep_sealed_inputs
from application.replay import ReplayService
from application.store import KasalStore
from domain.context import Actor, acting_as, current_actor
from domain.errors import ConflictError, DomainError
from domain.execution import Execution, TransitionError, placeholder_run_name
from domain.execution_progress import OUTCOMES, CrewCompleted, CrewFailed, Observation, Outcome
from interface.crew_jobs import CrewJobs
from interface.crew_runtime.messages import CrewJob
from interface.runner_registry import RunnerRegistry
from interface.tool_resolver import ToolResolver
from interface.waiting import wait_event

log = logging.getLogger("kasal.runner")

FLUSH_INTERVAL_S = 0.2
FLUSH_IDLE_S = 0.6
# How often the log is asked whether a run this runner holds was cancelled or ended by another
# process (also at once whenever the projector moves): a crew stops well within a second.
STOP_CHECK_S = 0.25
SWEEP_INTERVAL_S = 300.0
FLUSH_MAX_ITEMS = 200
POLL_INTERVAL_S = 1.0
FINISH_RETRY_S = 0.2
FINISH_RETRY_MAX_S = 10.0
STOP_GRACE_S = 5.0
# A database that is gone, restarting, or out of connections: worth asking again later.
# (psycopg_pool's PoolTimeout is a psycopg.OperationalError; its PoolClosed is one too, but
# a closed pool never answers again.)
CONNECTION_ERRORS = (
    psycopg.OperationalError, eventsourcing.persistence.OperationalError, eventsourcing.persistence.InterfaceError,
)


class CrewProcessPort(Protocol):
    def messages(self) -> AsyncGenerator[Observation, None]:
        """What the crew observes, ending with exactly one ``Outcome`` (also when its process dies)."""
        ...

    async def acancel(self) -> None: ...


class CrewRuntimePort(Protocol):
    """Runs one crew job in isolation (real adapter: ``interface.crew_runtime.CrewRuntime``)."""

    def run(self, job: CrewJob) -> CrewProcessPort:
        """Start the crew; may block for seconds (the first child waits for crewai's import)."""
        ...


def new_runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Run:
    job: ExecutionJob
    cancel_by: Actor | None = None
    cancel_reason: str | None = None
    process: CrewProcessPort | None = None
    buffer: list[Observation] = field(default_factory=list)
    pending: asyncio.Event = field(default_factory=asyncio.Event)
    # One batch at a time: log lines are numbered when their batch is saved, so two
    # batches saved concurrently could be numbered out of the order the crew said them.
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)
    following: bool = True
    # Ended by another process (a force-stop): the crew is stopped and nothing more is recorded.
    ended_elsewhere: bool = False

    def cancelled(self) -> bool:
        """Whether a stop was asked for (it may come at any await)."""
        return self.cancel_reason is not None


class ExecutionRunner:
    """Claims and runs executions; one per process that runs crews."""

    def __init__(
        self, service: ExecutionService, store: KasalStore, runtime: CrewRuntimePort, *,
        cancellations: CancelRegistry, registry: RunnerRegistry, max_concurrent: int, timeout_s: float,
        credentials: Callable[[str], Awaitable[dict[str, str]]],
        models: Callable[[str, str], Awaitable[dict[str, Any] | None]],
        namer: Callable[[ExecutionJob], Awaitable[str]], poll_interval_s: float = POLL_INTERVAL_S,
        tools: ToolResolver | None = None, replays: ReplayService | None = None,
    ) -> None:
        """``registry`` holds this runner's liveness (registered by the caller before ``start``);
        ``credentials`` answers a group's provider keys, ``models`` what a model name means in a
        group, ``namer`` a model's name for a run that still carries its placeholder, and ``tools``
        what the tools a crew names are (without it, tools are named as they are), and ``replays``
        the recordings replays and reruns reuse. Between
        wakes the runner looks for work every ``poll_interval_s``."""
        self.service = service
        self.store = store
        self.runtime = runtime
        self.cancellations = cancellations
        self.max_concurrent = max(1, max_concurrent)
        self.timeout_s = timeout_s
        self.registry = registry
        self.runner_id = registry.runner_id
        self.namer = namer
        self.jobs = CrewJobs(service, credentials=credentials, models=models, timeout_s=timeout_s, tools=tools,
                             replays=replays)
        self.poll_interval_s = poll_interval_s
        self.runs: dict[uuid.UUID, _Run] = {}
        self._wake = asyncio.Event()
        self._check_stops = asyncio.Event()
        self._stopping = asyncio.Event()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._children: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        # Known before anything waits on ``_wake``, so a wake from another thread finds it.
        self._event_loop = asyncio.get_running_loop()
        await in_thread(self.recover)
        self._task = asyncio.create_task(self._loop(), name="kasal-runner")
        self._watcher = asyncio.create_task(self._watch_stops(), name="kasal-runner-stops")

    async def stop(self) -> None:
        """Stop claiming, stop the crews, give the runs a moment to record their ends, then cancel them.

        A run whose end is still unrecorded then stays claimed by this runner,
        whose liveness ends with the process: the next start's ``recover`` ends it.
        """
        self._stopping.set()
        for task in (self._task, self._watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for run in list(self.runs.values()):
            if run.process is not None:
                await run.process.acancel()
        if self._children:
            _, late = await asyncio.wait(self._children, timeout=STOP_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def wake(self) -> None:
        """Look for work now. Safe from any thread: the projector calls it after each page it commits,
        which is when a newly requested run can first be claimed."""
        loop = self._event_loop
        if loop is None:  # not started: nothing waits yet
            self._wake.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed, and this runner with it
            loop.call_soon_threadsafe(self._wake.set)
            # What the projector just folded may be another process's cancel of a run held here.
            loop.call_soon_threadsafe(self._check_stops.set)

    def recover(self) -> list[uuid.UUID]:
        """End the runs a gone process left unfinished, and sweep sealed inputs nobody destroyed."""
        recovered = recover_orphans(self.service, self.store, self.registry.others_alive())
        sweep_sealed_inputs(self.service)
        return recovered

    # -- claiming ----------------------------------------------------------

    async def _loop(self) -> None:
        """Claim while there is room; look again when woken, and every poll interval.

        Claims are made from a read model, so the wakes that matter come from the
        projector (see ``wake``); the poll is the fallback when a wake is lost.
        """
        while True:
            self._wake.clear()
            while len(self.runs) < self.max_concurrent:
                try:
                    job = await in_thread(self.service.claim_next, self.runner_id)
                except Exception:
                    log.exception("claiming the next execution failed")
                    job = None
                if job is None:
                    break
                run = _Run(job)
                self.runs[job.execution_id] = run
                task = asyncio.create_task(self._run(run), name=f"execution-{job.execution_id}")
                self._children.add(task)
                task.add_done_callback(self._children.discard)
            await wait_event(self._wake, self.poll_interval_s)

    # -- running one execution -----------------------------------------------

    async def _run(self, run: _Run) -> None:
        job = run.job
        unregister = self.cancellations.register(job.execution_id, lambda reason: self._cancel(run, reason))
        try:
            with acting_as(job.actor(self.runner_id)):
                await self._execute(run)
        except Exception as exc:
            log.exception("execution %s failed in the runner", job.execution_id)
            await self._finish(run, error=f"runner error: {type(exc).__name__}: {exc}")
        finally:
            unregister()
            self.runs.pop(job.execution_id, None)
            self.service.forget(job.execution_id)
            self.wake()

    async def _execute(self, run: _Run) -> None:
        job = run.job
        await in_thread(self.service.mark_preparing, job.execution_id, self.runner_id)
        if job.unavailable is not None:  # never run with "[REDACTED]" in place of a secret input
            await self._finish(run, error=job.unavailable)
            return
        crew_job = await self.jobs.build(job)
        if run.cancelled():
            await self._finish(run)
            return
        await in_thread(self.service.mark_running, job.execution_id, self.runner_id)
        if is_placeholder_name(job):
            self._background(self._improve_name(job))
        # Off the event loop: until the forkserver has imported crewai, starting a child waits for it.
        run.process = await in_thread(self.runtime.run, crew_job)
        if run.cancelled():  # while the child was starting
            await run.process.acancel()
        # The stream stays open until the outcome is recorded: closing it stops a child
        # still busy exiting, which need not delay the run's end.
        async with aclosing(run.process.messages()) as observations:
            outcome = await self._follow(run, observations)
            await self._flush(run)
            if isinstance(outcome, CrewCompleted):
                await self._finish(run, result=outcome.result)
            else:
                await self._finish(run, error=outcome.error)

    async def _follow(self, run: _Run, observations: AsyncIterator[Observation]) -> Outcome:
        """Buffer what the crew observes until its outcome, while a flusher appends the buffer."""
        flusher = asyncio.create_task(self._flush_periodically(run))
        try:
            async for observation in observations:
                if isinstance(observation, OUTCOMES):
                    return observation
                run.buffer.append(observation)
                run.pending.set()
                if len(run.buffer) >= FLUSH_MAX_ITEMS:
                    await self._flush(run)
        finally:
            # Told to stop rather than cancelled, so no cancel can go astray and leave
            # the run waiting for its flusher forever.
            run.following = False
            run.pending.set()
            (stopped,) = await asyncio.gather(flusher, return_exceptions=True)
            if isinstance(stopped, Exception):
                log.warning("periodic flush of %s stopped: %r", run.job.execution_id, stopped)
        return CrewFailed(error="crew ended without a result", at=time.time())

    async def _flush_periodically(self, run: _Run) -> None:
        """Append what the child said: at once after a quiet spell, then at most every interval.

        Sparse lines (most crews) reach readers within milliseconds; a chatty
        crew is still appended a few batches per second, not one event a line.
        """
        last_flush = 0.0
        while True:
            await wait_event(run.pending, FLUSH_IDLE_S)
            run.pending.clear()
            if not run.following:
                return
            now = time.monotonic()
            if run.buffer:
                wait = FLUSH_INTERVAL_S - (now - last_flush)
                if wait > 0:
                    await asyncio.sleep(wait)
                last_flush = time.monotonic()
                await self._flush(run)

    async def _watch_stops(self) -> None:
        """Stop the crews of held runs that another process cancelled, stopped or force-stopped.

        A cancel or stop recorded elsewhere (``CancelRequested``) is carried out
        as in this process: the child is stopped and CANCELLED recorded as the
        user who asked. A force-stop has recorded CANCELLED already: the child is
        stopped and nothing more is recorded. The log itself is asked (not a read
        model), every ``STOP_CHECK_S`` and whenever the projector moves. Old sealed
        inputs are swept from here too.
        """
        last_sweep = time.monotonic()
        while True:
            await wait_event(self._check_stops, STOP_CHECK_S)
            self._check_stops.clear()
            held = [run for run in self.runs.values() if not run.cancelled()]
            if held:
                try:
                    found = await in_thread(self._executions, [run.job.execution_id for run in held])
                except Exception as exc:
                    log.warning("checking held runs for cancels failed: %s", exc)
                    found = {}
                for run in held:
                    execution = found.get(run.job.execution_id)
                    if isinstance(execution, Execution) and not run.cancelled():
                        self._stop_if_asked(run, execution)
            if time.monotonic() - last_sweep >= SWEEP_INTERVAL_S:
                last_sweep = time.monotonic()
                await in_thread(sweep_sealed_inputs, self.service)

    def _executions(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
        return {execution_id: self.store.find(execution_id) for execution_id in ids}

    def _stop_if_asked(self, run: _Run, execution: Execution) -> None:
        requested = execution.cancel_requested
        if execution.finished:
            if not run.following and run.process is not None:
                return  # the crew has ended and this runner recorded how
            self._ended_elsewhere(run, execution.timeline[-1]["message"] if execution.timeline else "ended")
        elif requested:
            run.cancel_by = Actor(run.job.group_id, str(requested.get("actor") or "unknown"), "operator",
                                  str(run.job.execution_id))
            run.cancel_reason = str(requested.get("reason") or "Cancelled by user")
            if run.process is not None:
                self._background(run.process.acancel())

    def _ended_elsewhere(self, run: _Run, reason: str) -> None:
        """The run was ended by another process: stop its crew, record nothing more."""
        if run.ended_elsewhere:
            return
        run.ended_elsewhere = True
        run.cancel_reason = run.cancel_reason or reason
        run.buffer = []
        log.info("execution %s was ended elsewhere (%s); stopping its crew", run.job.execution_id, reason)
        if run.process is not None:
            self._background(run.process.acancel())

    async def _flush(self, run: _Run) -> None:
        async with run.flushing:
            if not run.buffer or run.ended_elsewhere:
                run.buffer = []
                return
            batch, run.buffer = run.buffer, []
            try:
                await in_thread(self.service.record_progress, run.job.execution_id, batch)
            except TransitionError:  # ended elsewhere before the watcher noticed
                self._ended_elsewhere(run, "ended by another process")

    async def _finish(self, run: _Run, *, result: Any = None, error: str | None = None) -> None:
        """Record how the run ended: CANCELLED when asked to stop, else FAILED or COMPLETED.

        A database that fails to answer (gone, out of connections) is asked again
        until it does, or until the runner stops: an end left unrecorded keeps the
        run unfinished until the next start recovers it. Any other error is not
        cured by asking again: a result that cannot be recorded ends the run
        FAILED instead, and an end that cannot be recorded at all is logged once.
        """
        execution_id = run.job.execution_id
        retry_in = FINISH_RETRY_S
        while not run.ended_elsewhere:
            try:
                if run.cancel_reason is not None:
                    with acting_as(run.cancel_by or current_actor()):
                        await in_thread(self.service.cancel, execution_id, run.cancel_reason)
                elif error is not None:
                    await in_thread(self.service.fail, execution_id, error)
                else:
                    await in_thread(self.service.complete, execution_id, result)
                return
            except ConflictError:
                log.info("execution %s already finished; outcome not recorded again", execution_id)
                return
            except DomainError:
                log.exception("the end of execution %s cannot be recorded", execution_id)
                return
            except CONNECTION_ERRORS as exc:
                if isinstance(exc, PoolClosed) or self._stopping.is_set():
                    log.warning("the end of execution %s is not recorded (%s): the runner is stopping; "
                                "the next start ends the run", execution_id, exc)
                    return
                log.warning("recording the end of execution %s failed (%s); trying again in %.1f s",
                            execution_id, exc, retry_in)
                await wait_event(self._stopping, retry_in)
                retry_in = min(retry_in * 2, FINISH_RETRY_MAX_S)
            except Exception as exc:
                if error is not None or run.cancelled():
                    log.exception("the end of execution %s cannot be recorded", execution_id)
                    return
                log.exception("the result of execution %s cannot be recorded; recording it as failed", execution_id)
                error = f"runner error: its result could not be recorded: {type(exc).__name__}: {exc}"

    async def _improve_name(self, job: ExecutionJob) -> None:
        """Replace the instant placeholder name with one a model suggests (best effort)."""
        try:
            name = await self.namer(job)
            if name and name != job.run_name:
                await in_thread(self.service.rename, job.execution_id, name)
        except Exception as exc:  # a name is a nicety: never let it disturb the run
            log.info("run name for %s not improved: %s", job.execution_id, exc)

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    def _cancel(self, run: _Run, reason: str) -> None:
        """Called in the cancelling request's context: remember who, then stop the child."""
        run.cancel_reason = reason
        run.cancel_by = current_actor()
        if run.process is not None:
            self._background(run.process.acancel())


def is_placeholder_name(job: ExecutionJob) -> bool:
    """Whether the run still carries the instant name (not one the user chose)."""
    return job.run_name.startswith("Execution-") or job.run_name == placeholder_run_name(
        job.agents, job.tasks, datetime.now(UTC))

