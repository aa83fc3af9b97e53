"""Who is calling: turns request headers into an ``Actor``.

Three modes, chosen by ``KASAL_AUTH_MODE``:

- ``local`` (default of ``make run``, loopback only): no credentials; every
  request is a local admin, of group ``local`` unless ``X-Group-Id`` says
  otherwise (one trusted developer, so the header is trusted too).
- ``token``: ``Authorization: Bearer <token>`` is required; the token's group
  and role are the caller's. ``X-Group-Id`` cannot widen that.
- ``databricks``: the Databricks Apps proxy authenticates users and forwards
  ``X-Forwarded-Email``; the caller is admin of their personal group
  ``user_<email>``. A shared workspace group is reached with a service token
  of that group (Bearer tokens are honoured in this mode too); naming any
  other group in ``X-Group-Id`` / ``group_id`` without one is refused (403),
  because nothing records who belongs to which workspace.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from domain.access_token import ROLES, hash_token
from domain.context import Actor
from domain.errors import ForbiddenError, UnauthorizedError
from interface.settings import Settings

__all__ = [
    "ROLES", "LOCAL_GROUP", "Authenticator", "LocalAuthenticator", "TokenAuthenticator",
    "DatabricksAuthenticator", "CachingTokenLookup", "TokenIdentity", "authenticator_for", "personal_group",
    "role_at_least",
]

LOCAL_GROUP = "local"
TOKEN_CACHE_SECONDS = 5.0
MAX_TOKEN_LENGTH = 512


class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str], correlation_id: str) -> Actor:
        """The actor behind the request, or raise ``UnauthorizedError``."""
        ...


class TokenIdentity(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def group_id(self) -> str: ...

    @property
    def role(self) -> str: ...


TokenLookup = Callable[[str], Awaitable[TokenIdentity | None]]


def _requested_group(headers: Mapping[str, str]) -> str | None:
    return headers.get("x-group-id") or headers.get("group_id") or None


class LocalAuthenticator:
    """Loopback development mode: no credentials needed, one local group."""

    async def authenticate(self, headers: Mapping[str, str], correlation_id: str) -> Actor:
        group = _requested_group(headers) or LOCAL_GROUP
        return Actor(group_id=group, actor="local-admin", role="admin", correlation_id=correlation_id)


class CachingTokenLookup:
    """Remembers tokens found by hash for ``ttl`` seconds, so a busy client costs
    one database probe per ``ttl`` rather than one per request.

    Revocation therefore takes effect at once in the process that revoked the
    token (``revoked``) and within ``ttl`` seconds everywhere else. Misses are
    not cached: a token works the moment its creation is answered.

    The read model may not show a revocation yet when it is answered, so this
    process refuses a revoked token by its id until the projector (``projected``,
    the log position the read models hold) has passed the revocation.
    """

    def __init__(
        self, lookup: TokenLookup, *, projected: Callable[[], int], ttl: float = TOKEN_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000,
    ) -> None:
        self.lookup = lookup
        self.projected = projected
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._hits: dict[str, tuple[float, TokenIdentity]] = {}
        self._revoked: dict[str, int] = {}  # token id -> log position of its revocation
        self._reading = 0

    async def __call__(self, token_hash: str) -> TokenIdentity | None:
        now = self.clock()
        cached = self._hits.get(token_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        if not self._reading:
            self._drop_projected_revocations()
        self._reading += 1
        try:
            found = await self.lookup(token_hash)
        finally:
            self._reading -= 1
        if found is None or found.id in self._revoked:
            self._hits.pop(token_hash, None)
            return None
        if len(self._hits) >= self.max_entries:  # only live tokens get here, so pruning suffices
            self._hits = {h: e for h, e in self._hits.items() if e[0] > now}
        self._hits[token_hash] = (now + self.ttl, found)
        return found

    def revoked(self, token_id: str, position: int | None) -> None:
        """Refuse ``token_id`` from now on; ``position`` is where its revocation landed in the log."""
        self._hits = {h: e for h, e in self._hits.items() if e[1].id != token_id}
        if position is not None:
            self._revoked[token_id] = position

    def _drop_projected_revocations(self) -> None:
        """Forget the revocations the read model shows now. Only while no read is in flight:
        one that started earlier may hold the row as it was before the revocation was projected."""
        projected = self.projected()
        self._revoked = {token_id: at for token_id, at in self._revoked.items() if at > projected}


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if one was sent."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class TokenAuthenticator:
    """Service access tokens: the token alone decides group and role."""

    def __init__(self, lookup: TokenLookup) -> None:
        self.lookup = lookup

    async def authenticate(self, headers: Mapping[str, str], correlation_id: str) -> Actor:
        token = bearer_token(headers)
        if token is None:
            raise UnauthorizedError("Authentication required: send Authorization: Bearer <token>")
        return await self.actor_for(token, correlation_id)

    async def actor_for(self, token: str, correlation_id: str) -> Actor:
        found = await self.lookup(hash_token(token)) if len(token) <= MAX_TOKEN_LENGTH else None
        if found is None:
            raise UnauthorizedError("Invalid or revoked token")
        return Actor(
            group_id=found.group_id, actor=f"token:{found.id}", role=found.role, correlation_id=correlation_id
        )


def personal_group(email: str) -> str:
    """Kasal's personal group id: ``user_`` + the email with ``@ . - +`` as ``_``, lower-cased."""
    return "user_" + re.sub(r"[@.\-+]", "_", email.strip()).lower()


class DatabricksAuthenticator:
    """Databricks Apps: the platform's proxy vouches for ``X-Forwarded-Email``."""

    def __init__(self, tokens: TokenAuthenticator | None = None) -> None:
        self.tokens = tokens

    async def authenticate(self, headers: Mapping[str, str], correlation_id: str) -> Actor:
        token = bearer_token(headers)
        if token is not None and self.tokens is not None:
            return await self.tokens.actor_for(token, correlation_id)
        email = headers.get("x-forwarded-email", "").strip()
        if not email:
            raise UnauthorizedError("Authentication required: no X-Forwarded-Email from the Databricks proxy")
        group = personal_group(email)
        wanted = _requested_group(headers)
        if wanted is not None and wanted.lower() != group:
            raise ForbiddenError(
                f"You may only use your personal workspace {group}; use a service token of {wanted} for it"
            )
        return Actor(group_id=group, actor=email, role="admin", correlation_id=correlation_id)


def role_at_least(role: str, minimum: str) -> bool:
    return ROLES.index(role) >= ROLES.index(minimum) if role in ROLES else False


def authenticator_for(settings: Settings, tokens: TokenLookup) -> Authenticator:
    """The authenticator ``settings.auth_mode`` names: local (default), token, or databricks."""
    if settings.auth_mode == "local":
        return LocalAuthenticator()
    if settings.auth_mode == "token":
        return TokenAuthenticator(tokens)
    if settings.auth_mode == "databricks":
        return DatabricksAuthenticator(TokenAuthenticator(tokens))
    raise ValueError(f"unknown auth mode {settings.auth_mode!r}; use local, token or databricks")
