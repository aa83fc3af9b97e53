"""Who is calling: turns request headers into an ``Actor`` (DESIGN §6).

The local authenticator is the default of ``make run``: every request acts as
a local admin of group ``local``. Other modes (service tokens, Databricks
forwarded headers) plug in as further ``Authenticator`` implementations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from domain.context import Actor

ROLES = ("operator", "editor", "admin")
LOCAL_GROUP = "local"


class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str], correlation_id: str) -> Actor:
        """The actor behind the request, or raise ``UnauthorizedError``."""
        ...


class LocalAuthenticator:
    """Loopback development mode: no credentials needed, one local group."""

    async def authenticate(self, headers: Mapping[str, str], correlation_id: str) -> Actor:
        group = headers.get("x-group-id") or headers.get("group_id") or LOCAL_GROUP
        return Actor(group_id=group, actor="local-admin", role="admin", correlation_id=correlation_id)


def role_at_least(role: str, minimum: str) -> bool:
    return ROLES.index(role) >= ROLES.index(minimum) if role in ROLES else False
