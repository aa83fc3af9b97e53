"""Secret inputs on their way from a request to the runner that claims the run.

An execution's events record its secret-looking inputs as ``[REDACTED]``, so a
runner in another process (a ``kasal worker``) cannot read them from the log.
They wait instead in a side store, sealed with the service's secret box and
bound to the execution and its group (associated data), so a sealed row copied
to another run fails to open. The runner that claims the run opens them once;
the event that ends the run (any terminal state, recovery's included) destroys
them, and a sweep removes the rows of runs that ended without doing so (a
process that died between the end and the delete, a request whose save failed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

import msgspec

from application.ports import SecretBox


class SecretInputsUnavailableError(Exception):
    """A run's sealed inputs are gone or do not open; the run cannot have its real values."""


class SecretInputs(Protocol):
    """Where a run's secret inputs wait for its runner."""

    def keep(self, group_id: str, execution_id: UUID, inputs: Mapping[str, Any]) -> None:
        """Hold ``inputs`` for ``execution_id`` (called before its request is saved)."""
        ...

    def open(self, group_id: str, execution_id: UUID) -> dict[str, Any]:
        """The inputs kept for the run; ``SecretInputsUnavailableError`` when they cannot be had."""
        ...

    def discard(self, execution_id: UUID) -> None:
        """Forget them (the run ended); a no-op when none are kept."""
        ...

    def sweep(self) -> int:
        """Forget those of runs that have ended or were never saved; returns how many."""
        ...


class SealedRows(Protocol):
    """The table sealed inputs live in (PostgreSQL in the service)."""

    def put(self, execution_id: UUID, group_id: str, token: str) -> None:
        """Store a row; an existing row for the run is kept (a scheduler that lost a race)."""
        ...

    def get(self, execution_id: UUID) -> tuple[str, str] | None:
        """``(group_id, token)`` of the run's row, or None."""
        ...

    def delete(self, execution_id: UUID) -> None: ...

    def sweep(self) -> int: ...


def inputs_associated_data(group_id: str, execution_id: UUID) -> bytes:
    """Binds sealed inputs to one run of one group."""
    return f"kasal-execution-inputs\x00{group_id}\x00{execution_id}".encode()


class SealedInputs:
    """``SecretInputs`` over a table, encrypted with the secret box every process shares."""

    def __init__(self, box: SecretBox, rows: SealedRows) -> None:
        self.box = box
        self.rows = rows

    def keep(self, group_id: str, execution_id: UUID, inputs: Mapping[str, Any]) -> None:
        plaintext = msgspec.json.encode(dict(inputs)).decode()
        token = self.box.encrypt(plaintext, associated_data=inputs_associated_data(group_id, execution_id))
        self.rows.put(execution_id, group_id, token)

    def open(self, group_id: str, execution_id: UUID) -> dict[str, Any]:
        row = self.rows.get(execution_id)
        if row is None or row[0] != group_id:
            raise SecretInputsUnavailableError(
                f"The secret inputs of execution {execution_id} are no longer kept; run it again")
        try:
            opened = msgspec.json.decode(
                self.box.decrypt(row[1], associated_data=inputs_associated_data(group_id, execution_id)))
        except Exception as error:  # any failure of the box: never run with "[REDACTED]" instead
            raise SecretInputsUnavailableError(
                f"The secret inputs of execution {execution_id} cannot be decrypted: this process's "
                "encryption key differs from the one of the process that took the request (every "
                "process must share KASAL_SECRET_KEY)") from error
        if not isinstance(opened, dict):
            raise SecretInputsUnavailableError(f"The secret inputs of execution {execution_id} are malformed")
        return opened

    def discard(self, execution_id: UUID) -> None:
        self.rows.delete(execution_id)

    def sweep(self) -> int:
        return self.rows.sweep()


class MemorySecretInputs:
    """An in-process stand-in, for the in-memory event store (one process holds every run)."""

    def __init__(self) -> None:
        self.kept: dict[UUID, tuple[str, dict[str, Any]]] = {}

    def keep(self, group_id: str, execution_id: UUID, inputs: Mapping[str, Any]) -> None:
        self.kept.setdefault(execution_id, (group_id, dict(inputs)))

    def open(self, group_id: str, execution_id: UUID) -> dict[str, Any]:
        found = self.kept.get(execution_id)
        if found is None or found[0] != group_id:
            raise SecretInputsUnavailableError(
                f"The secret inputs of execution {execution_id} are no longer kept; run it again")
        return dict(found[1])

    def discard(self, execution_id: UUID) -> None:
        self.kept.pop(execution_id, None)

    def sweep(self) -> int:
        return 0
