"""Input every route refuses before it is parsed.

PostgreSQL text and JSONB cannot hold the NUL character. A NUL that got into
an event would be stored in the log (events are bytes) but could never be
projected: the projector would retry that page forever and every read model
would stop. No Kasal field has a use for NUL, so it is refused at the edge,
with the 422 a client can act on.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import ValidationException

# ``\u0000`` in JSON text, unless its backslash is itself escaped (``\\u0000`` is harmless text).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def refuse_nul_characters(request: Request[Any, Any, Any]) -> None:
    """Litestar ``before_request`` hook: 422 for NUL in the query string or a JSON body."""
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
