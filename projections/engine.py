"""The projector: folds the event log into read-model tables, a page at a time.

One transaction per page applies up to ``page_size`` notifications to every
projection and moves each projection's tracking row, so a crash anywhere
leaves tables and positions consistent (exactly-once, restartable). With
several processes, the one holding a PostgreSQL advisory lock writes; the
others follow it, so their read-your-writes waits, streams and runners still
resolve.

Nothing polls briskly: the leader wakes right after each local save and on
the event store's own ``NOTIFY`` (sent in the insert transaction, so heard
only once the events can be read), and each page's transaction sends
``NOTIFY kasal_projected, '<position>'``, which moves every follower at once.
The tracking table is still read every ``poll_interval`` (and every tenth of
a second while the listening connection is down), for a notification lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from application.store import KasalStore
from projections.base import Projection
from projections.notifications import Notifications

log = logging.getLogger("kasal.projector")

ADVISORY_LOCK_KEY = 0x6B6173616C  # "kasal"
TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS projection_tracking (
    name text PRIMARY KEY,
    version integer NOT NULL,
    position bigint NOT NULL
)
"""
PROJECTED_CHANNEL = "kasal_projected"
FALLBACK_POLL_S = 1.0
UNHEARD_POLL_S = 0.1  # while notifications cannot be heard


class ProjectorBusyError(RuntimeError):
    """Another process holds the projector lock (a rebuild would fight it)."""


