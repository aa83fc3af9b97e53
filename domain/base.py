"""The base every aggregate builds on: tenant, actor and request id on every
event, and explicit stable event topics.

Stored events name their class by topic. The library's default topic is the
module path, which would break stored history whenever code moves, so every
aggregate declares a stable prefix with ``@stable_topics("agent")`` and its
events are stored as ``agent.created.v1``, ``agent.updated.v1``, …  The
``.v1`` names the topic's generation and never changes; a changed event shape
is handled by ``class_version`` and ``upcast_vN_vN+1`` on the same class.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from domain.context import current_actor
from domain.errors import NotFoundError

A = TypeVar("A", bound="type[KasalAggregate]")

__all__ = ["KasalAggregate", "Document", "stable_topics", "event", "event_classes"]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def event_classes(aggregate_cls: type) -> dict[str, type[KasalAggregate.Event]]:
    """Every event class nested in an aggregate class, by attribute name."""
    found: dict[str, type[KasalAggregate.Event]] = {}
    for name in dir(aggregate_cls):
        value = getattr(aggregate_cls, name, None)
        if isinstance(value, type) and issubclass(value, KasalAggregate.Event):
            found[name] = value
    return found


def topics_of(aggregate_cls: type) -> frozenset[str]:
    """The stable topics of an aggregate's own events (what a projection of it subscribes to)."""
    return frozenset(c.TOPIC for c in event_classes(aggregate_cls).values() if "TOPIC" in c.__dict__)


def stable_topics(prefix: str) -> Callable[[A], A]:
    """Give an aggregate and each of its events an explicit, stable topic."""

    def decorate(cls: A) -> A:
        cls.TOPIC = f"{prefix}.v1"
        register_topic(cls.TOPIC, cls)
        for name, event_cls in event_classes(cls).items():
            topic = f"{prefix}.{_snake(name)}.v1"
            event_cls.TOPIC = topic
            register_topic(topic, event_cls)
        return cls

    return decorate


class KasalAggregate(Aggregate):
    """An aggregate owned by one group, whose events say who did what, when, and why."""

    class Event(Aggregate.Event):
        TOPIC: ClassVar[str]  # set by stable_topics; not a field of the event
        group_id: str
        actor: str
        correlation_id: str

    class Created(Event, Aggregate.Created):
        pass

    # No class annotations at run time: the library turns annotated aggregate
    # classes (and their subclasses) into dataclasses with generated __init__ methods.
    if TYPE_CHECKING:
        TOPIC: ClassVar[str]
        group_id: str

    @classmethod
    def _create(cls, event_class: Any, *, id: UUID | None = None, **kwargs: Any) -> Self:
        meta = current_actor()
        kwargs.setdefault("actor", meta.actor)
        kwargs.setdefault("correlation_id", meta.correlation_id)
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        meta = current_actor()
        kwargs.setdefault("group_id", self.group_id)
        kwargs.setdefault("actor", meta.actor)
        kwargs.setdefault("correlation_id", meta.correlation_id)
        super().trigger_event(event_class, **kwargs)


class Document(KasalAggregate):
    """A definition users create, change field by field, and delete.

    Agents, tasks, crews, tools, models and templates are all documents: the
    interface validates their shape, the subclass checks its own rules, and
    the events record exactly which fields changed.
    """

    class Created(KasalAggregate.Created):
        fields: dict[str, Any]

    def __init__(self, group_id: str, fields: dict[str, Any], actor: str = "") -> None:
        self.group_id = group_id
        self.fields = dict(fields)
        self.deleted = False
        self.created_by = actor

    KIND = "resource"

    @classmethod
    def new(cls, group_id: str, fields: dict[str, Any], *, id: UUID | None = None) -> Self:
        """Create a document; subclasses fill defaults and check rules in ``prepare``."""
        return cls._create(cls.Created, id=id, group_id=group_id, fields=cls.prepare(dict(fields)))

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and check the document's rules; return the fields to record."""
        return fields

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))

    def check_alive(self) -> None:
        if self.deleted:
            raise NotFoundError(f"{self.KIND} {self.id} not found")

    def change(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Record the fields that really change; returns them (empty: nothing recorded)."""
        self.check_alive()
        merged = self.prepare({**self.fields, **changes})
        diff = {k: v for k, v in merged.items() if k not in self.fields or not same_value(self.fields[k], v)}
        if diff:
            self._update(changes=diff)
        return diff

    def replace(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole definition: fields not sent go back to their defaults."""
        self.check_alive()
        fresh = self.prepare(dict(fields))
        diff = {k: v for k, v in fresh.items() if not same_value(self.fields.get(k, _MISSING), v)}
        removed = sorted(set(self.fields) - set(fresh))
        if diff or removed:
            self._replace(fields=fresh)
        return diff

    def delete(self) -> None:
        self.check_alive()
        self.trigger_event(type(self).Deleted)

    def restore(self, fields: dict[str, Any], *, from_version: int) -> bool:
        """Make an earlier version's fields current again, undeleting the document if need be.

        ``fields`` are what the document held at ``from_version``; they are
        checked against today's rules. Nothing is recorded (False) when the
        document is alive and already holds exactly them. The event carries
        when and by whom the document was created, so a read model that
        dropped the row on deletion can put it back whole.
        """
        fresh = self.prepare(dict(fields))
        if not self.deleted and same_value(self.fields, fresh):
            return False
        self.trigger_event(
            type(self).Restored, fields=fresh, from_version=from_version,
            created_at=self.created_on, created_by=self.created_by,
        )
        return True

    def _update(self, changes: dict[str, Any]) -> None:
        self.trigger_event(type(self).Updated, changes=changes)

    def _replace(self, fields: dict[str, Any]) -> None:
        self.trigger_event(type(self).Replaced, fields=fields)

    # Event classes apply themselves (rather than @event methods) so that each
    # document kind gets its own redefined subclass, and so its own topic:
    # a decorated method on this base class would always trigger the base event.

    class Updated(KasalAggregate.Event):
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields = {**aggregate.fields, **self.changes}

    class Replaced(KasalAggregate.Event):
        fields: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields = dict(self.fields)

    class Deleted(KasalAggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    class Restored(KasalAggregate.Event):
        """The fields of version ``from_version`` made current again (alive, if it was deleted)."""

        fields: dict[str, Any]
        from_version: int
        created_at: datetime
        created_by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.fields = dict(self.fields)
            aggregate.deleted = False


_MISSING = object()


def same_value(old: Any, new: Any) -> bool:
    """``old == new``, except that mappings also need their keys in the same order.

    The order of a mapping is meaning (a crew's tasks run in the order they are
    written), so a change that only reorders one must be recorded.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        return list(old) == list(new) and all(same_value(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same_value(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)
