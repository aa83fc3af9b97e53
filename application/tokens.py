"""Issuing and revoking service access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from application.documents import Written
from application.store import KasalStore, retry_on_conflict
from domain.access_token import AccessToken
from domain.context import current_actor


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A recorded token and its plaintext: the only time the secret is known."""

    id: UUID
    version: int
    position: int | None
    token: str


class TokenService:
    def __init__(self, store: KasalStore) -> None:
        self.store = store

    def issue(self, role: str, name: str | None = None) -> IssuedToken:
        """A token for the caller's group (the CLI acts as the group it names)."""
        token, plaintext = AccessToken.issue(current_actor().group_id, role, name)
        position = self.store.record(token)
        return IssuedToken(token.id, token.version, position, plaintext)

    def revoke(self, token_id: UUID) -> Written:
        """Revoke a token of the caller's group; a second revocation finds nothing (404)."""

        def attempt() -> Written:
            token = self.store.load(AccessToken, token_id, kind="token")
            token.revoke()
            position = self.store.record(token)
            return Written(token.id, token.version, position)

        return retry_on_conflict(attempt)