class Projector:
    """Runs every projection over the one log; also answers "has position N been projected?"."""

    def __init__(
        self,
        conninfo: str,
        store: KasalStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 1000,
        poll_interval: float = FALLBACK_POLL_S,
    ) -> None:
        """``poll_interval`` is the fallback: how often the log (leader) or the tracking
        table (follower) is read when no notification came."""
        self.conninfo = conninfo
        self.store = store
        self.projections = list(projections)
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.position = -1  # below any log position until the tables exist, so waiting for 0 waits for them
        self.leader = False
        self.committing = False
        """True while the leader commits a page: the tables may be ahead of ``position`` then."""
        self.last_error: str | None = None
        self._positions: dict[str, int] = {}
        self._folds = {p.name: p.folds() for p in self.projections}
        self._conn: psycopg.Connection[Any] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._position_lock = threading.Lock()
        # Other parts of the process may listen on this connection too (before or after start).
        self.notifications = Notifications(conninfo)
        appended = getattr(store.recorder, "channel_name", None)
        if appended:
            self.notifications.on(appended, self._on_appended)
        self.notifications.on(PROJECTED_CHANNEL, self._on_projected)
        self.notifications.on_connected(self._wake.set)

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self.notifications.start()
        self._thread = threading.Thread(target=self._run, name="kasal-projector", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.notifications.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def wake(self, position: int | None = None) -> None:
        self._wake.set()

    def on_advanced(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` each time the read models have moved on (after the page is committed).

        It is called from the projector's thread, so it must be thread-safe and quick.
        """
        self._listeners.append(listener)

    # -- waiting ---------------------------------------------------------

    async def wait_for(self, position: int | None, timeout: float) -> bool:
        """Wait until ``position`` is projected; False if the timeout passed first.

        Works from any event loop (the app's, or a test's): each waiter is
        released on its own loop.
        """
        if position is None or self.position >= position:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (position, future)
        with self._waiters_lock:
            self._waiters.append(entry)
        if self.position >= position:
            return True
        self.wake()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for may swallow a
            # cancel that arrives as the future completes.
            async with asyncio.timeout(timeout):
                await asyncio.shield(future)
            return True
        except TimeoutError:
            return self.position >= position
        finally:
            with self._waiters_lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def wait_sync(self, position: int | None, timeout: float) -> bool:
        if position is None:
            return True
        self.wake()
        with self._cond:
            return self._cond.wait_for(lambda: self.position >= position, timeout)

    def _advance(self, position: int) -> None:
        with self._position_lock:  # the projector's thread and the listening thread both advance
            if position <= self.position:
                return
            self.position = position
        with self._cond:
            self._cond.notify_all()
        with self._waiters_lock:
            ready = [future for wanted, future in self._waiters if wanted <= position]
        for future in ready:
            with contextlib.suppress(RuntimeError):  # that loop has closed; its waiter is gone with it
                future.get_loop().call_soon_threadsafe(_release, future)
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener's fault: the page is committed all the same
                log.exception("a listener of the projector failed")

    # -- the loop --------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self._step()
                self.last_error = None
            except Exception as exc:  # keep projecting after transient database errors
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("projector step failed; retrying")
                self._reset_connection()
                self._stop.wait(1.0)
                continue
            if not busy:
                self._wake.wait(self.poll_interval if self.notifications.connected else UNHEARD_POLL_S)

    def _on_appended(self, _payload: str) -> None:
        """Events were committed (by any process): the leader projects them now."""
        if self.leader:
            self._wake.set()

    def _on_projected(self, payload: str) -> None:
        """The leader committed a page up to ``payload``: a follower's read models are there now."""
        if self.leader:
            return
        try:
            position = int(payload)
        except ValueError:
            self._wake.set()  # not ours to parse: read the tracking table instead
            return
        self._advance(position)

    def _step(self) -> bool:
        conn = self._connection()
        if not self.leader:
            self.leader = self._try_lead(conn)
            if self.leader:
                self._prepare(conn)
        if self.leader:
            return self.project_page(conn) == self.page_size
        self._follow(conn)
        return False

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
            self.leader = False
        return self._conn

    def _reset_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self.leader = False

    def _try_lead(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()
        return bool(row and row[0])

    def _follow(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT min(position) FROM projection_tracking").fetchone()
        if row and row[0] is not None:
            self._advance(int(row[0]))

    # -- schema ----------------------------------------------------------

    def _prepare(self, conn: psycopg.Connection[Any], *, secondary_indexes: bool = True) -> None:
        """Create missing tables; rebuild projections whose version changed."""
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(TRACKING_DDL)
            cur.execute("SELECT name, version, position FROM projection_tracking")
            known = {name: (version, position) for name, version, position in cur.fetchall()}
            for projection in self.projections:
                version, position = known.get(projection.name, (None, 0))
                if version != projection.version:
                    if version is not None:
                        log.info("projection %s changed version; rebuilding", projection.name)
                    projection.drop_tables(cur)
                    position = 0
                projection.create_tables(cur, secondary_indexes=secondary_indexes)
                cur.execute(
                    "INSERT INTO projection_tracking (name, version, position) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, position = EXCLUDED.position",
                    (projection.name, projection.version, position),
                )
                self._positions[projection.name] = position
        self._advance(min(self._positions.values(), default=0))

    def project_page(self, conn: psycopg.Connection[Any]) -> int:
        """Apply the next page of notifications; returns how many were read."""
        start = min(self._positions.values(), default=0)
        notifications = self.store.recorder.select_notifications(start=start + 1, limit=self.page_size)
        if not notifications:
            self._advance(start)
            return 0
        last = notifications[-1].id
        pages: dict[str, list[tuple[Any, int]]] = {p.name: [] for p in self.projections}
        for notification in notifications:
            event = None
            for projection in self.projections:
                if notification.id <= self._positions[projection.name]:
                    continue
                if not self._folds[projection.name](notification.topic):
                    continue
                if event is None:
                    event = self.store.mapper.to_domain_event(notification)
                pages[projection.name].append((event, notification.id))
        for projection in self.projections:
            projection.page_started()
        self.committing = True
        try:
            self._commit_page(conn, pages, last)
        finally:
            self.committing = False
        return len(notifications)

    def _commit_page(self, conn: psycopg.Connection[Any], pages: dict[str, list[tuple[Any, int]]], last: int) -> None:
        """Apply one page and its tracking in one transaction, then move the position to ``last``."""
        with conn.transaction(), conn.cursor() as cur:
            # Read models can always be rebuilt from the log, so their commits
            # need not wait for the disk; the events themselves are durable.
            cur.execute("SET LOCAL synchronous_commit = off")
            for projection in self.projections:
                if pages[projection.name]:
                    projection.apply_page(cur, pages[projection.name])
            cur.execute(
                "UPDATE projection_tracking SET position = %s WHERE name = ANY(%s) AND position < %s",
                (last, [p.name for p in self.projections], last),
            )
            self._announce(cur, last)
        for projection in self.projections:
            projection.page_committed()
        for name in self._positions:
            self._positions[name] = max(self._positions[name], last)
        self._advance(last)

    def _announce(self, cur: psycopg.Cursor[Any], position: int) -> None:
        """Tell followers in other processes, on commit, that the read models reached ``position``."""
        cur.execute("SELECT pg_notify(%s, %s)", (PROJECTED_CHANNEL, str(position)))

    # -- maintenance -----------------------------------------------------

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop every read model and fold the whole log again; returns events read."""
        total = self.store.max_position()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()
            if not (row and row[0]):
                raise ProjectorBusyError(
                    "a running service is projecting these read models; stop it before rebuilding"
                )
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(TRACKING_DDL)
                    for projection in self.projections:
                        projection.drop_tables(cur)
                    cur.execute("DELETE FROM projection_tracking")
                self._positions.clear()
                self.position = 0
                # Rows first, plain indexes after: one build of each index is far
                # cheaper than keeping it up to date row by row (about a third of
                # a rebuild's time with the audit log's seven indexes).
                self._prepare(conn, secondary_indexes=False)
                read = 0
                while True:
                    n = self.project_page(conn)
                    read += n
                    if progress is not None:
                        progress(min(self.position, total), total)
                    if n < self.page_size:
                        with conn.transaction(), conn.cursor() as cur:
                            for projection in self.projections:
                                projection.create_indexes(cur)
                        for projection in self.projections:
                            for table in projection.tables:
                                conn.execute(f"ANALYZE {table}")
                        return read
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))

    def catch_up(self) -> int:
        """Project everything now, in the calling thread (CLI, tests, benchmarks)."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            try:
                self._prepare(conn)
                read = 0
                while (n := self.project_page(conn)) > 0:
                    read += n
                return read
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))

    def lag(self) -> int:
        return max(0, self.store.max_position() - self.position)


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
