"""What keeps the dispatcher honest: one dispatcher per database, deadlines that survive clock jumps, a loud
alarm when Pushover refuses the application token, and the outbox's health as numbers.

Kept apart from :mod:`gateway.alerting.dispatcher`, which is about sending; see docs/alerting.md ("Delivery").
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Select,
    cast,
    column,
    exists,
    func,
    literal,
    select,
    table,
    text,
)
from sqlalchemy.orm import QueryableAttribute, Session

from gateway.alerting.states import UNACKNOWLEDGED, NotificationState
from gateway.db.models import Alert, Notification

log = logging.getLogger(__name__)

# pg_try_advisory_lock's key: any constant the other users of the database do not take ("telecare" in ASCII,
# as a signed 64-bit integer). Each role held this way has a key of its own (gateway.cluster.housekeeping has one).
DISPATCHER_LOCK_KEY = 0x74656C6563617265


class AdvisoryLock:
    """One holder of a role per PostgreSQL database, among processes on any machines.

    A session-level advisory lock (``pg_try_advisory_lock(key)``) held on a connection of its own for as long as the
    role is held: PostgreSQL releases it when that connection ends (the process died, the network went), and a
    standing-by process takes it at its next :meth:`held`. :meth:`held` checks the connection each time, so a
    holder that lost it learns so and stands by. Never blocks: a process that does not hold the role is told so at
    once. (Behind a pooler, the pool must be session-pooled: a transaction-pooled connection is not the session.)

    On SQLite nothing is taken: the database is a file of one gateway, whose one worker process is the only holder
    of every role. ``role`` names the role in the log lines ("dispatcher"); ``log_prefix`` is their subsystem.
    """

    def __init__(self, engine: Engine, key: int, role: str, log_prefix: str) -> None:
        self._engine = engine
        self.key = key
        self.role = role
        self._prefix = log_prefix
        self._postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._standing_by = False

    def held(self) -> bool:
        if not self._postgres:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception as e:  # the lock went with the connection
                log.error("%s: lost the %s lock's database connection (%s); standing by", self._prefix, self.role, e)
                self._drop()
        # The database unreachable raises: the caller's loop logs and counts it as any failed round.
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}))
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            if not self._standing_by:
                log.warning("%s: another %s is running on this database; standing by", self._prefix, self.role)
                self._standing_by = True
            return False
        if self._standing_by:
            log.warning("%s: the other %s is gone; this one takes over", self._prefix, self.role)
        self._standing_by = False
        self._conn = conn
        return True

    def release(self) -> None:
        """Give the role up now. Unlocked before the connection is dropped: a dropped connection's lock goes only
        when its server process has noticed and ended, so a standing-by process looking at once could still find
        it taken."""
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a broken connection: its lock goes with it
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                # Invalidated, not returned to the pool: the lock is the session's, and ends only with it.
                self._conn.invalidate()
                self._conn.close()
            self._conn = None


# PostgreSQL's view of advisory locks: a bigint key is split into classid (high 32 bits) and objid (low 32 bits),
# with objsubid 1; locks are per database.
_PG_LOCKS = table("pg_locks", column("pid"), column("locktype"), column("granted"), column("objsubid"),
                  column("database"), column("classid"), column("objid"))
_PG_DATABASE = table("pg_database", column("oid"), column("datname"))


def advisory_lock_holders(key: int | ColumnElement[Any] | QueryableAttribute[Any]) -> Select[tuple[int]]:
    """The server processes (pids) holding the session advisory lock ``key`` in this database: a constant, or a
    column to correlate with (each cluster worker's liveness key). PostgreSQL only."""
    bigint_key = literal(key, BigInteger) if isinstance(key, int) else key
    this_database = select(_PG_DATABASE.c.oid).where(_PG_DATABASE.c.datname == func.current_database())
    return select(_PG_LOCKS.c.pid).where(
        _PG_LOCKS.c.locktype == "advisory", _PG_LOCKS.c.granted.is_(True), _PG_LOCKS.c.objsubid == 1,
        _PG_LOCKS.c.database == this_database.scalar_subquery(),
        cast(_PG_LOCKS.c.classid, BigInteger) == bigint_key.op(">>")(literal(32, Integer)),  # bigint >> int only
        cast(_PG_LOCKS.c.objid, BigInteger) == bigint_key.op("&")(0xFFFFFFFF))


class DispatcherLock(AdvisoryLock):
    """Only one dispatcher per database sends.

    Two dispatchers would each resend the other's ``sending`` rows as a crash left them (``_recover``), and send
    the same ``pending`` row twice. On PostgreSQL the lock is held for as long as the dispatcher runs; when its
    process dies a standing-by dispatcher takes over (:class:`AdvisoryLock`).

    On SQLite nothing is taken: the gateway runs exactly one dispatcher (a thread of its one worker process; the API
    and the command line write rows, never send). Another gateway on the same file would be a misconfiguration that
    SQLite's file locking does not allow across machines anyway.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, DISPATCHER_LOCK_KEY, "dispatcher", "alerting")


class ClockJumpDetector:
    """Notices the gateway clock jumping, against a monotonic clock.

    Deadlines (escalations, retries) are stored as gateway-clock times, because they are shown and survive a
    restart. A clock stepped back an hour would delay every escalation by an hour; stepped forward, every step
    would fall due at once. :meth:`jump_s` returns by how much the clock moved more (or less) than the monotonic
    clock since the last look, once it exceeds ``tolerance_s``; the dispatcher then moves its deadlines by as
    much, so each keeps the time it had left. ``monotonic=None`` turns this off: a simulated clock (accelerated
    runs, tests) is meant to run at its own pace.
    """

    def __init__(self, monotonic: Callable[[], float] | None, tolerance_s: float = 30.0) -> None:
        self._monotonic = monotonic
        self.tolerance_s = tolerance_s
        self._last: tuple[float, float] | None = None

    def jump_s(self, clock_s: float) -> float:
        if self._monotonic is None:
            return 0.0
        mono = self._monotonic()
        last, self._last = self._last, (mono, clock_s)
        if last is None:
            return 0.0
        jump = (clock_s - last[1]) - (mono - last[0])
        return jump if abs(jump) > self.tolerance_s else 0.0


def shift_deadlines(session: Session, jump: timedelta) -> int:
    """Move every open deadline by the clock's jump; returns how many. Pending rows' ``created_at`` moves too:
    the retry deadline counts from it. Few rows (open alerts, unsent messages): done row by row, which works on
    SQLite's text timestamps and PostgreSQL's alike."""
    moved = 0
    for alert in session.scalars(select(Alert).where(Alert.state.in_(UNACKNOWLEDGED),
                                                     Alert.next_escalation_at.is_not(None)).with_for_update()):
        assert alert.next_escalation_at is not None
        alert.next_escalation_at += jump
        moved += 1
    pending = select(Notification).where(Notification.state == NotificationState.PENDING)
    for n in session.scalars(pending.with_for_update()):
        if n.next_attempt_at is not None:
            n.next_attempt_at += jump
        n.created_at += jump
        moved += 1
    return moved


class TokenAlarm:
    """Pushover refused the application token: every message would fail, whoever it is for.

    While it lasts the dispatcher sends to its fallback notifier (the console and the log) instead of asking
    Pushover again for every message (Pushover asks applications not to repeat requests it refused), and tries
    Pushover again every ``recheck_s`` of wall time. The ERROR line is logged at most once per ``recheck_s``.
    """

    def __init__(self, recheck_s: float = 300.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.recheck_s = recheck_s
        self._monotonic = monotonic
        self._since: float | None = None
        self._logged_at: float | None = None
        self._checked_at = 0.0

    @property
    def raised(self) -> bool:
        return self._since is not None

    def skip_pushover(self) -> bool:
        """True while the token is known bad and it is not yet time to try Pushover again."""
        return self._since is not None and self._monotonic() - self._checked_at < self.recheck_s

    def refused(self, reason: str) -> None:
        now = self._monotonic()
        self._checked_at = now
        if self._since is None:
            self._since = now
        if self._logged_at is None or now - self._logged_at >= self.recheck_s:
            self._logged_at = now
            log.error("alerting: PUSHOVER REFUSES THE APPLICATION TOKEN (%s): nobody receives alerts through "
                      "Pushover; they go to the console and the log until TELECARE_PUSHOVER_TOKEN is fixed", reason)

    def accepted(self) -> None:
        if self._since is not None:
            log.warning("alerting: Pushover accepts the application token again")
        self._since = self._logged_at = None


@dataclass(frozen=True, slots=True)
class OutboxHealth:
    pending: int  # pending or being sent
    oldest_pending_s: float  # age of the oldest of them (0 when none)
    unrouted: int  # open alerts with nobody to notify (no message at all)


def outbox_health(session: Session, now: datetime) -> OutboxHealth:
    waiting = Notification.state.in_((NotificationState.PENDING, NotificationState.SENDING))
    pending = session.scalar(select(func.count()).select_from(Notification).where(waiting)) or 0
    oldest = session.scalar(select(func.min(Notification.created_at)).where(waiting))
    unrouted = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.state.in_(UNACKNOWLEDGED), ~exists().where(Notification.alert_id == Alert.id))) or 0
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return OutboxHealth(pending, age, unrouted)
