"""``GET /health``: is the database reachable and are read models current?"""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Response, get

from interface.wiring import Kasal


@get("/health", summary="Service health", tags=["health"])
async def health(kasal: Kasal) -> Response[dict[str, Any]]:
    """200 with each check when healthy; 503 naming the failing check otherwise."""
    checks: dict[str, Any] = {}
    healthy = True
    try:
        with anyio.fail_after(2):
            async with kasal.pool.connection() as conn:
                await conn.execute("SELECT 1")
        checks["database"] = {"status": "ok"}
    except Exception as exc:  # any failure to reach the database is the answer itself
        healthy = False
        checks["database"] = {"status": "failing", "error": type(exc).__name__}
    lag: int | None
    try:
        lag = await kasal.run(kasal.projector.lag) if healthy else None
    except Exception:
        lag = None
    checks["projections"] = {
        "status": "ok" if kasal.projector.last_error is None else "failing",
        "position": kasal.projector.position,
        "lag": lag,
        "leader": kasal.projector.leader,
        "listening": kasal.projector.notifications.connected,
        **({"error": kasal.projector.last_error} if kasal.projector.last_error else {}),
    }
    status = "healthy" if healthy else "unhealthy"
    return Response({"status": status, "checks": checks}, status_code=200 if healthy else 503)
