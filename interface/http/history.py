"""A definition's past, folded from its own events: its versions, and what it was at any of them.

Every version of a resource is a prefix of its events. The read models keep
only the last one, so the past is folded here from the log with the very
fold a read model uses (the projection's ``rows_of``) and turned into a
resource by the same view that answers ``GET``: an answer about version ``n``
is what ``GET`` said right after it, by construction.

Catalogue entries (tools, models) are two aggregates as a group sees them:
the entry (a built-in shared by every group, or the group's own) and the
group's setting of a built-in. ``GET`` answers the entry's version plus the
setting's, so a version of a catalogue entry is one event of either, in the
order they happened.

One pass folds all versions (each event is applied once), so listing the
versions of a document with hundreds of them stays linear in its events.
Controllers turn a resource into their wire struct; this module never
imports them, so any of them can answer ``?as_of=`` through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar.params import Parameter

from application.tools import catalogue_versions
from domain.agent import Agent
from domain.api_key import ApiKey
from domain.base import Document
from domain.crew import Crew
from domain.errors import NotFoundError
from domain.execution import Execution
from domain.model_config import ModelConfig, ModelSetting, model_setting_id
from domain.schedule import Schedule
from domain.task import Task
from domain.template import Template
from domain.tool import BUILTIN_GROUP, Tool, ToolSetting, tool_setting_id
from interface.http.common import MAX_OFFSET, found, group_id, instant_param, invalid
from interface.http.structs import Page
from interface.wiring import Kasal
from projections.documents import DocumentProjection
from projections.executions import ExecutionsProjection, with_result_text

Wire = Callable[[dict[str, Any]], msgspec.Struct]
"""A controller's turn of a resource (as its view returns it) into the struct ``GET`` answers."""

AsOf = Annotated[str | None, Parameter(
    query="as_of", required=False, default=None,
    description="ISO 8601 instant (no offset: UTC): answer the resource as it was then",
)]

BOOKKEEPING = frozenset({"id", "group_id", "version", "created_at", "updated_at", "created_by", "updated_by"})
"""Fields every answer carries that say when and by whom, not what: never listed as changes."""


@dataclass(frozen=True)
class Setting:
    """A catalogue kind's per-group setting of an entry: its aggregate, table, and id for (group, entry)."""

    aggregate: type[Document]
    table: str
    id_for: Callable[[str, UUID], UUID]


@dataclass(frozen=True)
class Kind:
    """What a resource kind's history is made of, and which view renders it."""

    label: str
    aggregate: type[Document]
    table: str
    view: Callable[[Kasal], Any]
    setting: Setting | None = None


KINDS: dict[str, Kind] = {
    "agent": Kind("agent", Agent, "rm_agents", lambda kasal: kasal.views.agents),
    "task": Kind("task", Task, "rm_tasks", lambda kasal: kasal.views.tasks),
    "crew": Kind("crew", Crew, "rm_crews", lambda kasal: kasal.views.crews),
    "template": Kind("template", Template, "rm_templates", lambda kasal: kasal.views.templates),
    "schedule": Kind("schedule", Schedule, "rm_schedules", lambda kasal: kasal.views.schedules),
    "api_key": Kind("api key", ApiKey, "rm_api_keys", lambda kasal: kasal.views.api_keys),
    "tool": Kind("tool", Tool, "rm_tools", lambda kasal: kasal.views.tools,
                 Setting(ToolSetting, "rm_tool_settings", tool_setting_id)),
    "model": Kind("model", ModelConfig, "rm_models", lambda kasal: kasal.views.models,
                  Setting(ModelSetting, "rm_model_settings", model_setting_id)),
}


@dataclass(frozen=True)
class Timeline:
    """One resource's versions as one group sees them: ``events[i]`` made version ``i + 1``."""

    kind: Kind
    resource_id: UUID
    events: list[Any]
    render: Callable[[int], dict[str, Any] | None]

    @property
    def last(self) -> int:
        return len(self.events)

    def resource(self, version: int) -> dict[str, Any] | None:
        """The resource as its view answered right after ``version`` (None: deleted then)."""
        return self.render(version - 1) if 1 <= version <= self.last else None

    def version_at(self, instant: datetime) -> int:
        """The last version made at or before ``instant`` (0: none yet)."""
        return sum(1 for event in self.events if event.timestamp <= instant)


