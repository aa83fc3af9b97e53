"""Input every route refuses before it is parsed.

PostgreSQL text and JSONB cannot hold the NUL character. A NUL that got into
an event would be stored in the log (events are bytes) but could never be
projected: the projector would retry that page forever and every read model
would stop. No Kasal field has a use for NUL, so it is refused at the edge,
with the 422 a client can act on.

JSON nested deeper than ``MAX_JSON_DEPTH`` is refused before anything decodes
it: decoders, redaction of echoed input and the domain's walks over
free-form documents (tool configs, execution inputs) all recurse, and a few
thousand brackets would exhaust the interpreter's stack in one of them. The
deepest legitimate body (a crew with nodes, tool configs and inputs) is
under ten levels, so the limit leaves room for any real document.
"""

from __future__ import annotations

import logging
import re
from itertools import accumulate
from typing import Any

from litestar import Request
from litestar.exceptions import ValidationException

MAX_JSON_DEPTH = 64

log = logging.getLogger("kasal.http")

# ``\u0000`` in JSON text, unless its backslash is itself escaped (``\\u0000`` is harmless text).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count).

    Scans instead of decoding, in C-level loops, so a 2 MB body of brackets
    costs milliseconds and no stack.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def too_deep(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:  # the common case needs no scan
        return False
    return json_depth(body) > MAX_JSON_DEPTH


async def refuse_unsafe_input(request: Request[Any, Any, Any]) -> None:
    """Litestar ``before_request`` hook: 422 for NUL in the query string or a JSON body,
    and for a body nested deeper than ``MAX_JSON_DEPTH``."""
    if b"%00" in request.scope.get("query_string", b""):
        raise ValidationException(
            "NUL characters are not allowed",
            extra=[{"message": "NUL characters are not allowed", "source": "query"}],
        )
    if request.method in _BODY_METHODS:
        body = await request.body()
        if b"\\u0000" in body and _JSON_NUL.search(body):
            raise ValidationException(
                "NUL characters are not allowed",
                extra=[{"message": "NUL characters (\\u0000) are not allowed in text", "source": "body"}],
            )
        if too_deep(body):
            message = f"Nesting deeper than {MAX_JSON_DEPTH} levels of arrays and objects is not allowed"
            # Only a fuzzer or an attack sends this: one line says who, without the body.
            log.info("refused %s %s from %s: %s", request.method, request.url.path,
                     request.client.host if request.client else "?", message)
            raise ValidationException(message, extra=[{"message": message, "source": "body"}])
