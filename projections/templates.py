"""Read model of prompt templates: each group's own, with the built-ins it has not overridden.

Built-ins belong to group ``system``; a group's template of the same name
(case ignored) hides the built-in from that group only. ``template_for`` is
the ``TemplateSource`` port the generation use case reads prompts through.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from domain.errors import NotFoundError
from domain.template import SYSTEM_GROUP, render
from projections.documents import DocumentView, Page

TABLE = "rm_templates"

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

    def visible(self, row: dict[str, Any], group_id: str) -> bool:
        return row["group_id"] in (group_id, SYSTEM_GROUP)

    async def list(self, group_id: str, *, limit: int, offset: int) -> Page:
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

    async def template_for(self, group_id: str, name: str) -> str:
        """The text of template ``name`` as group ``group_id`` should use it.

        The group's own active template of that name wins; otherwise the
        built-in (``generate_agent``, ``generate_task``, ``generate_crew``,
        ``generate_job_name``). Raises ``NotFoundError`` when neither exists.
        Fill it with ``domain.template.render(text, values)``.
        """
        row = await self.effective(group_id, name, active_only=True)
        if row is None:
            raise NotFoundError(f"template '{name}' not found")
        return str(row["template"])

    async def render_template(self, group_id: str, name: str, values: dict[str, Any]) -> str:
        """``template_for`` filled with ``values`` (extra values are ignored; missing ones are 422)."""
        return render(await self.template_for(group_id, name), values)
