"""Domain errors: each maps to one HTTP status in the interface's error table."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain was broken by the request."""

    type = "domain_error"

    def __init__(self, detail: str, *, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFoundError(DomainError):
    type = "not_found"


class ConflictError(DomainError):
    type = "conflict"


class InvalidError(DomainError):
    """Well-formed input that breaks a rule (answered 422)."""

    type = "validation_error"


class BadRequestError(DomainError):
    type = "bad_request"


class ForbiddenError(DomainError):
    type = "forbidden"


class UnauthorizedError(DomainError):
    type = "unauthorized"


class PreconditionFailedError(DomainError):
    type = "precondition_failed"
