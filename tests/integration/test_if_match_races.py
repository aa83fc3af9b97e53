"""A conditional write that loses a race on PostgreSQL: another client saves between our load and our save.

``InterleavedStore`` makes the race happen every time: the service under test
loads, then, just before its save, a second store (another client) records a
change to the same resource. With ``If-Match`` the precondition no longer
holds, so the write is refused (412) and only the other change is in the log;
without it, our change is re-applied on the fresh version and both land.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from application.agents import AgentService
from application.crews import CrewService
from application.documents import ExpectedVersions
from application.models import ModelsService
from application.store import KasalStore, postgres_env
from application.tasks import TaskService
from application.tools import ToolsService
from domain.context import Actor, acting_as
from domain.errors import PreconditionFailedError
from domain.model_config import builtin_model_id, model_setting_id
from domain.tool import builtin_tool_id, tool_setting_id
from projections.references import ReferenceQueries
from tests.contract import CONTRACT_AGENT

GROUP = "g"
TASK = {"name": "Research", "description": "Research AI", "expected_output": "Notes"}


class InterleavedStore(KasalStore):
    """The event store, except that its next save first lets ``interloper`` write."""

    name = KasalStore.name  # the library would otherwise name a subclass's tables after it

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.interloper: Callable[[], object] | None = None

    def record(self, *aggregates: Any) -> int | None:
        interloper, self.interloper = self.interloper, None
        if interloper is not None:
            interloper()
        return super().record(*aggregates)


@dataclass(frozen=True)
class Race:
    """A service, a resource it made, our conditional write and the other client's write."""

    name: str
    service: Callable[[KasalStore, ReferenceQueries], Any]
    make: Callable[[Any], Any]
    ours: Callable[[Any, Any, ExpectedVersions | None], object]
    theirs: Callable[[Any, Any], object]
    version: Callable[[KasalStore, Any], int]

    def __str__(self) -> str:
        return self.name


def _document_version(store: KasalStore, document_id: Any) -> int:
    return int(store.find(document_id).version)  # deleted ones too


def _seen_version(builtin_id: Any, setting_id: Any) -> Callable[[KasalStore, Any], int]:
    """What a group sees of a built-in: its version plus that of the group's setting."""

    def version(store: KasalStore, _: Any) -> int:
        setting = store.find(setting_id)
        return int(store.find(builtin_id).version) + (0 if setting is None else int(setting.version))

    return version


SERPER, GPT_4O = builtin_tool_id("SerperDevTool"), builtin_model_id("gpt-4o")

RACES = [
    Race("agent-change", lambda store, refs: AgentService(store, refs),
         lambda s: s.create(CONTRACT_AGENT).id,
         lambda s, ref, ev: s.change(ref, {"goal": "Ours"}, ev),
         lambda s, ref: s.change(ref, {"backstory": "Theirs"}),
         _document_version),
    Race("task-replace", lambda store, refs: TaskService(store, refs),
         lambda s: s.create(TASK).id,
         lambda s, ref, ev: s.replace(ref, {**TASK, "name": "Ours"}, ev),
         lambda s, ref: s.change(ref, {"expected_output": "Theirs"}),
         _document_version),
    Race("crew-delete", lambda store, refs: CrewService(store),
         lambda s: s.create({"name": "Crew"}).id,
         lambda s, ref, ev: s.delete(ref, ev),
         lambda s, ref: s.change(ref, {"description": "Theirs"}),
         _document_version),
    Race("tool-toggle", lambda store, refs: ToolsService(store),
         lambda s: s.create({"name": "Ledger Tool"}).id,
         lambda s, ref, ev: s.toggle(ref, ev),
         lambda s, ref: s.change(ref, {"description": "Theirs"}),
         _document_version),
    Race("builtin-tool-toggle", lambda store, refs: ToolsService(store),
         lambda s: SERPER,
         lambda s, ref, ev: s.toggle(ref, ev),
         lambda s, ref: s.change(ref, {"config": {"n_results": 7}}),
         _seen_version(SERPER, tool_setting_id(GROUP, SERPER))),
    Race("model-toggle", lambda store, refs: ModelsService(store),
         lambda s: (s.create({"key": "mine", "name": "gpt-4o-mini", "provider": "openai"}).id, "mine"),
         lambda s, ref, ev: s.toggle(ref[1], None, ev),
         lambda s, ref: s.change(ref[1], {"temperature": 0.3}),
         lambda store, ref: _document_version(store, ref[0])),
    Race("builtin-model-toggle", lambda store, refs: ModelsService(store),
         lambda s: "gpt-4o",
         lambda s, ref, ev: s.toggle(ref, None, ev),
         lambda s, ref: s.change(ref, {"temperature": 0.3}),
         _seen_version(GPT_4O, model_setting_id(GROUP, GPT_4O))),
]


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[InterleavedStore, KasalStore]]:
    """Our store and the other client's, on one database, acting in one group."""
    ours, theirs = InterleavedStore(postgres_env(database_url)), KasalStore(postgres_env(database_url))
    with acting_as(Actor(group_id=GROUP, actor="test")):
        yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture
def references(database_url: str) -> Iterator[ReferenceQueries]:
    with ConnectionPool(database_url, min_size=1, max_size=2) as pool:
        yield ReferenceQueries(pool)


def _arrange(
    race: Race, stores: tuple[InterleavedStore, KasalStore], references: ReferenceQueries,
) -> tuple[Any, Any, int]:
    """Our service, a resource it made and that resource's version; the other write is primed."""
    ours, theirs = stores
    service, other = race.service(ours, references), race.service(theirs, references)
    ref = race.make(service)
    ours.interloper = lambda: race.theirs(other, ref)
    return service, ref, race.version(ours, ref)


@pytest.mark.parametrize("race", RACES, ids=str)
def test_a_write_for_a_version_that_changed_meanwhile_is_refused(race: Race, stores: Any, references: Any) -> None:
    service, ref, before = _arrange(race, stores, references)

    with pytest.raises(PreconditionFailedError):
        race.ours(service, ref, ExpectedVersions(frozenset({before})))

    ours, theirs = stores
    assert ours.interloper is None, "the other write never landed between load and save"
    assert race.version(theirs, ref) == before + 1  # theirs alone


@pytest.mark.parametrize("race", RACES, ids=str)
def test_an_unconditional_write_is_reapplied_on_top_of_the_other(race: Race, stores: Any, references: Any) -> None:
    service, ref, before = _arrange(race, stores, references)

    race.ours(service, ref, None)

    ours, theirs = stores
    assert ours.interloper is None, "the other write never landed between load and save"
    assert race.version(theirs, ref) == before + 2  # theirs, then ours
