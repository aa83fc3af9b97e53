"""Templates API: ``/api/v1/templates``: the prompts the generators use, and any of a group's own.

A group sees its own templates plus the built-ins (group ``system``) it has
not overridden by name.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put

from domain.template import SYSTEM_GROUP, render
from interface.http.common import (
    IfMatch,
    Limit,
    Offset,
    etag,
    expected_version,
    found,
    group_id,
    location,
    settle,
    settled_resource,
)
from interface.http.history import AsOf, read
from interface.http.structs import UNSET, Page, Resource, UnsetType, sent_fields, to_struct
from interface.wiring import Kasal

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
Variable = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class TemplateFields(msgspec.Struct, kw_only=True, omit_defaults=True):
    description: str | None | UnsetType = UNSET
    variables: list[Variable] | None | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET


class TemplateCreate(TemplateFields, kw_only=True):
    """``variables`` may be left out: it is then read from the template's placeholders."""

    name: Name
    template: Text


class TemplateUpdate(TemplateFields, kw_only=True):
    name: Name | UnsetType = UNSET
    template: Text | UnsetType = UNSET


class TemplateRead(Resource, kw_only=True):
    name: str
    description: str
    template: str
    variables: list[str]
    is_active: bool
    built_in: bool


class RenderRequest(msgspec.Struct, kw_only=True):
    variables: dict[str, Any] = {}


class RenderResult(msgspec.Struct, kw_only=True):
    rendered: str


class TemplatePage(Page[TemplateRead]):
    items: list[TemplateRead]


def template_read(row: dict[str, Any]) -> TemplateRead:
    return to_struct({**row, "built_in": row["group_id"] == SYSTEM_GROUP}, TemplateRead)


class TemplateController(Controller):
    path = "/api/v1/templates"
    tags = ["templates"]

    @get("/", summary="List templates")
    async def list_templates(self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0) -> TemplatePage:
        """The group's templates and the built-ins it has not overridden by name, newest first."""
        page = await kasal.views.templates.list(group_id(), limit=limit, offset=offset)
        return to_struct({**page, "items": [template_read(item) for item in page["items"]]}, TemplatePage)

    @post("/", summary="Create a template")
    async def create(
        self, request: Request[Any, Any, Any], kasal: Kasal, data: TemplateCreate,
    ) -> Response[TemplateRead]:
        """Create a template. ``{name}`` is a placeholder and ``{{``/``}}`` are literal braces;
        ``variables`` must list exactly the placeholders (422 names the missing and unused
        ones). A name the group already uses is 409; a built-in's name overrides it."""
        written = await kasal.run(kasal.services.templates.create, sent_fields(data))
        row, headers = await settled_resource(kasal, written, kasal.views.templates, "template")
        headers["Location"] = location(request, written.id)
        return Response(template_read(row), status_code=201, headers=headers)

    @get("/by-name/{name:str}", summary="Get the template a name means for the group")
    async def by_name(self, kasal: Kasal, name: str) -> Response[TemplateRead]:
        """The group's template of that name, else the built-in one."""
        row = await kasal.views.templates.effective(group_id(), name, active_only=False)
        row = found(row, "template", name)
        return Response(template_read(row), headers=etag(row))

    @get("/{template_id:uuid}", summary="Get a template")
    async def get_template(self, kasal: Kasal, template_id: UUID, as_of: AsOf = None) -> Response[TemplateRead]:
        """One of the group's templates or a built-in; other groups' templates are 404. ``?as_of=`` answers
        it as it was then."""
        row = await read(kasal, "template", template_id, as_of)
        return Response(template_read(row), headers=etag(row))

    @put("/{template_id:uuid}", summary="Update a template")
    async def update(
        self, kasal: Kasal, template_id: UUID, data: TemplateUpdate, if_match: IfMatch = None
    ) -> Response[TemplateRead]:
        """Change the fields sent (new text without ``variables`` re-reads them from it).
        Updating a built-in creates the group's own version of it, which the answer returns
        (with its new id); other groups keep seeing the built-in."""
        written = await kasal.run(
            kasal.services.templates.change, template_id, sent_fields(data), expected_version(if_match)
        )
        row, headers = await settled_resource(kasal, written, kasal.views.templates, "template")
        return Response(template_read(row), headers=headers)

    @delete("/{template_id:uuid}", summary="Delete a template", status_code=204)
    async def remove(self, kasal: Kasal, template_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete one of the group's templates (an override: the built-in shows again).
        Built-ins cannot be deleted (403)."""
        written = await kasal.run(kasal.services.templates.delete, template_id, expected_version(if_match))
        headers = await settle(kasal, written)
        return Response(None, status_code=204, headers=headers)

    @post("/{template_id:uuid}/render", summary="Render a template", status_code=200, opt={"min_role": "operator"})
    async def render_one(self, kasal: Kasal, template_id: UUID, data: RenderRequest) -> RenderResult:
        """Fill the placeholders with ``variables``; missing ones are 422 and named.
        Values that are not strings are written as JSON. Nothing is stored."""
        row = found(await kasal.views.templates.get(group_id(), template_id), "template", template_id)
        return RenderResult(rendered=render(row["template"], data.variables))
