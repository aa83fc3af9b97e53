"""The API documentation: Swagger UI at ``/api-docs``, ReDoc at ``/api-redoc``,
the OpenAPI document at ``/api-openapi.json`` (and ``/api-docs/openapi.json``).

Litestar derives the document from handler signatures, which say what a
handler returns when all goes well. What else the server answers comes from
the layers around the handlers (the error table, the input rules, the
identity middleware, ``If-Match`` handling, streaming responses), so it is
added here, once for every operation, from facts about each operation:

- every operation may answer 422 (validation: pydantic's shape; a broken
  domain rule: ``{detail, type, errors}``); Litestar's generic 400 is never
  sent, so it is not documented;
- an operation with a path parameter may answer 404, a write 409, one that
  takes ``If-Match`` 412, one that takes a body 413;
- a handler that maps model-provider failures answers them 502;
- 204 has no body, and Server-Sent Events are ``text/event-stream``;
- numeric parameter bounds are the handler's own, exactly: Litestar writes
  them as floats (``2**63 - 1`` becomes ``2**63``) and drops a lower bound
  of 0 on an optional parameter;
- in ``token`` and ``databricks`` modes every non-public operation needs
  credentials (the security schemes say which) and may answer 401 and 403;
- what only a handler's body knows is in ``EXTRA_ANSWERS`` below;
- a create's answer links to the operations on what it created (OpenAPI
  links), so clients and fuzzers can follow an id from one call to the next.

All documentation paths serve the same document, built once per app.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.params import ParameterKwarg
from litestar.response import ServerSentEvent
from litestar.routes import HTTPRoute

from application.ports import ModelProviderError
from interface.http.errors import ErrorBody, ValidationErrors
from interface.http.middleware import PUBLIC_PATHS

REDOC_PAGE = """<!DOCTYPE html>
<html><head><title>Kasal-ES API</title><meta charset="utf-8"/></head>
<body><redoc spec-url="/api-openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
</body></html>"""

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
WRITE_METHODS = {"put", "post", "delete", "patch"}
ERROR = {"$ref": "#/components/schemas/ErrorBody"}
VALIDATION = {"$ref": "#/components/schemas/ValidationErrors"}
ERROR_RESPONSES: dict[str, tuple[str, dict[str, Any]]] = {
    "401": ("No credentials, or invalid or revoked ones", ERROR),
    "403": ("The caller's role or group does not allow this", ERROR),
    "404": ("No such resource in the caller's group (a malformed id included)", ERROR),
    "409": ("Conflicts with the resource's current state, a unique name, or a concurrent change", ERROR),
    "412": ("`If-Match` names a version that is no longer current", ERROR),
    "413": ("The body is larger than the server accepts", ERROR),
    "422": ("Invalid input: pydantic-style issues, or `{detail, type, errors}` for a broken rule",
            {"anyOf": [VALIDATION, ERROR]}),
    "502": ("The model provider failed; the request itself was fine", ERROR),
}
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerToken": {"type": "http", "scheme": "bearer",
                    "description": "A service access token (`kasal tokens create` or `POST /api/v1/tokens`)"},
    "databricksProxy": {"type": "apiKey", "in": "header", "name": "X-Forwarded-Email",
                        "description": "Set by the Databricks Apps proxy for the signed-in user"},
}
SECURITY_BY_MODE: dict[str, list[dict[str, list[str]]]] = {
    "local": [],
    "token": [{"bearerToken": []}],
    "databricks": [{"bearerToken": []}, {"databricksProxy": []}],
}
BOUNDS = (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"), ("lt", "exclusiveMaximum"))
# One event of a log stream: ``log`` lines, then one ``status``; ``data`` is JSON naming its type.
SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["log", "status"]},
        "id": {"type": "string", "description": "The line's seq (log events only)"},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "type": "object", "required": ["type"], "properties": {"type": {"enum": ["log", "status"]}},
        }},
    },
}
SSE_DESCRIPTION = ("Server-Sent Events: `event: log` per line (`id:` = seq), `: heartbeat` comments while idle, "
                   "and a final `event: status`")


# What no signature reveals: answers a handler's body chooses. A success code
# here answers the same body as the operation's documented success.
EXTRA_ANSWERS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/api/v1/crew-generation/generate"): {"201": "Saved (`save: true`): with the ids of what was created"},
    ("post", "/api/v1/executions"): {"404": "No crew with that `crew_id` in the caller's group"},
    ("post", "/api/v1/crews/debug"): {"404": "No crew with that `crew_id` in the caller's group"},
    ("delete", "/api/v1/templates/{template_id}"): {"403": "Built-in templates cannot be deleted (edit one instead)"},
}


def handlers_by_operation(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    """``(path, method)`` → the handler behind that documented operation."""
    found: dict[tuple[str, str], HTTPRouteHandler] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                for method in handler.http_methods:
                    found[(route.path_format, method.lower())] = handler
    return found


def streams(handler: HTTPRouteHandler | None) -> bool:
    return handler is not None and handler.parsed_fn_signature.return_type.is_subclass_of(ServerSentEvent)


def maps_provider_failures(handler: HTTPRouteHandler | None) -> bool:
    return handler is not None and ModelProviderError in handler.resolve_exception_handlers()


def declared_bounds(handler: HTTPRouteHandler | None) -> dict[str, dict[str, Any]]:
    """Parameter name as documented → its numeric bounds, as the handler declares them."""
    found: dict[str, dict[str, Any]] = {}
    for name, field in (handler.parsed_fn_signature.parameters.items() if handler else ()):
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            bounds = {key: getattr(kwarg, attr) for attr, key in BOUNDS if getattr(kwarg, attr) is not None}
            if bounds:
                found[kwarg.query or kwarg.header or kwarg.cookie or name] = bounds
    return found


def _bound_exactly(schema: dict[str, Any], bounds: dict[str, Any]) -> None:
    for _, key in BOUNDS:
        schema.pop(key, None)
    branches = [b for b in schema.get("oneOf", schema.get("anyOf", [])) if b.get("type") in ("integer", "number")]
    for branch in branches or [schema]:
        branch.update(bounds)


def _error_response(code: str, description: str | None = None) -> dict[str, Any]:
    standard, schema = ERROR_RESPONSES[code]
    return {"description": description or standard, "content": {"application/json": {"schema": schema}}}


def describe_operation(path: str, method: str, operation: dict[str, Any], handler: HTTPRouteHandler | None,
                       auth_mode: str) -> None:
    """Add to one operation (in place) the answers the layers around its handler give."""
    responses: dict[str, Any] = operation["responses"]
    responses.pop("400", None)  # Litestar's ValidationException shape; our error table answers 422
    parameters = operation.get("parameters", [])
    bounds = declared_bounds(handler)
    for parameter in parameters:
        if parameter["name"] in bounds:
            _bound_exactly(parameter["schema"], bounds[parameter["name"]])
    codes = {"422"}
    if any(p["in"] == "path" for p in parameters):
        codes.add("404")
    if method in WRITE_METHODS:
        codes.add("409")
    if any(p["in"] == "header" and p["name"].lower() == "if-match" for p in parameters):
        codes.add("412")
    if "requestBody" in operation:
        codes.add("413")
    if maps_provider_failures(handler):
        codes.add("502")
    public = path.startswith(PUBLIC_PATHS)
    if auth_mode != "local":
        if public:
            operation["security"] = []
        else:
            codes |= {"401", "403"}
    for code, description in EXTRA_ANSWERS.get((method, path), {}).items():
        if code in ERROR_RESPONSES:
            responses.setdefault(code, _error_response(code, description))
        else:
            success = next(r for c, r in sorted(responses.items()) if c.startswith("2"))
            responses.setdefault(code, {**success, "description": description})
    for code in codes:
        responses.setdefault(code, _error_response(code))
    if "204" in responses:
        responses["204"].pop("content", None)
    if streams(handler) and "200" in responses:
        # A stream of other messages than log lines describes them in its opt.
        opt = handler.opt if handler is not None else {}
        responses["200"]["description"] = opt.get("sse_description", SSE_DESCRIPTION)
        responses["200"]["content"] = {"text/event-stream": {"schema": opt.get("sse_schema", SSE_EVENT)}}
    operation["responses"] = dict(sorted(responses.items()))


def describe_server(document: dict[str, Any], handlers: dict[tuple[str, str], HTTPRouteHandler],
                    auth_mode: str) -> dict[str, Any]:
    """Litestar's document, completed with what the server answers beyond each handler's success."""
    components = document.setdefault("components", {})
    _, error_schemas = msgspec.json.schema_components([ErrorBody, ValidationErrors],
                                                      ref_template="#/components/schemas/{name}")
    components.setdefault("schemas", {}).update(error_schemas)
    required = SECURITY_BY_MODE[auth_mode]
    if required:
        components["securitySchemes"] = {name: SECURITY_SCHEMES[name] for option in required for name in option}
        document["security"] = required
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                describe_operation(path, method, item[method], handlers.get((path, method)), auth_mode)
    link_created_resources(document)
    return document


def link_created_resources(document: dict[str, Any]) -> None:
    """``POST /things`` answering 201 links to every ``/things/{thing_id}…`` operation, filling
    the path parameter from the created resource (its ``thing_id`` or, failing that, ``id``)."""
    paths: dict[str, Any] = document.get("paths", {})
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    for collection, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        ref = created.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        fields = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        links: dict[str, Any] = {}
        for path, target in paths.items():
            parameter = path.removeprefix(collection + "/").split("/", 1)[0]
            if not (path.startswith(collection + "/{") and parameter.endswith("}")):
                continue
            name = parameter.strip("{}")
            source = name if name in fields else "id" if name.endswith("_id") and "id" in fields else None
            for method in HTTP_METHODS:
                if source and method in target:
                    links[target[method]["operationId"]] = {
                        "operationId": target[method]["operationId"],
                        "parameters": {name: f"$response.body#/{source}"},
                    }
        if links:
            created["links"] = links


class ApiDocs:
    """The documentation routes of one app; they all serve one document, built on first use."""

    def __init__(self, auth_mode: str) -> None:
        if auth_mode not in SECURITY_BY_MODE:
            raise ValueError(f"unknown auth mode {auth_mode!r}")
        self.auth_mode = auth_mode
        self._document: dict[str, Any] | None = None

    def document(self, app: Litestar) -> dict[str, Any]:
        if self._document is None:
            generated = app.openapi_schema.to_schema()
            self._document = describe_server(generated, handlers_by_operation(app), self.auth_mode)
        return self._document

    def render_plugins(self) -> list[Any]:
        """For Litestar's ``OpenAPIConfig``: Swagger UI at its root and the JSON beside it."""
        return [SwaggerUI(self, path="/"), OpenAPIJson(self)]

    def handlers(self) -> list[Any]:
        """``/api-openapi.json`` and ``/api-redoc``, the paths Kasal clients and users know."""

        @get("/api-openapi.json", include_in_schema=False, sync_to_thread=False)
        def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
            return Response(self.document(request.app), media_type=MediaType.JSON)

        @get("/api-redoc", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
        def redoc() -> str:
            return REDOC_PAGE

        return [openapi_json, redoc]


class SwaggerUI(SwaggerRenderPlugin):
    def __init__(self, docs: ApiDocs, **options: Any) -> None:
        super().__init__(**options)
        self.docs = docs

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.docs.document(request.app))


class OpenAPIJson(JsonRenderPlugin):
    def __init__(self, docs: ApiDocs, **options: Any) -> None:
        super().__init__(**options)
        self.docs = docs

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.docs.document(request.app))
