"""Service access tokens: a bearer secret that acts as one role in one group.

The secret itself is never recorded. ``AccessToken.issue`` draws it once,
returns it to the caller to show once, and records only its SHA-256 hash (a
256-bit random secret needs no slow, salted hash: there is nothing to guess)
and a short hint so people can tell their tokens apart in a list.
"""

from __future__ import annotations

import hashlib
import secrets

from domain.base import KasalAggregate, event, stable_topics
from domain.errors import InvalidError, NotFoundError

ROLES = ("auditor", "operator", "editor", "admin")
"""Lowest first: each role may do what the ones before it may. An auditor reads only the
audit log, versions and usage; an operator also reads everything and runs crews."""
TOKEN_PREFIX = "kasal_"
HINT_LENGTH = len(TOKEN_PREFIX) + 4
MAX_NAME_LENGTH = 200


def hash_token(plaintext: str) -> str:
    """The stored form of a token: hex SHA-256 of its text."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@stable_topics("access_token")
class AccessToken(KasalAggregate):
    """A group's credential for scripts and services; revoked, it never works again."""

    KIND = "token"

    class Created(KasalAggregate.Created):
        name: str
        role: str
        token_hash: str
        hint: str

    def __init__(self, group_id: str, name: str, role: str, token_hash: str, hint: str) -> None:
        self.group_id = group_id
        self.name = name
        self.role = role
        self.token_hash = token_hash
        self.hint = hint
        self.revoked = False

    @classmethod
    def issue(cls, group_id: str, role: str, name: str | None = None) -> tuple[AccessToken, str]:
        """A new token and its plaintext, which exists only in this return value."""
        if role not in ROLES:
            raise InvalidError(
                f"Unknown role '{role}'", errors=[("role", f"must be one of {', '.join(ROLES)}")]
            )
        label = (name or "").strip() or f"{role} token"
        if len(label) > MAX_NAME_LENGTH:
            raise InvalidError("Token name is too long", errors=[("name", f"at most {MAX_NAME_LENGTH} characters")])
        plaintext = new_secret()
        token = cls._create(
            cls.Created, group_id=group_id, name=label, role=role,
            token_hash=hash_token(plaintext), hint=plaintext[:HINT_LENGTH],
        )
        return token, plaintext

    def revoke(self) -> None:
        if self.revoked:
            raise NotFoundError(f"token {self.id} not found")
        self._revoke()

    @event("Revoked")
    def _revoke(self) -> None:
        self.revoked = True