def build_timeline(kasal: Kasal, kind_name: str, resource_id: UUID, group: str) -> Timeline | None:
    """Fold a resource's events (sync: reads the log); None unless ``group`` may see it."""
    kind = KINDS[kind_name]
    events = kasal.store.history(resource_id)
    if not events or not isinstance(events[0], kind.aggregate.Created):
        return None
    view = kind.view(kasal)
    entry_rows = list(_projection(kasal, kind.table).rows_of(events))
    if kind.setting is None:
        if not view.visible({"group_id": events[0].group_id}, group):
            return None
        return Timeline(kind, resource_id, events, _rendered(entry_rows, view.to_resource))
    if events[0].group_id not in (group, BUILTIN_GROUP):
        return None
    setting_events = kasal.store.history(kind.setting.id_for(group, resource_id))
    setting_rows = list(_projection(kasal, kind.setting.table).rows_of(setting_events))
    merged, states = _merged(events, entry_rows, setting_events, setting_rows)
    return Timeline(kind, resource_id, merged, _rendered(states, lambda pair: view.combined(*pair)))


async def timeline(kasal: Kasal, kind_name: str, resource_id: UUID) -> Timeline:
    """The caller's group's view of a resource's history; 404 for what the group cannot see."""
    found = await kasal.run(build_timeline, kasal, kind_name, resource_id, group_id())
    if found is None:
        raise NotFoundError(f"{KINDS[kind_name].label} {resource_id} not found")
    return found


async def resource_as_of(kasal: Kasal, kind_name: str, resource_id: UUID, instant: datetime) -> dict[str, Any]:
    """The resource as ``GET`` answered at ``instant``; 404 if it did not exist yet or was deleted then."""
    past = await timeline(kasal, kind_name, resource_id)
    resource = past.resource(past.version_at(instant))
    if resource is None:
        raise NotFoundError(f"{past.kind.label} {resource_id} did not exist at {instant.isoformat()}")
    return resource


async def read(kasal: Kasal, kind_name: str, resource_id: UUID, as_of: str | None) -> dict[str, Any]:
    """What ``GET /{resource}/{id}`` answers: the resource now, or as it was at ``as_of``."""
    moment = instant_param(as_of, "as_of")
    if moment is not None:
        return await resource_as_of(kasal, kind_name, resource_id, moment)
    kind = KINDS[kind_name]
    return found(await kind.view(kasal).get(group_id(), resource_id), kind.label, resource_id)


async def execution_as_of(kasal: Kasal, execution_id: UUID, moment: datetime) -> dict[str, Any]:
    """An execution's row as ``ExecutionView.get`` would have returned it at ``moment``; 404 before it existed."""
    row = await kasal.run(_execution_row_at, kasal, execution_id, group_id(), moment)
    if row is None:
        raise NotFoundError(f"execution {execution_id} did not exist at {moment.isoformat()}")
    ref = row.get("result_ref") or {}
    text = await kasal.views.contents.text(row["group_id"], ref["sha256"]) if ref.get("sha256") else None
    return with_result_text(row, text)


def _execution_row_at(kasal: Kasal, execution_id: UUID, group: str, moment: datetime) -> dict[str, Any] | None:
    events = kasal.store.history(execution_id)
    if not events or not isinstance(events[0], Execution.Requested) or events[0].group_id != group:
        return None
    projection = next(p for p in kasal.projector.projections if isinstance(p, ExecutionsProjection))
    return projection.row_of([event for event in events if event.timestamp <= moment])


