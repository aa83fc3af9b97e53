"""Templates API: ``/api/v1/templates``, and the prompts the generators use.

A group sees its own templates plus the built-ins (group ``system``) it has
not overridden by name. ``template_for`` gives the generation feature the
text that applies to a group.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from psycopg.rows import dict_row

from application.templates import TemplateService
from domain.errors import NotFoundError
from domain.template import SYSTEM_GROUP, Template, render
from interface.core import Core, Feature
from interface.http.common import IfMatch, Limit, Offset, etag, expected_version, found, group_id, location, settle
from interface.http.structs import UNSET, Resource, UnsetType, page_type, sent_fields, to_struct
from projections.documents import DocumentProjection, DocumentView, Page

log = logging.getLogger("kasal.templates")

TABLE = "rm_templates"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
Variable = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

# Rows the group sees: its own, and built-ins it has no same-named template for.
_VISIBLE = f"""
    (t.group_id = %(group)s OR (t.group_id = '{SYSTEM_GROUP}' AND NOT EXISTS (
        SELECT 1 FROM {TABLE} o WHERE o.group_id = %(group)s AND lower(o.name) = lower(t.name))))
"""


class TemplateView(DocumentView):
    """Queries over ``rm_templates`` that merge the built-ins into each group's view."""

    async def get(self, group_id: str, document_id: UUID) -> dict[str, Any] | None:
        """A group's template or any built-in (also one the group has overridden)."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM {TABLE} WHERE group_id IN (%s, %s) AND id = %s",
                (group_id, SYSTEM_GROUP, document_id),
            )
            row = await cur.fetchone()
        return self.to_resource(row) if row else None

    async def list(
        self, group_id: str, *, limit: int, offset: int, contains: dict[str, Any] | None = None
    ) -> Page:
        params = {"group": group_id, "limit": limit, "offset": offset}
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT count(*) AS total FROM {TABLE} t WHERE {_VISIBLE}", params)
            total = (await cur.fetchone() or {"total": 0})["total"]
            await cur.execute(
                f"SELECT * FROM {TABLE} t WHERE {_VISIBLE}"
                " ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
                params,
            )
            rows = await cur.fetchall()
        items = [self.to_resource(r) for r in rows]
        return Page(items=items, total=total, limit=limit, offset=offset, has_more=offset + len(items) < total)

    async def effective(self, group_id: str, name: str, *, active_only: bool) -> dict[str, Any] | None:
        """The group's template of that name (if active, when asked), else the built-in."""
        active = " AND (doc->>'is_active')::boolean" if active_only else ""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM {TABLE} WHERE lower(name) = lower(%(name)s) AND"
                f" ((group_id = %(group)s{active}) OR group_id = '{SYSTEM_GROUP}')"
                f" ORDER BY group_id = '{SYSTEM_GROUP}' LIMIT 1",
                {"group": group_id, "name": name},
            )
            row = await cur.fetchone()
        return self.to_resource(row) if row else None


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


TemplatePage = page_type(TemplateRead, "TemplatePage")


def _read(row: dict[str, Any]) -> TemplateRead:
    return to_struct({**row, "built_in": row["group_id"] == SYSTEM_GROUP}, TemplateRead)


class TemplatesFeature(Feature):
    """Prompt templates, with the built-in generation prompts seeded on first start."""

    name = "templates"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.service = TemplateService(core.store)
        self.view = TemplateView(core.pool, TABLE)

    def projections(self) -> list[Any]:
        return [DocumentProjection.for_aggregate(Template, TABLE)]

    def route_handlers(self) -> list[Any]:
        return [TemplateController]

    async def start(self) -> None:
        position = await self.core.run(self.service.seed_builtins)
        if position is not None:
            log.info("seeded built-in templates")
            await self.core.projector.wait_for(position, self.core.settings.read_your_writes_timeout)

    async def template_for(self, group_id: str, name: str) -> str:
        """The text of template ``name`` as group ``group_id`` should use it.

        The group's own active template of that name wins; otherwise the
        built-in (``generate_agent``, ``generate_task``, ``generate_crew``,
        ``generate_job_name``). Raises ``NotFoundError`` when neither exists.
        Fill it with ``domain.template.render(text, values)``.
        """
        row = await self.view.effective(group_id, name, active_only=True)
        if row is None:
            raise NotFoundError(f"template '{name}' not found")
        return str(row["template"])

    async def render_template(self, group_id: str, name: str, values: dict[str, Any]) -> str:
        """``template_for`` filled with ``values`` (extra values are ignored; missing ones are 422)."""
        return render(await self.template_for(group_id, name), values)


