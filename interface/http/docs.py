"""The Kasal documentation paths: ``/api-redoc`` and ``/api-openapi.json``.

Swagger UI is served by Litestar's OpenAPI config at ``/api-docs``; these two
routes give the other paths Kasal clients and users know.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get

REDOC_PAGE = """<!DOCTYPE html>
<html><head><title>Kasal-ES API</title><meta charset="utf-8"/></head>
<body><redoc spec-url="/api-openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
</body></html>"""


@get("/api-openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response(request.app.openapi_schema.to_schema(), media_type=MediaType.JSON)


@get("/api-redoc", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def redoc() -> str:
    return REDOC_PAGE


def docs_handlers() -> list[Any]:
    return [openapi_json, redoc]