def as_builtins(resource: dict[str, Any], wire: Wire) -> dict[str, Any]:
    """The JSON body ``GET`` answers for ``resource``, as plain data."""
    body: dict[str, Any] = msgspec.to_builtins(wire(resource))
    return body


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{field: {"from", "to"}}`` between two answers (absent: null), bookkeeping left out."""
    old, new = before or {}, after or {}
    fields = [k for k in new if k not in BOOKKEEPING] + [k for k in old if k not in new and k not in BOOKKEEPING]
    return {k: {"from": old.get(k), "to": new.get(k)} for k in fields if old.get(k) != new.get(k)
            or type(old.get(k)) is not type(new.get(k))}


def version_entries(past: Timeline, wire: Wire, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """The entries of ``GET …/versions`` from ``offset``: each version, who made it, and what changed."""
    entries = []
    stop = min(past.last, offset + limit)
    before = _body(past, offset, wire)
    for index in range(offset, stop):
        event = past.events[index]
        after = _body(past, index + 1, wire)
        entries.append({
            "version": index + 1, "at": event.timestamp, "actor": event.actor, "type": type(event).TOPIC,
            "changes": changes(before, after),
        })
        before = after
    return entries


def _body(past: Timeline, version: int, wire: Wire) -> dict[str, Any] | None:
    resource = past.resource(version)
    return None if resource is None else as_builtins(resource, wire)


def _projection(kasal: Kasal, table: str) -> DocumentProjection:
    for projection in kasal.projector.projections:
        if table in projection.tables and isinstance(projection, DocumentProjection):
            return projection
    raise LookupError(f"no document projection keeps {table}")


def _rendered(states: list[Any], render: Callable[[Any], dict[str, Any]]) -> Callable[[int], dict[str, Any] | None]:
    def at(index: int) -> dict[str, Any] | None:
        state = states[index]
        if state is None:
            return None
        return render(state)

    return at


def _merged(
    events: list[Any], rows: list[dict[str, Any] | None], setting_events: list[Any],
    setting_rows: list[dict[str, Any] | None],
) -> tuple[list[Any], list[tuple[dict[str, Any], dict[str, Any] | None] | None]]:
    """Both aggregates' events in the order versions count them, with the (entry, setting) rows after each."""
    merged: list[Any] = []
    states: list[tuple[dict[str, Any], dict[str, Any] | None] | None] = []
    entry_before = 0
    for entry_version, setting_version in catalogue_versions(events, setting_events):
        stepped = entry_version != entry_before
        merged.append(events[entry_version - 1] if stepped else setting_events[setting_version - 1])
        entry_before = entry_version
        entry = rows[entry_version - 1] if entry_version else None
        setting = setting_rows[setting_version - 1] if setting_version else None
        states.append(None if entry is None else (entry, setting))
    return merged, states


class Change(msgspec.Struct):
    from_: Any = msgspec.field(name="from")
    to: Any = None


class VersionEntry(msgspec.Struct, kw_only=True):
    version: int
    at: datetime
    actor: str
    type: str
    changes: dict[str, Change]


class VersionPage(Page[VersionEntry]):
    items: list[VersionEntry]


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    """``limit`` and ``offset`` of a route that cannot declare them (the models' catch-all path), checked
    as every list checks them."""
    return (_bounded(query, "limit", 20, 1, 100), _bounded(query, "offset", 0, 0, MAX_OFFSET))


def _bounded(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid(name, "query", f"Input should be an integer from {low} to {high}")
    return value


def version_number(value: str) -> int:
    """A version from the path: 422 unless it is an integer of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise invalid("version", "path", "Input should be an integer greater than or equal to 1")
    return number


def versions_page(past: Timeline, wire: Wire, limit: int, offset: int) -> VersionPage:
    items = version_entries(past, wire, limit=limit, offset=offset)
    return msgspec.convert(
        {"items": items, "total": past.last, "limit": limit, "offset": offset,
         "has_more": offset + len(items) < past.last},
        VersionPage, from_attributes=False, strict=False,
    )


def version_resource(past: Timeline, version: int) -> dict[str, Any]:
    """The resource at ``version``; 404 if it was deleted then or the version is beyond the last."""
    resource = past.resource(version)
    if resource is None:
        label = past.kind.label
        if version > past.last:
            raise NotFoundError(f"{label} {past.resource_id} has no version {version} (it has {past.last})")
        raise NotFoundError(f"{label} {past.resource_id} was deleted at version {version}")
    return resource
