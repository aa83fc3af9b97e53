"""``GET /health``: is the database reachable and are read models current? (``interface/health.py``)"""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from interface.wiring import Kasal


@get("/health", summary="Service health", tags=["health"])
async def health(kasal: Kasal, deep: bool = False) -> Response[dict[str, Any]]:
    """200 with each check when healthy; 503 naming the failing check otherwise. The checks run
    in the background every second (``checked_s_ago`` says how long ago); ``?deep=true`` runs
    them for this request."""
    body, healthy = await kasal.health.check() if deep else kasal.health.answer()
    return Response(body, status_code=200 if healthy else 503)
