"""Schedules: run a crew at the times a cron expression names, in a time zone.

A schedule is a document (its definition changes field by field) that also
remembers which scheduled time ("slot") it last fired for. Firing is an
event on the schedule, ``Fired(slot, execution_id)``, allowed only for a
slot later than the last one; it is saved in the same transaction as the
execution it starts, so of several schedulers racing for one slot exactly
one appends at the expected version and the others are refused. Cron
arithmetic (which slot, when next) is the application's: the domain only
checks the rules and records the results.

Inputs whose names look secret (``domain.redaction.SECRET_NAME``) are never
stored in plaintext: ``inputs`` holds them as ``[REDACTED]`` and
``encrypted_inputs`` holds a ciphertext of the whole inputs, which only the
application can open (it owns the key). Like the API-key aggregate, the
schedule refuses plaintext secrets outright, so a code path that forgets to
seal them fails at once instead of leaking.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.base import Document, KasalAggregate, stable_topics
from domain.errors import ConflictError, InvalidError
from domain.redaction import check_nesting, redact

SCHEDULER_ACTOR = "system:scheduler"
SEALED_INPUTS = "encrypted_inputs"
"""Field holding the ciphertext of a schedule's inputs (secrets included); read models drop it."""

# Set by the service and by firing, never by clients; kept across a PUT.
STATE_DEFAULTS: dict[str, Any] = {
    "next_run_at": None,
    "last_run_at": None,
    "last_slot": None,
    "last_execution_id": None,
    "last_run_was_catch_up": False,
    "last_error": None,
}
STATE_FIELDS = tuple(STATE_DEFAULTS)
DEFINITION_DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "enabled": True,
    "inputs": {},
    SEALED_INPUTS: None,
    "crew_id": None,
    "agents_yaml": None,
    "tasks_yaml": None,
    "model": None,
}


def _after(slot: str, last: str | None) -> bool:
    return last is None or datetime.fromisoformat(slot) > datetime.fromisoformat(last)


@stable_topics("schedule")
class Schedule(Document):
    KIND = "schedule"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        merged = {**DEFINITION_DEFAULTS, **STATE_DEFAULTS, **fields}
        if merged["inputs"] is None:
            merged["inputs"] = {}
        if merged["timezone"] is None:
            merged["timezone"] = "UTC"
        problems: list[tuple[str, str]] = []
        if not str(merged.get("name") or "").strip():
            problems.append(("name", "Field required"))
        if not str(merged.get("cron_expression") or "").strip():
            problems.append(("cron_expression", "Field required"))
        inline = merged["agents_yaml"] is not None or merged["tasks_yaml"] is not None
        if inline and (merged["agents_yaml"] is None or merged["tasks_yaml"] is None):
            problems.append(("tasks_yaml" if merged["tasks_yaml"] is None else "agents_yaml",
                             "agents_yaml and tasks_yaml go together"))
        if not inline and not merged["crew_id"]:
            problems.append(("crew_id", "crew_id, or agents_yaml and tasks_yaml, is required"))
        if problems:
            raise InvalidError("Schedule is invalid: " + ", ".join(f"{f}: {m}" for f, m in problems),
                               errors=problems)
        if not isinstance(merged["enabled"], bool):
            raise InvalidError("enabled must be true or false", errors=[("enabled", "must be a boolean")])
        if not isinstance(merged["inputs"], dict):
            raise InvalidError("inputs must be an object", errors=[("inputs", "must be an object")])
        check_nesting(merged["inputs"])
        if redact(merged["inputs"])[0] != merged["inputs"]:
            # A programming error, not a user error: the application seals secrets first.
            raise ValueError("schedule inputs would store a plaintext secret")
        return merged

    def replace(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A PUT of the whole definition keeps what firing recorded (last run, next run)."""
        kept = {key: self.fields.get(key, default) for key, default in STATE_DEFAULTS.items()}
        return super().replace({**kept, **fields})

    # -- reading ------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.fields.get("enabled", True))

    @property
    def next_run_at(self) -> str | None:
        return self.fields.get("next_run_at")

    @property
    def last_slot(self) -> str | None:
        return self.fields.get("last_slot")

    # -- firing ---------------------------------------------------------------

    def fire(self, *, slot: str, execution_id: str, fired_at: str, catch_up: bool, next_run_at: str | None) -> None:
        """Record that ``slot`` started ``execution_id``; a slot fires at most once."""
        self._check_can_fire(slot)
        self.trigger_event(
            type(self).Fired, slot=slot, execution_id=execution_id, catch_up=catch_up,
            changes={
                "last_slot": slot, "last_run_at": fired_at, "last_execution_id": execution_id,
                "last_run_was_catch_up": catch_up, "last_error": None, "next_run_at": next_run_at,
            },
        )

    def skip(self, *, slot: str, reason: str, next_run_at: str | None) -> None:
        """Record that ``slot`` could not start a run (e.g. its crew is gone), so it is not retried."""
        self._check_can_fire(slot)
        self.trigger_event(
            type(self).Skipped, slot=slot, reason=reason[:1000],
            changes={"last_slot": slot, "last_error": reason[:1000], "next_run_at": next_run_at},
        )

    def _check_can_fire(self, slot: str) -> None:
        self.check_alive()
        if not self.enabled:
            raise ConflictError(f"schedule {self.id} is disabled")
        if not _after(slot, self.last_slot):
            raise ConflictError(f"schedule {self.id} already fired for {self.last_slot}")

    class Fired(KasalAggregate.Event):
        """A slot started an execution; ``changes`` is merged into the read model."""

        slot: str
        execution_id: str
        catch_up: bool
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields = {**aggregate.fields, **self.changes}

    class Skipped(KasalAggregate.Event):
        """A slot passed without a run, and why; ``changes`` is merged into the read model."""

        slot: str
        reason: str
        changes: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fields = {**aggregate.fields, **self.changes}
