"""Running crews: the runner as a feature of ``kasal serve``, and ``kasal worker``.

In the default single process, ``RunnerFeature`` starts a runner next to the
HTTP API. ``kasal worker`` runs the same runner (and a projector that follows
or leads) without HTTP, for deployments that scale crews separately.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from interface.core import Core, Feature
from interface.http.executions import ExecutionsFeature
from interface.runner import CrewRuntimePort, ExecutionRunner, new_runner_id
from interface.runner_registry import RunnerRegistry
from interface.settings import Settings

log = logging.getLogger("kasal.worker")


class RunnerFeature(Feature):
    """Claims and runs executions when ``settings.run_workers`` is on."""

    name = "runner"

    def __init__(self, core: Core, runtime: CrewRuntimePort | None = None) -> None:
        super().__init__(core)
        self.runtime = runtime
        self.runner: ExecutionRunner | None = None
        self.registry: RunnerRegistry | None = None
        self._warming: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        # Every process says it is alive, runner or not, so that a runner
        # starting elsewhere leaves the PENDING work of a live API alone.
        self.registry = RunnerRegistry(self.core.database_url, new_runner_id())
        await self.core.run(self.registry.register)
        if not self.core.settings.run_workers:
            return
        executions = self.core.get(ExecutionsFeature)
        runtime = self.runtime or self.core.services.get("crew_runtime") or self._real_runtime()
        self.runner = ExecutionRunner(
            executions, runtime,
            max_concurrent=self.core.settings.max_concurrent_executions,
            timeout_s=self.core.settings.execution_timeout,
            credentials=self._credentials(),
            models=self._models(),
            registry=self.registry,
            namer=self._namer(),
        )
        executions.runner = self.runner
        await self.runner.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
        if self.registry is not None:
            await self.core.run(self.registry.close)
        if self._warming is not None:
            self._warming.cancel()
        close = getattr(self.runtime, "close", None)
        if close is not None:
            close()

    def _real_runtime(self) -> CrewRuntimePort:
        from interface.crew_runtime.runtime import CrewRuntime

        runtime = CrewRuntime()
        runtime.start()
        # Importing crewai in the forkserver takes seconds: do it in the
        # background so the API is up at once and the first crew starts fast.
        self._warming = asyncio.create_task(self.core.run(runtime.warm))
        self.runtime = runtime
        return runtime

    def _credentials(self) -> Any:
        from interface.http.api_keys import ApiKeysFeature

        try:
            return self.core.get(ApiKeysFeature).credentials_for
        except LookupError:
            return None

    def _namer(self) -> Any:
        """A model-suggested run name, through the generation feature when installed."""
        from application.run_names import JOB_NAME, describe_config
        from interface.http.generation import GenerationFeature
        from interface.http.run_names import OFFLINE_REPLIES  # noqa: F401  (registers the offline reply)

        try:
            generation = self.core.get(GenerationFeature)
        except LookupError:
            return None

        async def suggest(job: Any) -> str:
            named = await generation.generate(JOB_NAME, describe_config(job.agents, job.tasks), job.model, [])
            return str(named.name)

        return suggest

    def _models(self) -> Any:
        from interface.http.models import ModelsFeature

        try:
            return self.core.get(ModelsFeature).resolve_model
        except LookupError:
            return None


async def run_worker(core: Core) -> None:
    """Run projector and runner until SIGINT/SIGTERM (``kasal worker``)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with core.running():
        log.info("worker running; Ctrl-C to stop")
        await stopping.wait()


def worker_settings(settings: Settings) -> Settings:
    return settings.with_(run_workers=True, run_scheduler=False)
