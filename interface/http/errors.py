"""One error table: exception type → status → body, registered once as Litestar handlers.

Validation problems answer 422 in the pydantic shape existing Kasal clients
parse; domain errors answer ``{detail, type, errors}``; anything unexpected is
logged with its traceback and answered 500 without internals.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_500_INTERNAL_SERVER_ERROR

from application.ports import ModelProviderError
from domain import errors as domain
from domain.run_options import RefusedFieldsError
from interface.http.input_rules import too_deep

log = logging.getLogger("kasal.http")

STATUS_OF: dict[type[domain.DomainError], int] = {
    domain.NotFoundError: 404,
    domain.ConflictError: 409,
    domain.InvalidError: 422,
    domain.BadRequestError: 400,
    domain.ForbiddenError: 403,
    domain.UnauthorizedError: 401,
    domain.PreconditionFailedError: 412,
    ModelProviderError: 502,
}


class FieldError(msgspec.Struct, kw_only=True):
    field: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True):
    """A domain or HTTP error: what went wrong, a stable ``type``, and the fields involved."""

    detail: str
    type: str
    errors: list[FieldError]


class ValidationIssue(msgspec.Struct, kw_only=True):
    """One problem with the request, as pydantic (and so FastAPI and Kasal) reports it."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class ValidationErrors(msgspec.Struct, kw_only=True):
    detail: list[ValidationIssue]


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r"at `\$(.*)`")


def _json(body: msgspec.Struct | dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)


def _loc(source: str, key: str | None) -> list[Any]:
    parts: list[Any] = [source]
    if key:
        for piece in re.split(r"\.|\[(\d+)\]", key):
            if piece:
                parts.append(int(piece) if piece.isdigit() else piece)
    return parts


_SECRET_KEY = re.compile(r"key|value|token|secret|password", re.IGNORECASE)


def _redacted(value: Any) -> Any:
    """Echo input back without anything that looks like a credential."""
    if isinstance(value, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) and isinstance(v, str) else _redacted(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _lookup(body: Any, loc: list[Any]) -> Any:
    if loc and loc[-1] is not None and isinstance(loc[-1], str) and _SECRET_KEY.search(loc[-1]):
        return "***"
    value = _redacted(body)
    for part in loc[1:]:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def pydantic_detail(messages: list[dict[str, Any]], body: Any) -> list[ValidationIssue]:
    """Reshape Litestar/msgspec validation messages into pydantic's error list."""
    detail = []
    for item in messages:
        message = str(item.get("message", "Invalid value"))
        source = item.get("source") or "body"
        source = str(getattr(source, "value", source))  # Litestar names parameter sources with an enum
        key = item.get("key")
        if key is not None and message == repr(key):
            # Litestar reports a parameter it got no value for (an empty body: ``data``)
            # with the text of the KeyError it caught.
            loc = _loc(source, None if key == "data" else key)
            detail.append(ValidationIssue(type="missing", loc=loc, msg="Field required", input=None))
            continue
        if key == "data":  # Litestar's name for the whole body
            key = None
        missing = _MISSING_FIELD.search(message)
        if missing:
            field = missing.group(1)
            loc = _loc(source, ".".join(filter(None, [key if key and key != field else None, field])))
            given = _lookup(body, loc[:-1]) if len(loc) > 1 else _redacted(body)
            detail.append(ValidationIssue(type="missing", loc=loc, msg="Field required", input=given))
            continue
        loc = _loc(source, key)
        kind = "json_invalid" if "JSON" in message or "malformed" in message.lower() else "value_error"
        if message.startswith("Expected"):
            kind = "type_error"
        given = _lookup(body, loc) if source == "body" else None
        detail.append(ValidationIssue(type=kind, loc=loc, msg=message, input=given))
    return detail or [ValidationIssue(type="value_error", loc=["body"], msg="Invalid request")]


def _body_of(request: Request[Any, Any, Any]) -> Any:
    """The already-read JSON body, for the ``input`` of each error (None if unread or not JSON)."""
    from litestar.utils.empty import value_or_default

    raw = value_or_default(request._connection_state.body, b"")
    if not raw or too_deep(raw):  # echoing it back would recurse as deep as it nests
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    messages = exc.extra if isinstance(exc.extra, list) else []
    if not messages:
        messages = [{"message": exc.detail, "source": "body"}]
    body = _body_of(request)
    return _json(ValidationErrors(detail=pydantic_detail(messages, body)), HTTP_422_UNPROCESSABLE_ENTITY)


def domain_handler(request: Request[Any, Any, Any], exc: domain.DomainError) -> Response[Any]:
    status = next((code for cls, code in STATUS_OF.items() if isinstance(exc, cls)), 400)
    errors = [FieldError(field=f, message=m) for f, m in exc.errors]
    return _json(ErrorBody(detail=exc.detail, type=exc.type, errors=errors), status)


def refused_handler(request: Request[Any, Any, Any], exc: RefusedFieldsError) -> Response[Any]:
    """Fields a run could not honour: pydantic's shape, each refused field in ``loc``, the reason in ``msg``."""
    body = _body_of(request)
    issues = []
    for path, reason in exc.refusals:
        loc: list[str | int] = ["body", *path]
        issues.append(ValidationIssue(type="value_error", loc=loc, msg=f"{'.'.join(path)} {reason}",
                                      input=_lookup(body, loc)))
    return _json(ValidationErrors(detail=issues), HTTP_422_UNPROCESSABLE_ENTITY)


def msgspec_handler(request: Request[Any, Any, Any], exc: msgspec.ValidationError) -> Response[Any]:
    message = str(exc)
    path = _AT_PATH.search(message)
    item = {"message": message.split(" - ")[0], "key": (path.group(1).lstrip(".") if path else None), "source": "body"}
    return _json(ValidationErrors(detail=pydantic_detail([item], None)), HTTP_422_UNPROCESSABLE_ENTITY)


def http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 400 and isinstance(exc.__cause__, SerializationException):
        # A body that is not JSON at all: FastAPI (and so Kasal) answers 422 json_invalid.
        issue = ValidationIssue(type="json_invalid", loc=["body"], msg=f"JSON decode error: {exc.detail}")
        return _json(ValidationErrors(detail=[issue]), HTTP_422_UNPROCESSABLE_ENTITY)
    if exc.status_code >= 500:
        log.error("HTTP %s on %s %s: %s", exc.status_code, request.method, request.url.path, exc.detail)
        return _json({"detail": "Internal server error"}, exc.status_code)
    kind = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
            413: "request_too_large"}.get(exc.status_code, "http_error")
    return _json(ErrorBody(detail=exc.detail, type=kind, errors=[]), exc.status_code, exc.headers)


def internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json({"detail": "Internal server error"}, HTTP_500_INTERNAL_SERVER_ERROR)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: validation_handler,
    RefusedFieldsError: refused_handler,
    domain.DomainError: domain_handler,
    msgspec.ValidationError: msgspec_handler,
    HTTPException: http_handler,
    Exception: internal_handler,
}
