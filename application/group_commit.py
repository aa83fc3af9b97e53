"""Group commit: concurrent saves of one process share one transaction, one table lock and one fsync.

Every append takes an exclusive lock on the events table and waits for the
commit to reach the disk, so single-event saves queue behind each other at a
few hundred a second. Here the first caller becomes the *leader*: it takes
every append waiting at that moment (its own first), inserts them with one
statement in one transaction, and hands each caller its own notification ids.
Callers that arrive meanwhile wait; when the batch is done, the first of them
leads the next batch, so no thread carries other callers' work for more than
the one batch its own append was part of.

A version conflict in a batch fails the whole transaction, so the batch is
then appended again caller by caller: the caller whose aggregate conflicts
gets its ``IntegrityError`` (and retries as it would have), the others are
recorded. Any other failure reaches every caller of the batch, as it would
have reached each of them alone; nothing is acknowledged that did not commit.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

MAX_BATCH_EVENTS = 500
"""A batch stops growing here (a caller with more events is a batch on its own),
so one batch holds the table lock for a bounded time."""


@dataclass(eq=False)
class _Append:
    """One caller's events, and what became of them."""

    events: Sequence[StoredEvent]
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    done: bool = False
    ids: Sequence[int] | None = None
    error: BaseException | None = None

    def outcome(self) -> Sequence[int] | None:
        if self.error is not None:
            raise self.error
        return self.ids


class GroupCommitRecorder(PostgresApplicationRecorder):
    """The locked application recorder, with concurrent ``insert_events`` calls batched."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mutex = threading.Lock()
        self._queue: list[_Append] = []
        self._leading = False
        self.batches = 0
        """Transactions committed by leaders (a batch appended again caller by caller counts once)."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # The application passes ``tracking=None``; a real tracking record is a process
        # application's, which this service is not, and goes through unbatched.
        if any(value is not None for value in kwargs.values()) or not stored_events \
                or self.datastore.enable_db_functions:
            alone: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return alone
        mine = _Append(stored_events)
        with self._mutex:
            self._queue.append(mine)
            if not self._leading:  # the queue was empty: nobody leads, so this caller does
                self._leading = mine.lead = True
        while not mine.lead:
            mine.woken.wait()
            mine.woken.clear()
            if mine.done:
                return mine.outcome()
        self._lead(mine)
        return mine.outcome()

    def _lead(self, mine: _Append) -> None:
        """Append one batch (``mine`` first), answer its callers, and pass the lead on."""
        batch: list[_Append] = []
        try:
            with self._mutex:
                size = 0
                while self._queue and (not batch or size + len(self._queue[0].events) <= MAX_BATCH_EVENTS):
                    size += len(self._queue[0].events)
                    batch.append(self._queue.pop(0))
            assert batch[0] is mine, "the leader leads its own append first"
            self._append(batch)
        except BaseException as exc:  # every caller of the batch must hear of it
            for append in batch:
                if append.ids is None and append.error is None:
                    append.error = exc
            if mine.error is None and mine.ids is None:
                mine.error = exc
        finally:
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._leading = False
                else:
                    successor.lead = True
            for append in batch:
                append.done = True
                if append is not mine:
                    append.woken.set()
            if successor is not None:
                successor.woken.set()

    def _append(self, batch: list[_Append]) -> None:
        """One transaction for the batch; on a conflict, each caller's events in a transaction of its own."""
        events = [event for append in batch for event in append.events]
        try:
            ids = self._insert(events)
        except IntegrityError:
            if len(batch) == 1:
                raise
            for append in batch:
                try:
                    append.ids = self._insert(append.events)
                except Exception as exc:  # this caller's own failure, raised in its thread
                    append.error = exc
            return
        start = 0
        for append in batch:
            end = start + len(append.events)
            append.ids = None if ids is None else ids[start:end]
            start = end

    def _insert(self, events: Sequence[StoredEvent]) -> Sequence[int] | None:
        """The library's locked insert of ``events`` in one transaction (retried on connection errors)."""
        ids: Sequence[int] | None = super().insert_events(events)
        self.batches += 1
        return ids
