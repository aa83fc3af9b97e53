"""How many unfinished executions a group holds, when it may hold only a few.

Kasal's single-job rule (``KASAL_REJECT_WHEN_BUSY``) refuses a new run while
the group already has ``limit`` unfinished ones. Counting rows of a read
model before writing would let two concurrent requests both see room; instead
each group has one quota aggregate with a deterministic id. A request takes a
place in the same atomic save as the execution's ``Requested`` event, and the
run gives it back in the same save as its terminal event, so the store's
version check makes the second of two racing writers fail and re-read.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import KasalAggregate, event, stable_topics
from domain.errors import ConflictError


class QuotaFullError(ConflictError):
    """Every place is held; ``holders`` are the executions holding them, oldest first."""

    def __init__(self, holders: list[UUID]) -> None:
        super().__init__("Cannot start new job: the group's executions are at their limit")
        self.holders = holders


@stable_topics("execution_quota")
class ExecutionQuota(KasalAggregate):
    """The unfinished executions of one group that hold a place."""

    class Created(KasalAggregate.Created):
        pass

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.holders: list[str] = []

    @staticmethod
    def id_for(group_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"kasal:execution-quota:{group_id}")

    @classmethod
    def open(cls, group_id: str) -> ExecutionQuota:
        return cls._create(cls.Created, id=cls.id_for(group_id), group_id=group_id)

    def holds(self, execution_id: UUID) -> bool:
        return str(execution_id) in self.holders

    def take(self, execution_id: UUID, limit: int) -> None:
        """Give ``execution_id`` a place, or raise ``QuotaFullError`` when ``limit`` are held."""
        if self.holds(execution_id):
            return
        if len(self.holders) >= limit:
            raise QuotaFullError([UUID(holder) for holder in self.holders])
        self._take(execution_id=str(execution_id))

    def release(self, execution_id: UUID) -> None:
        if self.holds(execution_id):
            self._release(execution_id=str(execution_id))

    @event("Taken")
    def _take(self, execution_id: str) -> None:
        self.holders = [*self.holders, execution_id]

    @event("Released")
    def _release(self, execution_id: str) -> None:
        self.holders = [holder for holder in self.holders if holder != execution_id]
