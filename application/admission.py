"""Kasal's single-job rule, enforced by the event store.

With ``KASAL_REJECT_WHEN_BUSY`` a group may hold at most ``limit`` unfinished
executions; one more is refused with Kasal's 409 instead of queueing. The
places are an ``ExecutionQuota`` aggregate per group: ``admit`` returns it
with the new execution's place taken, to be saved in the same
``store.record`` as the execution's ``Requested`` event, and ``release``
returns it with the place given back, to be saved with the terminal event.
Two concurrent requests for the last place both write the quota at the same
version, so the store lets one win and the other re-reads a full quota.
"""

from __future__ import annotations

from uuid import UUID

from application.store import KasalStore
from domain.errors import ConflictError
from domain.execution import Execution, ExecutionStatus
from domain.execution_quota import ExecutionQuota, QuotaFullError

# Which holder the refusal names: the one a user most likely sees as "the running job".
_NAMED_FIRST = (ExecutionStatus.RUNNING, ExecutionStatus.PREPARING, ExecutionStatus.PENDING)


class Admission:
    """Takes and gives back places in a group's quota; ``limit=None`` admits everything."""

    def __init__(self, store: KasalStore, limit: int | None) -> None:
        self.store = store
        self.limit = limit

    def admit(self, group_id: str, execution_id: UUID) -> list[ExecutionQuota]:
        """The quota to save with the execution's request, or a ``ConflictError`` in Kasal's words."""
        if self.limit is None:
            return []
        quota = self._quota(group_id) or ExecutionQuota.open(group_id)
        try:
            quota.take(execution_id, self.limit)
        except QuotaFullError as full:
            # A place held by a run that has ended (its end was recorded by a path that did not
            # give the place back) is given back now, so a group can never stay blocked for good.
            ended = [holder for holder in full.holders if self._unfinished(holder) is None]
            if not ended:
                raise self._busy(full.holders) from None
            for holder in ended:
                quota.release(holder)
            quota.take(execution_id, self.limit)
        return [quota]

    def release(self, execution: Execution) -> list[ExecutionQuota]:
        """The quota to save with ``execution``'s terminal event, if it holds a place.

        Looked up whatever the current setting, so a place taken before the
        rule was switched off is still given back.
        """
        quota = self._quota(execution.group_id)
        if quota is None or not quota.holds(execution.id):
            return []
        quota.release(execution.id)
        return [quota]

    def _quota(self, group_id: str) -> ExecutionQuota | None:
        found = self.store.find(ExecutionQuota.id_for(group_id))
        return found if isinstance(found, ExecutionQuota) else None

    def _unfinished(self, execution_id: UUID) -> Execution | None:
        found = self.store.find(execution_id)
        return found if isinstance(found, Execution) and not found.finished else None

    def _busy(self, holders: list[UUID]) -> ConflictError:
        # Every holder is unfinished (``admit`` gave back the places of ended ones) and the group's own.
        held = [execution for holder in holders if (execution := self._unfinished(holder)) is not None]
        current = min(held, key=lambda e: _NAMED_FIRST.index(e.status))
        return ConflictError(
            f"Cannot start new job. Another job is currently running: '{current.run_name}' "
            f"(Status: {current.status.value})."
        )
