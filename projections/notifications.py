"""Cross-process wake-ups: PostgreSQL ``LISTEN`` on one dedicated connection per process.

Every process of a deployment (API, workers) shares one database, so a
``NOTIFY`` is how one of them tells the others at once that something moved:
the event store's insert transaction notifies that events were appended, the
projector's page transaction that read models advanced. A notification sent
inside a transaction is delivered only when it commits, so a listener never
hears of rows it cannot read yet.

A notification can still be lost (the connection drops, the server restarts).
Whoever listens keeps a slow poll as the fallback, and is told each time the
connection is (re)established, the moment it may have missed some.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("kasal.notifications")

CHECK_S = 0.1  # how often the listening thread looks up from the socket (stop, new channels)
RECONNECT_S = 1.0


class Notifications:
    """Calls ``callback(payload)`` for each notification on a channel it was asked to listen to.

    Callbacks run on the listening thread: they must be thread-safe and quick.
    Channels may be added before or after ``start`` (one added after is heard
    from within ``CHECK_S``). Channel names are identifiers: send with
    ``SELECT pg_notify('<channel>', '<payload>')``, in the transaction whose
    commit the listeners should hear of.
    """

    def __init__(self, conninfo: str, *, name: str = "kasal-listen") -> None:
        self.conninfo = conninfo
        self.name = name
        self._channels: dict[str, list[Callable[[str], None]]] = {}
        self._on_connected: list[Callable[[], None]] = []
        self._listening: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self.backend_pid: int | None = None  # of the listening connection, for operators (and tests)

    @property
    def connected(self) -> bool:
        """Whether notifications are being received now (else pollers should poll briskly)."""
        return self._connected.is_set()

    def on(self, channel: str, callback: Callable[[str], None]) -> None:
        with self._lock:
            self._channels.setdefault(channel, []).append(callback)

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` each time listening (re)starts: anything sent before may have been missed."""
        self._on_connected.append(callback)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- the listening thread ---------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10,
                                     application_name=self.name) as conn:
                    self.backend_pid = conn.info.backend_pid
                    self._listening.clear()
                    self._listen_to_new(conn)
                    self._connected.set()
                    self._call(self._on_connected)
                    failures = 0
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=CHECK_S):
                            self._dispatch(notify.channel, notify.payload)
                        self._listen_to_new(conn)
            except Exception as exc:  # the server went away: listen again once it is back
                if self._stop.is_set():
                    return
                failures += 1
                log.warning("listening for notifications failed (%s); retrying", exc)
            finally:
                self._connected.clear()
            # At once after a connection that worked was cut, then once a second.
            self._stop.wait(RECONNECT_S if failures > 1 else 0)

    def _listen_to_new(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            new = [channel for channel in self._channels if channel not in self._listening]
        for channel in new:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._listening.add(channel)

    def _dispatch(self, channel: str, payload: str) -> None:
        with self._lock:
            callbacks = list(self._channels.get(channel, ()))
        for callback in callbacks:
            try:
                callback(payload)
            except Exception:  # a listener's fault must not stop the others hearing
                log.exception("a listener of %s failed", channel)

    @staticmethod
    def _call(callbacks: list[Callable[[], None]]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a listener of the notification connection failed")
