"""The one event-sourced application: a single ordered log for the whole service.

Every aggregate is saved here, so audit queries and projections read one
notification sequence. This module also owns the translation of the library's
errors into domain errors and the optimistic-concurrency retry.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError

from application.idempotency import claimed, key_to_save
from domain.base import KasalAggregate
from domain.context import current_actor
from domain.errors import ConflictError, NotFoundError

log = logging.getLogger("kasal.store")
T = TypeVar("T")
AGG = TypeVar("AGG", bound=KasalAggregate)

APPLICATION_NAME = "kasal"
CREATE_ATTEMPTS = 5


class StableTopicMapper(Mapper[UUID]):
    """Refuses to store an event whose class has no explicit topic of its own."""

    def to_stored_event(self, domain_event: Any) -> Any:
        if "TOPIC" not in type(domain_event).__dict__:
            raise TypeError(
                f"{type(domain_event).__qualname__} has no stable topic: decorate its "
                "aggregate with @stable_topics"
            )
        return super().to_stored_event(domain_event)


class KasalStore(Application[UUID]):
    """Event store of the service (table ``kasal_events``)."""

    name = APPLICATION_NAME

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._listeners: list[Callable[[int], None]] = []

    def construct_recorder(self) -> Any:
        """The recorder, its tables created if missing.

        Processes starting together on a new database create the tables at
        once, and PostgreSQL may refuse one of the concurrent ``CREATE ... IF
        NOT EXISTS`` ("tuple concurrently updated", a duplicate ``pg_type``
        row); the other process's creation goes through, so creating is
        simply tried again (it changes nothing that exists).
        """
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return super().construct_recorder()
            except PersistenceError:
                if attempt == CREATE_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def construct_mapper(self) -> Mapper[UUID]:
        return StableTopicMapper(
            transcoder=self.construct_transcoder(),
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )

    def on_saved(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(position)`` after each save in this process."""
        self._listeners.append(listener)

    def record(self, *aggregates: KasalAggregate | None) -> int | None:
        """Save and return the log position of the last event (None if nothing new).

        A request that carries an idempotency key claims it in its first save
        that writes anything (``application.idempotency``).
        """
        claiming = key_to_save(aggregates, self.find)
        recordings = self.save(*aggregates, claiming[1] if claiming else None)
        if claiming:
            claimed(*claiming)
        if not recordings:
            return None
        position = recordings[-1].notification.id
        for listener in self._listeners:
            listener(position)
        return position

    def load(self, cls: type[AGG], aggregate_id: UUID, *, kind: str | None = None) -> AGG:
        """The caller's group's aggregate, or NotFoundError (other tenants' ids look absent)."""
        label = kind or getattr(cls, "KIND", cls.__name__.lower())
        try:
            aggregate: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(f"{label} {aggregate_id} not found") from None
        if not isinstance(aggregate, cls) or aggregate.group_id != current_actor().group_id:
            raise NotFoundError(f"{label} {aggregate_id} not found")
        if getattr(aggregate, "deleted", False):
            raise NotFoundError(f"{label} {aggregate_id} not found")
        return aggregate

    def find(self, aggregate_id: UUID) -> Any | None:
        """Any aggregate by id, regardless of group (system use only)."""
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def history(self, aggregate_id: UUID) -> list[Any]:
        """Every event of one aggregate so far, oldest first, whatever its group (system use only)."""
        return list(self.events.get(aggregate_id))

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0


def retry_on_conflict(attempt: Callable[[], T], *, attempts: int = 16) -> T:
    """Run a load-change-save ``attempt`` again on a version conflict.

    Only for changes that commute (re-applying them to the fresh version is
    what the user meant); after ``attempts`` losses the caller gets a 409.
    A short random back-off keeps many writers of one aggregate from
    colliding in lock-step.
    """
    for n in range(attempts - 1):
        try:
            return attempt()
        except IntegrityError:
            log.debug("version conflict, retrying on the fresh aggregate")
            time.sleep(random.uniform(0, 0.002 * 2 ** min(n, 5)))
    try:
        return attempt()
    except IntegrityError:
        raise ConflictError("The resource was changed concurrently; try again") from None


def postgres_env(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> dict[str, str]:
    """eventsourcing settings for a libpq URL.

    Never enables the recorder's DB functions: that path skips the table lock,
    and subscribers then miss events under concurrent writers (measured).
    """
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts.get("dbname", "kasal")),
        "POSTGRES_HOST": str(parts.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(parts.get("port", "5432")),
        "POSTGRES_USER": str(parts.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(parts.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(max_overflow),
        "POSTGRES_LOCK_TIMEOUT": "5",
        # Concurrent saves of this process share one transaction (application.group_commit).
        "APPLICATION_RECORDER_TOPIC": "application.group_commit:GroupCommitRecorder",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        # Loading an aggregate reads only the events after its cached version
        # (fast-forward), so long-lived ones such as a chatty execution do not
        # replay their whole history on every command.
        "AGGREGATE_CACHE_MAXSIZE": "1000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }
    return env


def memory_env() -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