class TemplateController(Controller):
    path = "/api/v1/templates"
    tags = ["templates"]

    @get("/", summary="List templates")
    async def list_templates(self, core: Core, limit: Limit = 20, offset: Offset = 0) -> TemplatePage:  # type: ignore[valid-type]
        """The group's templates and the built-ins it has not overridden by name, newest first."""
        page = await core.get(TemplatesFeature).view.list(group_id(), limit=limit, offset=offset)
        return TemplatePage(**{**page, "items": [_read(item) for item in page["items"]]})  # type: ignore[operator]

    @post("/", summary="Create a template")
    async def create(self, request: Request[Any, Any, Any], core: Core, data: TemplateCreate) -> Response[TemplateRead]:
        """Create a template. ``{name}`` is a placeholder and ``{{``/``}}`` are literal braces;
        ``variables`` must list exactly the placeholders (422 names the missing and unused
        ones). A name the group already uses is 409; a built-in's name overrides it."""
        templates = core.get(TemplatesFeature)
        written = await core.run(templates.service.create, sent_fields(data))
        headers = await settle(core, written)
        row = found(await templates.view.get(group_id(), written.id), "template", written.id)
        headers["Location"] = location(request, written.id)
        return Response(_read(row), status_code=201, headers=headers)

    @get("/by-name/{name:str}", summary="Get the template a name means for the group")
    async def by_name(self, core: Core, name: str) -> Response[TemplateRead]:
        """The group's template of that name, else the built-in one."""
        row = await core.get(TemplatesFeature).view.effective(group_id(), name, active_only=False)
        row = found(row, "template", name)
        return Response(_read(row), headers=etag(row))

    @get("/{template_id:uuid}", summary="Get a template")
    async def get_template(self, core: Core, template_id: UUID) -> Response[TemplateRead]:
        """One of the group's templates or a built-in; other groups' templates are 404."""
        row = found(await core.get(TemplatesFeature).view.get(group_id(), template_id), "template", template_id)
        return Response(_read(row), headers=etag(row))

    @put("/{template_id:uuid}", summary="Update a template")
    async def update(
        self, core: Core, template_id: UUID, data: TemplateUpdate, if_match: IfMatch = None
    ) -> Response[TemplateRead]:
        """Change the fields sent (new text without ``variables`` re-reads them from it).
        Updating a built-in creates the group's own version of it, which the answer returns
        (with its new id); other groups keep seeing the built-in."""
        templates = core.get(TemplatesFeature)
        written = await core.run(
            templates.service.change, template_id, sent_fields(data), expected_version(if_match)
        )
        headers = await settle(core, written)
        row = found(await templates.view.get(group_id(), written.id), "template", written.id)
        return Response(_read(row), headers=headers)

    @delete("/{template_id:uuid}", summary="Delete a template", status_code=204)
    async def remove(self, core: Core, template_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete one of the group's templates (an override: the built-in shows again).
        Built-ins cannot be deleted (403)."""
        templates = core.get(TemplatesFeature)
        written = await core.run(templates.service.delete, template_id, expected_version(if_match))
        headers = await settle(core, written)
        return Response(None, status_code=204, headers=headers)

    @post("/{template_id:uuid}/render", summary="Render a template", status_code=200, opt={"min_role": "operator"})
    async def render_one(self, core: Core, template_id: UUID, data: RenderRequest) -> RenderResult:
        """Fill the placeholders with ``variables``; missing ones are 422 and named.
        Values that are not strings are written as JSON. Nothing is stored."""
        row = found(await core.get(TemplatesFeature).view.get(group_id(), template_id), "template", template_id)
        return RenderResult(rendered=render(row["template"], data.variables))
