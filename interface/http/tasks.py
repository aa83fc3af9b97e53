"""Tasks API: ``/api/v1/tasks``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put

from interface.http.common import (
    IfMatch,
    Limit,
    Offset,
    etag,
    expected_version,
    group_id,
    group_page,
    location,
    settle,
    settled_resource,
)
from interface.http.history import AsOf, read
from interface.http.structs import UNSET, Page, Resource, UnsetType, sent_fields, to_struct
from interface.wiring import Kasal

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Ref = Annotated[str, msgspec.Meta(max_length=200)]
OutputJson = str | dict[str, Any] | None


class TaskOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    agent_id: UUID | None | UnsetType = UNSET
    agent: Ref | None | UnsetType = UNSET
    tools: list[Ref] | UnsetType = UNSET
    context: list[Ref] | UnsetType = UNSET
    async_execution: bool | UnsetType = UNSET
    output_json: OutputJson | UnsetType = UNSET
    output_file: str | None | UnsetType = UNSET
    human_input: bool | UnsetType = UNSET
    markdown: bool | UnsetType = UNSET
    config: dict[str, Any] | UnsetType = UNSET


class TaskCreate(TaskOptions, kw_only=True):
    """A whole task definition (create, and full replace)."""

    name: Name
    description: Text
    expected_output: Text


class TaskUpdate(TaskOptions, kw_only=True):
    """Only the fields to change."""

    name: Name | UnsetType = UNSET
    description: Text | UnsetType = UNSET
    expected_output: Text | UnsetType = UNSET


class TaskRead(Resource, kw_only=True):
    name: str
    description: str
    expected_output: str
    agent_id: str | None = None
    agent: str | None = None
    tools: list[str] = []
    context: list[str] = []
    async_execution: bool = False
    output_json: OutputJson = None
    output_file: str | None = None
    human_input: bool = False
    markdown: bool = False
    config: dict[str, Any] = {}


class TaskPage(Page[TaskRead]):
    items: list[TaskRead]


async def _answer(kasal: Kasal, written: Any, status_code: int = 200) -> Response[TaskRead]:
    task, headers = await settled_resource(kasal, written, kasal.views.tasks, "task")
    return Response(to_struct(task, TaskRead), status_code=status_code, headers=headers)


class TaskController(Controller):
    path = "/api/v1/tasks"
    tags = ["tasks"]

    @post("/", summary="Create a task")
    async def create(self, request: Request[Any, Any, Any], kasal: Kasal, data: TaskCreate) -> Response[TaskRead]:
        """Create a task. ``agent`` may be an agent id or name (case, spaces, ``-`` and ``_``
        ignored); the resolved agent is ``agent_id``. Agent and tool names that match nothing
        yet are kept as written, so definitions can be created in any order; an agent or
        ``context`` task id the group does not have is 422."""
        written = await kasal.run(kasal.services.tasks.create, sent_fields(data))
        response = await _answer(kasal, written, 201)
        response.headers["Location"] = location(request, written.id)
        return response

    @get("/", summary="List tasks")
    async def list_tasks(self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0) -> Response[TaskPage]:
        """Tasks of the caller's group, newest first."""
        async def render() -> TaskPage:
            return to_struct(await kasal.views.tasks.list(group_id(), limit=limit, offset=offset), TaskPage)

        return await group_page(kasal, "tasks", limit, offset, render)

    @get("/{task_id:uuid}", summary="Get a task")
    async def get_task(self, kasal: Kasal, task_id: UUID, as_of: AsOf = None) -> Response[TaskRead]:
        """One task of the caller's group; other groups' tasks are 404. ``?as_of=`` answers it as it was then."""
        task = await read(kasal, "task", task_id, as_of)
        return Response(to_struct(task, TaskRead), headers=etag(task))

    @put("/{task_id:uuid}/full", summary="Replace a task")
    async def replace(
        self, kasal: Kasal, task_id: UUID, data: TaskCreate, if_match: IfMatch = None
    ) -> Response[TaskRead]:
        """Replace the whole definition: ``name``, ``description`` and ``expected_output``
        are required, and every field not sent goes back to its default."""
        written = await kasal.run(kasal.services.tasks.replace, task_id, sent_fields(data), expected_version(if_match))
        return await _answer(kasal, written)

    @put("/{task_id:uuid}", summary="Update a task")
    async def update(
        self, kasal: Kasal, task_id: UUID, data: TaskUpdate, if_match: IfMatch = None
    ) -> Response[TaskRead]:
        """Change only the fields sent. ``If-Match: "<version>"`` makes the change conditional."""
        written = await kasal.run(kasal.services.tasks.change, task_id, sent_fields(data), expected_version(if_match))
        return await _answer(kasal, written)

    @delete("/{task_id:uuid}", summary="Delete a task", status_code=204)
    async def remove(self, kasal: Kasal, task_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete a task."""
        written = await kasal.run(kasal.services.tasks.delete, task_id, expected_version(if_match))
        return Response(None, status_code=204, headers=await settle(kasal, written))
