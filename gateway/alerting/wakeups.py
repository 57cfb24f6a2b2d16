"""Wake-ups between the processes of one PostgreSQL database: alerting work committed in one process reaches the
dispatcher that sends, in another, at once rather than at its next poll.

In cluster mode every worker's detectors commit alerts, but only the worker holding the dispatcher's lock
(:class:`~gateway.alerting.guards.DispatcherLock`) sends. Waking the dispatcher of the worker that committed does
nothing when another worker holds the lock: that one found the alert at its next look for work, up to a second
later (``Dispatcher(idle_poll_s=...)``), which was most of a pendant press's time to Pushover.

PostgreSQL's LISTEN/NOTIFY carries the wake-up: the process that committed announces it (``pg_notify``, after the
commit, so the listener's look finds the rows), and the dispatcher holding the lock listens on a connection of its
own while it holds it (a dispatcher standing by keeps no connection for it). A notice is only a hint: lost (the
connection dropped, a process killed between its commit and its notice), it costs at most one poll, which stays.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Connection, Engine, text

__all__ = ["CHANNEL", "WorkNotices"]

log = logging.getLogger(__name__)

CHANNEL = "telecare_alerting_work"
RELISTEN_S = 5.0  # wall seconds before listening again after the listening connection failed


class WorkNotices:
    """Announce new alerting work (:meth:`announce`, from any thread) and hear it (:meth:`listen`, :meth:`heard`,
    :meth:`stop_listening`, from the dispatcher's thread only: the listening connection is that thread's).

    Does nothing but on PostgreSQL through psycopg 3 (``engine`` None or SQLite: one gateway process, whose
    detectors wake its dispatcher directly).
    """

    def __init__(self, engine: Engine | None) -> None:
        supported = engine is not None and engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._engine = engine if supported else None
        self._conn: Connection | None = None
        self._failed_at: float | None = None

    @property
    def listening(self) -> bool:
        return self._conn is not None

    def announce(self) -> None:
        """Tell whichever dispatcher listens that work was committed. Never raises: a notice not sent costs the
        listener one poll."""
        if self._engine is None:
            return
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
        except Exception as e:
            log.info("alerting: the sending dispatcher not woken (%s); it finds the work at its next poll", e)

    def listen(self) -> bool:
        """Listen from now on (if not already); whether it listens. After a failure it tries again only
        :data:`RELISTEN_S` later: the caller polls meanwhile."""
        if self._conn is not None:
            return True
        if self._engine is None:
            return False
        if self._failed_at is not None and time.monotonic() - self._failed_at < RELISTEN_S:
            return False
        conn = None
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f"LISTEN {CHANNEL}")
        except Exception as e:
            self._failed(conn, e)
            return False
        self._conn, self._failed_at = conn, None
        return True

    def heard(self, timeout_s: float) -> bool:
        """Whether a notice came since the last look, waiting up to ``timeout_s`` for one; False at once when not
        listening (see :meth:`listen`)."""
        if self._conn is None:
            return False
        try:
            driver = self._conn.connection.driver_connection
            assert driver is not None  # a live connection's
            return any(True for _ in driver.notifies(timeout=timeout_s, stop_after=1))
        except Exception as e:
            self._failed(self._conn, e)
            self._conn = None
            return False

    def stop_listening(self) -> None:
        if self._conn is not None:
            _discard(self._conn)
            self._conn = None

    def _failed(self, conn: Connection | None, error: Exception) -> None:
        log.warning("alerting: not listening for new work (%s); polling for it, listening again in %.0f s",
                    error, RELISTEN_S)
        self._failed_at = time.monotonic()
        if conn is not None:
            _discard(conn)


def _discard(conn: Connection) -> None:
    """Closed, not returned to the pool: a pooled connection must not carry the LISTEN to another user."""
    try:
        conn.invalidate()
        conn.close()
    except Exception as e:  # already broken: nothing to undo
        log.debug("alerting: listening connection closed uncleanly: %s", e)
