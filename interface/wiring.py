"""The composition root: ``wire(settings, ...)`` builds the whole service, once.

Every part is constructed here with what it needs passed to its constructor:
the event store, the read-model views, the application services and use
cases, and the background parts (projector, crew runner, scheduler loop).
The one ``Kasal`` object it returns is what the HTTP app (``interface.app``),
``kasal worker``, the scheduler loop and the CLI all use. A test that needs
a different part passes it as a keyword (a fake crew runtime, a clock standing
at a chosen instant, another authenticator or model client). Building does no
network I/O; ``Kasal.start()`` opens pools, starts the projector, seeds the
built-in catalogues and starts what the settings ask for, and ``stop()``
undoes it in reverse.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from application.agents import AgentService
from application.api_keys import ApiKeyService
from application.catalogue_seed import seed_models, seed_tools
from application.credentials import GroupCredentials
from application.crew_drafts import CrewDrafts
from application.crews import CrewService
from application.execution_control import CancelRegistry, ExecutionControl
from application.executions import ExecutionService
from application.generation import CrewSaver
from application.generation_service import GenerationService
from application.models import ModelsService
from application.planning import Planner
from application.ports import Clock, ModelClient, SecretBox
from application.replay import ReplayService
from application.run_names import RunNamer
from application.schedules import SchedulerService, ScheduleService
from application.sealed_inputs import SealedInputs
from application.store import KasalStore, postgres_env
from application.tasks import TaskService
from application.templates import TemplateService
from application.tokens import TokenService
from application.tool_access import ToolAccess
from application.tools import ToolsService
from domain.agent import Agent
from domain.api_key import ApiKey
from domain.crew import Crew
from domain.model_config import ModelConfig, ModelSetting
from domain.task import Task
from domain.template import Template
from domain.tool import Tool, ToolSetting
from interface.content_store import PostgresContentStore
from interface.crew_runtime.runtime import CrewRuntime
from interface.health import HealthMonitor
from interface.identity import Authenticator, CachingTokenLookup, authenticator_for
from interface.llm_gateway import is_offline
from interface.model_client import LiteLLMModelClient
from interface.page_cache import PageCache
from interface.runner import CrewRuntimePort, ExecutionRunner, new_runner_id
from interface.runner_registry import RunnerRegistry
from interface.scheduler import SchedulerLoop, SystemClock, ThreadedPlanner
from interface.sealed_inputs_store import PostgresSealedRows
from interface.secret_box import SecretBox as AesSecretBox
from interface.settings import Settings
from interface.tool_resolver import ToolResolver
from projections.access_tokens import AccessTokenProjection, AccessTokenView
from projections.api_keys import TABLE as API_KEYS_TABLE
from projections.api_keys import ApiKeyProjection, ApiKeyView
from projections.audit import AuditProjection, AuditView
from projections.catalogue import ModelCatalogueView, ToolCatalogueView
from projections.documents import DocumentProjection, DocumentView
from projections.engine import Projector
from projections.execution_logs import ExecutionLogsProjection, ExecutionLogView
from projections.execution_trace import ContentView, ExecutionTraceProjection, ExecutionTraceView
from projections.executions import ExecutionIndexQueries, ExecutionsProjection, ExecutionView
from projections.references import ReferenceQueries
from projections.schedules import NextRunQuery, ScheduleIndexQueries, SchedulesProjection
from projections.templates import TemplateView
from projections.usage import UsageProjection, UsageView

log = logging.getLogger("kasal")
T = TypeVar("T")

KEY_FILE = "secret.key"
CATALOGUE_WAIT_S = 30.0


@dataclass(frozen=True)
class Views:
    """The read side: queries over read models, always within one group."""

    agents: DocumentView
    tasks: DocumentView
    crews: DocumentView
    tools: ToolCatalogueView
    models: ModelCatalogueView
    api_keys: ApiKeyView
    templates: TemplateView
    tokens: AccessTokenView
    schedules: DocumentView
    next_run: NextRunQuery
    executions: ExecutionView
    execution_logs: ExecutionLogView
    execution_trace: ExecutionTraceView
    contents: ContentView
    audit: AuditView
    usage: UsageView


@dataclass(frozen=True)
class Services:
    """The write side and the use cases: commands over the event store."""

    agents: AgentService
    tasks: TaskService
    crews: CrewService
    tools: ToolsService
    models: ModelsService
    api_keys: ApiKeyService
    credentials: GroupCredentials
    templates: TemplateService
    tokens: TokenService
    schedules: ScheduleService
    scheduler: SchedulerService
    executions: ExecutionService
    drafts: CrewDrafts
    planner: Planner
    control: ExecutionControl
    generation: GenerationService
    run_names: RunNamer
    tool_access: ToolAccess
    replays: ReplayService


@dataclass
class Kasal:
    """The whole service, built by ``wire``; ``start``/``stop`` (or ``running``) bring it up and down."""

    settings: Settings
    store: KasalStore
    pool: AsyncConnectionPool
    sync_pool: ConnectionPool
    content: PostgresContentStore
    sealed_rows: PostgresSealedRows
    projector: Projector
    views: Views
    services: Services
    authenticator: Authenticator
    token_lookup: CachingTokenLookup
    cancellations: CancelRegistry
    registry: RunnerRegistry
    runner: ExecutionRunner
    scheduler: SchedulerLoop
    crew_runtime: CrewRuntimePort
    key_source: str
    log_heartbeat_s: float
    clock: Clock
    secret_box: SecretBox
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    health: HealthMonitor = field(init=False)
    pages: PageCache = field(init=False)

    def __post_init__(self) -> None:
        self.health = HealthMonitor(self.pool, self.projector, self.run)
        self.pages = PageCache(self.read_models_position)

    @property
    def database_url(self) -> str:
        return str(self.settings.database_url)

    async def read_models_position(self) -> int | None:
        """Where the read models stand, as far as any process has answered; None while it is moving.

        The projector's leader knows it (None while it commits a page: the
        tables are ahead of its position then). Another process only hears of
        it a moment after the commit, and meanwhile a client may have been
        answered a write by the leader, so it asks the tracking table.
        """
        projector = self.projector
        if projector.leader:
            return None if projector.committing else projector.position
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute("SELECT min(position) FROM projection_tracking")
                row = await cursor.fetchone()
        except psycopg.Error:  # no tracking table yet, or no database: nothing to vouch for
            return None
        return max(projector.position, row[0] if row and row[0] is not None else -1)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous event-store command off the event loop."""
        return await anyio.to_thread.run_sync(fn, *args)

    async def start(self) -> None:
        """Pools, projector (caught up), built-ins, liveness, then runner and scheduler if enabled.

        A start that fails part-way stops what it had started before raising,
        so no pool, projector thread or runner outlives a service that never came up.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        await self.pool.open(wait=True, timeout=30)
        self._on_stop("the connection pool", self.pool.close)
        self._on_stop("the event store", self.run, self.store.close)
        await self.run(functools.partial(self.sync_pool.open, wait=True, timeout=30))
        self._on_stop("the command pool", self.run, self.sync_pool.close)
        await self.run(self.content.create_table)
        await self.run(self.sealed_rows.create_table)
        self.projector.start()
        self._on_stop("the projector", self.run, self.projector.stop)
        await self.projector.wait_for(await self.run(self.store.max_position), 60)
        await self._seed()
        await self.health.start()
        self._on_stop("the health monitor", self.health.stop)
        logging.getLogger("kasal.api_keys").info("API keys: %s", self.key_source)
        # Every process says it is alive, runner or not, so that a runner
        # starting elsewhere leaves the PENDING work of a live API alone.
        await self.run(self.registry.register)
        self._on_stop("the runner registry", self.run, self.registry.close)
        if self.settings.run_workers:
            self._warm_crew_runtime()
            await self.runner.start()
            self._on_stop("the runner", self.runner.stop)
        self.scheduler.bind()
        if self.settings.run_scheduler:
            await self.scheduler.tick()  # the catch-up pass: runs missed while no scheduler ran
            self.scheduler.start()
            self._on_stop("the scheduler", self.scheduler.stop)

    async def stop(self) -> None:
        """Everything ``start`` started, in reverse order; a part that fails to stop is logged
        and the others still stop (a database that is gone must not keep the pools open)."""
        await self._stack.aclose()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Kasal]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def _on_stop(self, part: str, stop: Callable[..., Awaitable[Any]], *args: Any) -> None:
        async def stop_quietly() -> None:
            try:
                await stop(*args)
            except Exception:
                log.exception("%s failed to stop", part)

        self._stack.push_async_callback(stop_quietly)

    async def _seed(self) -> None:
        """Record the built-in tools, models and templates (idempotent) and wait until they can be read."""
        wait = max(CATALOGUE_WAIT_S, self.settings.read_your_writes_timeout)
        for seed in (functools.partial(seed_tools, self.store), functools.partial(seed_models, self.store),
                     self.services.templates.seed_builtins):
            await self.projector.wait_for(await self.run(seed), wait)

    def _warm_crew_runtime(self) -> None:
        if not isinstance(self.crew_runtime, CrewRuntime):
            return  # a runtime passed in by the caller is the caller's to manage
        runtime = self.crew_runtime
        runtime.start()
        # Importing crewai in the forkserver takes seconds: do it in the
        # background so the API is up at once and the first crew starts fast.
        warming = asyncio.get_running_loop().create_task(self.run(runtime.warm))

        async def stop_runtime() -> None:
            warming.cancel()
            runtime.close()

        self._on_stop("the crew runtime", stop_runtime)


def open_secret_box(settings: Settings) -> tuple[SecretBox, str]:
    """The box from KASAL_SECRET_KEY, else from a key file under the home directory (and what was used)."""
    box, message = AesSecretBox.from_setting(settings.secret_key, key_file=settings.home / KEY_FILE)
    if settings.secret_key is None and settings.auth_mode != "local":
        message += (
            "; set KASAL_SECRET_KEY for shared deployments: every process (api and workers) "
            "must use the same key, and the file must be backed up"
        )
    return box, message


@functools.cache
def module_installed(name: str) -> bool:
    """Whether ``name`` can be imported here (found without importing it)."""
    return importlib.util.find_spec(name) is not None


def read_models() -> list[Any]:
    """Every read model the projector keeps, one transaction per page for all of them."""
    return [
        DocumentProjection.for_aggregate(Agent, "rm_agents"),
        ApiKeyProjection.for_aggregate(ApiKey, API_KEYS_TABLE),
        DocumentProjection.for_aggregate(Template, "rm_templates"),
        DocumentProjection.for_aggregate(Task, "rm_tasks"),
        DocumentProjection.for_aggregate(Crew, "rm_crews"),
        AccessTokenProjection(),
        DocumentProjection.for_aggregate(Tool, "rm_tools"),
        DocumentProjection.for_aggregate(ToolSetting, "rm_tool_settings"),
        DocumentProjection.for_aggregate(ModelConfig, "rm_models"),
        DocumentProjection.for_aggregate(ModelSetting, "rm_model_settings"),
        ExecutionsProjection(),
        ExecutionLogsProjection(),
        ExecutionTraceProjection(),
        SchedulesProjection(),
        AuditProjection(),
        UsageProjection(),
    ]


def wire(
    settings: Settings,
    *,
    crew_runtime: CrewRuntimePort | None = None,
    clock: Clock | None = None,
    authenticator: Authenticator | None = None,
    secret_box: SecretBox | None = None,
    model_client: ModelClient | None = None,
    log_heartbeat_s: float = 15.0,
) -> Kasal:
    """Build the service for ``settings``. Each keyword replaces one part; left out, it is the real one:
    crew runtime = child processes from a CrewAI forkserver, clock = the system clock, authenticator =
    the one ``settings.auth_mode`` names, secret box = ``KASAL_SECRET_KEY`` or the local key file,
    model client = LiteLLM."""
    if not settings.database_url:
        raise ValueError("settings.database_url is required (the CLI starts an embedded PostgreSQL)")
    url = settings.database_url
    # Read models hold JSON documents: msgspec decodes them several times faster.
    set_json_loads(msgspec.json.decode)
    store = KasalStore(postgres_env(url, pool_size=settings.pool_size))
    # Timestamps read back in UTC whatever the server's zone, so an answer rendered from the
    # log (while a read model lags) and a later read of the row show the same text.
    session = {"options": "-c TimeZone=UTC"}
    pool = AsyncConnectionPool(url, open=False, min_size=2, max_size=settings.pool_size, kwargs=session)
    # Commands run in worker threads, so their side tables use a small sync pool.
    sync_pool = ConnectionPool(url, open=False, min_size=1, max_size=6, kwargs=session)
    models = read_models()
    projector = Projector(url, store, models)
    # A write's answer takes the row this process's projector has just committed, when it has.
    recent = {m.table: m.recent for m in models if isinstance(m, DocumentProjection)}
    store.on_saved(projector.wake)
    clock = clock or SystemClock()
    if secret_box is None:
        secret_box, key_source = open_secret_box(settings)
    else:
        key_source = "the secret box given to wire()"
    views = Views(
        agents=DocumentView(pool, "rm_agents", recent["rm_agents"]),
        tasks=DocumentView(pool, "rm_tasks", recent["rm_tasks"]),
        crews=DocumentView(pool, "rm_crews", recent["rm_crews"]),
        tools=ToolCatalogueView(pool), models=ModelCatalogueView(pool),
        api_keys=ApiKeyView(pool, recent[API_KEYS_TABLE]),
        templates=TemplateView(pool, "rm_templates", recent["rm_templates"]), tokens=AccessTokenView(pool),
        schedules=DocumentView(pool, "rm_schedules", recent["rm_schedules"]), next_run=NextRunQuery(pool),
        executions=ExecutionView(pool),
        execution_logs=ExecutionLogView(pool), execution_trace=ExecutionTraceView(pool),
        contents=ContentView(pool), audit=AuditView(pool, store.mapper), usage=UsageView(pool),
    )
    content = PostgresContentStore(sync_pool)
    references = ReferenceQueries(sync_pool)
    busy_limit = settings.max_concurrent_executions if settings.reject_when_busy else None
    sealed_rows = PostgresSealedRows(sync_pool)
    executions = ExecutionService(store, content, ExecutionIndexQueries(sync_pool), busy_limit=busy_limit,
                                  secret_inputs=SealedInputs(secret_box, sealed_rows))
    agents, tasks, crews = AgentService(store, references), TaskService(store, references), CrewService(store)
    api_keys = ApiKeyService(store, secret_box)
    credentials = GroupCredentials(api_keys, views.api_keys)
    tool_access = ToolAccess(installed=module_installed, mcp_stdio_commands=frozenset(settings.mcp_stdio_commands))
    drafts = CrewDrafts(crews=views.crews, agents=views.agents, tasks=views.tasks, tools=views.tools,
                        models=views.models, default_model=settings.default_model, tool_access=tool_access,
                        key_names=views.api_keys)
    planner = Planner(drafts, tasks=views.tasks, schedules=views.schedules, default_model=settings.default_model)
    generation = GenerationService(
        model_client or LiteLLMModelClient(), models=views.models, tools=views.tools, templates=views.templates,
        credentials=credentials, saver=CrewSaver(agents, tasks, crews), default_model=settings.default_model,
        is_offline=is_offline, tool_access=tool_access,
    )
    run_names = RunNamer(generation)
    crew_runtime = crew_runtime or CrewRuntime()
    cancellations = CancelRegistry()
    registry = RunnerRegistry(url, new_runner_id())
    replays = ReplayService(store, content, executions)
    runner = ExecutionRunner(
        executions, store, crew_runtime, cancellations=cancellations, registry=registry,
        max_concurrent=settings.max_concurrent_executions, timeout_s=settings.execution_timeout,
        credentials=credentials.credentials, models=views.models.resolve_model, namer=run_names.for_job,
        tools=ToolResolver(views.tools.find_tool, tool_access, settings.home,
                           allow_private_urls=settings.tools_allow_private_urls),
        replays=replays,
    )
    # A requested run can be claimed once the read model lists it: the projector says when.
    projector.on_advanced(runner.wake)
    scheduler_planner = ThreadedPlanner(planner)
    scheduler = SchedulerService(store, ScheduleIndexQueries(sync_pool), scheduler_planner, executions, clock,
                                 box=secret_box)
    token_lookup = CachingTokenLookup(views.tokens.by_hash, projected=lambda: projector.position)
    services = Services(
        agents=agents, tasks=tasks, crews=crews, tools=ToolsService(store), models=ModelsService(store),
        api_keys=api_keys, credentials=credentials, templates=TemplateService(store), tokens=TokenService(store),
        schedules=ScheduleService(store, clock, secret_box, scheduler_planner), scheduler=scheduler,
        executions=executions, drafts=drafts, planner=planner, generation=generation, run_names=run_names,
        tool_access=tool_access, replays=replays,
        control=ExecutionControl(executions, planner, rows=views.executions, cancellations=cancellations),
    )
    return Kasal(
        settings=settings, store=store, pool=pool, sync_pool=sync_pool, content=content, sealed_rows=sealed_rows,
        projector=projector,
        views=views, services=services, authenticator=authenticator or authenticator_for(settings, token_lookup),
        token_lookup=token_lookup, cancellations=cancellations, registry=registry, runner=runner,
        scheduler=SchedulerLoop(scheduler, views.next_run, clock, scheduler_planner), crew_runtime=crew_runtime,
        key_source=key_source, log_heartbeat_s=log_heartbeat_s, clock=clock, secret_box=secret_box,
    )
