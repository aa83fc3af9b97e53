"""The scenario registry, the run context and the metrics scenarios report."""

from __future__ import annotations

import operator
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.floor import Floor
from bench.server import Databases, ServerProcess

DEFAULT_PG = "postgresql://root@127.0.0.1:5432/test"
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    """A goal such as ``Target("<", 8)``; ``check`` says whether a value meets it."""

    op: str
    value: float

    def check(self, measured: float | None) -> bool | None:
        return None if measured is None else _OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass
class Metric:
    scenario: str
    name: str
    value: float | None
    unit: str
    target: str | None = None
    ok: bool | None = None
    kasal: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Context], None]
    order: int
    help: str
    web: bool = False


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, *, order: int = 100, web: bool = False,
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register ``fn(ctx)`` as the scenario ``name``; lower ``order`` runs first.

    ``web`` scenarios measure the shared service (``ctx.server()``); they run once per
    ``--web-concurrency`` value, each time on a service started with that many API processes.
    """

    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} registered twice")
        SCENARIOS[name] = Scenario(name, fn, order, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
                                   web)
        return fn

    return register


@dataclass
class Context:
    """What scenarios share: options, the PostgreSQL server, one lazily started service, the floor."""

    quick: bool
    web_concurrency: int = 1  # API processes of the service ``server()`` starts
    web_concurrency_values: list[int] = field(default_factory=lambda: [1])
    pg_url: str = field(default_factory=lambda: os.environ.get("KASAL_BENCH_DATABASE_URL")
                        or os.environ.get("KASAL_TEST_DATABASE_URL") or DEFAULT_PG)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    current: str = ""
    _dbs: Databases | None = None
    _server: ServerProcess | None = None
    floor: Floor | None = None

    @property
    def databases(self) -> Databases:
        if self._dbs is None:
            self._dbs = Databases(self.pg_url, prefix=f"kasal_bench_{self.run_id}")
        return self._dbs

    def n(self, full: int, quick: int) -> int:
        """A count: ``full`` normally, ``quick`` with --quick."""
        return quick if self.quick else full

    def http_seconds(self) -> int:
        """How long each HTTP load phase lasts (after its warm-up)."""
        return self.n(5, 2)

    def server(self) -> ServerProcess:
        """The shared service (``web_concurrency`` API processes) on a fresh database, started on first use."""
        if self._server is None:
            # The HTTP scenarios run no crews: keep the crew runner (and its CrewAI import) out.
            env = {"KASAL_RUN_WORKERS": "false", "KASAL_WEB_CONCURRENCY": str(self.web_concurrency)}
            self._server = ServerProcess(self.databases.create(), name=f"shared-{self.web_concurrency}", env=env)
            self._server.start()
        elif self._server.process is None or self._server.process.poll() is not None:
            code = self._server.process.returncode if self._server.process else None
            raise RuntimeError(f"the shared service exited (code {code}):\n{self._server.tail()}")
        return self._server

    def stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.cleanup()
            self._server = None

    def report(
        self, name: str, value: float | None, unit: str, *, target: Target | None = None,
        kasal: str | None = None, note: str | None = None,
    ) -> Metric:
        metric = Metric(self.current, name, value, unit, str(target) if target else None,
                        target.check(value) if target else None, kasal, note)
        self.metrics.append(metric)
        return metric

    def detail(self, key: str, value: Any) -> None:
        self.details.setdefault(self.current, {})[key] = value

    def close(self) -> None:
        self.stop_server()
        if self.floor is not None:
            self.floor.close()
            self.floor = None
        if self._dbs is not None:
            self._dbs.drop_all()
