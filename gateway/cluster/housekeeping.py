"""Cluster mode's housekeeping: the chores one worker does for the whole cluster, one worker at a time.

On one machine the worker process runs the retention purge (:mod:`gateway.purge`), the forgetting of device states
whose person changed, the dead-letter retention (:mod:`gateway.retention`) and the watchdog (:mod:`gateway.watchdog`).
In cluster mode every worker could, but these are the cluster's chores, not a partition's: two workers at once would
tell the operators everything twice, and the dead-letter retention's count rules (per home, in all) would each
delete the excess they counted, so up to twice the excess. So they run in the worker holding the housekeeping role:

* the role is a PostgreSQL advisory lock of its own (:data:`HOUSEKEEPING_LOCK_KEY`, held as the dispatcher's is:
  :class:`gateway.alerting.guards.AdvisoryLock`). Every worker tries it every :data:`TRY_EVERY_S`; the holder's try
  checks its connection. When the holder dies its connection ends, PostgreSQL frees the lock, and another worker
  takes the role at its next try, **within** :data:`TRY_EVERY_S` **(10 s)**, and runs every chore at once;
* each chore runs in a thread of its own (:class:`Chore`), so the hour's purge never holds up an erasure's
  forgetting or the watchdog. A holder that loses the role finishes the chore in hand and starts no other.

The chores in cluster mode (:func:`cluster_chores`): the device states of homes whose care epoch moved on deleted
(:func:`forget_past_care_states`, every 30 s as on one machine), the watchdog (every minute: the dispatcher's lag,
the hub messages' and the decided entries' backlog, JetStream's storage full: :func:`build_cluster_watchdog`), the
dead-letter retention (every minute) and the retention purge (every hour).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.js.errors import NotFoundError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting.guards import AdvisoryLock
from gateway.clock import Clock
from gateway.cluster.stream import READINGS_STREAM, JetStreamLink
from gateway.config import Settings
from gateway.db.cluster import ClusterDeviceState
from gateway.db.models import Home
from gateway.logs import about
from gateway.purge import FORGET_EVERY_S, PURGE_EVERY_S, RetentionPurge
from gateway.retention import DeadLetterRetention
from gateway.watchdog import (
    Check,
    Problem,
    Watchdog,
    WatchdogBounds,
    backlog_problem,
    dispatcher_lag_check,
    operator_channels,
    wall_now,
    watchdog_bounds,
)

__all__ = ["HOUSEKEEPING_LOCK_KEY", "Chore", "Housekeeping", "build_cluster_watchdog", "cluster_chores",
           "forget_past_care_states", "housekeeping_lock", "storage_full_check", "stream_lag_check"]

log = logging.getLogger(__name__)

# The role's pg_try_advisory_lock key: not the dispatcher's ("tc-house" in ASCII, as a signed 64-bit integer).
HOUSEKEEPING_LOCK_KEY = 0x74632D686F757365
TRY_EVERY_S = 10.0  # wall seconds between a worker's tries of the role: a dead holder's successor within this
POLL_S = 1.0  # wall seconds between a chore thread's looks at whether its chore is due
STOP_WAIT_S = 10.0  # wall seconds a stop waits for the chores in hand
WATCHDOG_EVERY_S = 60.0
DEAD_LETTERS_EVERY_S = 60.0
FORGET_BATCH_HOMES = 500  # homes whose states are deleted in one transaction


@dataclass
class Chore:
    """``job`` every ``every_s`` wall seconds (from the end of its last run) while the role is held, and at once
    when it is taken."""

    name: str
    job: Callable[[], object]
    every_s: float
    ran_at: float | None = None  # monotonic, when its last run ended
    term: int = 0  # the holding (Housekeeping.term) it last ran in


class Housekeeping:
    """The role (``lock``) and its chores: :meth:`run` in the worker; :meth:`try_take` and :meth:`run_due` do one
    step each, for tests."""

    def __init__(self, lock: AdvisoryLock, chores: Sequence[Chore], *, try_every_s: float = TRY_EVERY_S,
                 poll_s: float = POLL_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.lock = lock
        self.chores = list(chores)
        self.try_every_s = try_every_s
        self.poll_s = poll_s
        self._monotonic = monotonic
        self._guard = threading.Lock()
        self._holding = False
        self.term = 0  # how many times this worker took the role: a new holding runs every chore at once

    @property
    def holding(self) -> bool:
        return self._holding

    def try_take(self) -> bool:
        """Hold the role if it is free, or check it is still held; False while another worker holds it (or the
        database cannot be asked: a holder that cannot reach it cannot do the chores either)."""
        try:
            held = self.lock.held()
        except Exception as e:
            log.warning("housekeeping: the role's lock could not be checked (%s); standing by until the next try", e)
            held = False
        with self._guard:
            if held and not self._holding:
                self.term += 1
                log.info("housekeeping: this worker does the cluster's housekeeping (purge, forgetting, watchdog, "
                         "dead letters) now")
            elif self._holding and not held:
                log.warning("housekeeping: this worker no longer holds the housekeeping role; its chores stop")
            self._holding = held
        return held

    def release(self) -> None:
        """Let another worker take the role at its next try (a clean stop)."""
        with self._guard:
            self._holding = False
        self.lock.release()

    def run_due(self) -> list[str]:
        """Run every chore that is due, here and now; returns their names."""
        return [chore.name for chore in self.chores if self._run_if_due(chore)]

    def run(self, stop: threading.Event) -> None:
        """Try the role every ``try_every_s`` and do the chores while held, until ``stop``; then let it go."""
        threads = [threading.Thread(target=self._chore_loop, args=(chore, stop), name=f"housekeeping-{chore.name}",
                                    daemon=True) for chore in self.chores]
        for t in threads:
            t.start()
        try:
            while True:
                self.try_take()
                if stop.wait(self.try_every_s):
                    break
        finally:
            # A chore in hand is given a few seconds (an hour's purge is not waited for: it is done again by the
            # next holder, and the stop must not outlast systemd's patience), then the role is let go.
            deadline = time.monotonic() + STOP_WAIT_S
            for t in threads:
                t.join(timeout=max(0.0, deadline - time.monotonic()))
            self.release()

    def _chore_loop(self, chore: Chore, stop: threading.Event) -> None:
        while not stop.is_set():
            self._run_if_due(chore)
            stop.wait(self.poll_s)

    def _run_if_due(self, chore: Chore) -> bool:
        with self._guard:
            due = self._holding and (chore.term != self.term or chore.ran_at is None
                                     or self._monotonic() - chore.ran_at >= chore.every_s)
            term = self.term
        if not due:
            return False
        try:
            chore.job()
        except Exception:
            log.exception("housekeeping: %s failed; trying again in %.0f s", chore.name, chore.every_s)
        chore.ran_at, chore.term = self._monotonic(), term
        return True


def housekeeping_lock(sessions: sessionmaker[Session]) -> AdvisoryLock:
    """The role's lock, on the engine ``sessions`` are bound to."""
    return AdvisoryLock(sessions.kw["bind"], HOUSEKEEPING_LOCK_KEY, "housekeeping worker", "housekeeping")


def cluster_chores(sessions: sessionmaker[Session], *, purge: RetentionPurge, retention: DeadLetterRetention,
                   watchdog: Watchdog) -> list[Chore]:
    return [
        Chore("forgetting device states", lambda: forget_past_care_states(sessions), FORGET_EVERY_S),
        Chore("watchdog", watchdog.run_once, WATCHDOG_EVERY_S),
        Chore("dead-letter retention", retention.purge, DEAD_LETTERS_EVERY_S),
        Chore("retention purge", purge.purge, PURGE_EVERY_S),
    ]


# --- Forgetting device states ---------------------------------------------------------------------------------


def forget_past_care_states(sessions: sessionmaker[Session] | Callable[[], Session],
                            batch_homes: int = FORGET_BATCH_HOMES) -> list[str]:
    """Delete every device state (``cluster_device_states``) learned under a care epoch other than its home's
    current one (the person cared for changed, or was erased: :mod:`gateway.purge`); returns those homes.

    Each row carries the epoch its partition loop learned the home under, so a row a loop writes late from a
    former person's memory is caught at the next pass too. A home the database does not know (discovered, not
    registered) is left alone, as on one machine. The loops themselves drop a home's states from memory when its
    epoch moves on, and read only rows of the current epoch (``gateway.cluster.partition``)."""
    # A join (one pass over both tables, hashed), not a subquery per row: the table has a row per device.
    stale_homes = (select(ClusterDeviceState.home_id).join(Home, Home.id == ClusterDeviceState.home_id)
                   .where(ClusterDeviceState.care_epoch != Home.care_epoch).distinct()
                   .order_by(ClusterDeviceState.home_id).limit(batch_homes))
    current = select(Home.care_epoch).where(Home.id == ClusterDeviceState.home_id).scalar_subquery()
    forgotten: list[str] = []
    while True:
        with sessions() as session, session.begin():
            homes = list(session.scalars(stale_homes))
            if homes:
                session.execute(delete(ClusterDeviceState).where(ClusterDeviceState.home_id.in_(homes),
                                                                 ClusterDeviceState.care_epoch != current))
        forgotten += homes
        if len(homes) < batch_homes:
            break
    for home in forgotten:
        log.info("home %s: its device states predate its care epoch (the person cared for changed, or was erased); "
                 "deleted", home, extra=about(home=home))
    return forgotten


# --- The watchdog in cluster mode -----------------------------------------------------------------------------


def stream_lag_check(link: JetStreamLink, stream: str, name: str, what: str, risk: str, bounds: WatchdogBounds,
                     now_ms: Callable[[], int]) -> Check:
    """A stream whose messages wait, by count or by the age of the oldest (as the NATS servers stored it): in
    ``$MQTT_msgs`` every consumer's acknowledgement removes a message (what no partition loop took yet), in the
    entries' work queue the store loop's does. The cluster's counterpart of a journal consumer's lag."""

    async def oldest() -> tuple[int, int | None]:
        js = link.jetstream()
        state = (await js.stream_info(stream)).state
        for seq in range(state.first_seq, state.first_seq + 3) if state.messages else ():
            try:  # the first may be acknowledged, so gone, between the two requests
                stored = (await js.get_msg(stream, seq)).time
            except NotFoundError:
                continue
            return state.messages, int(stored.timestamp() * 1000) if stored is not None else None
        return state.messages, None

    def stream_lag() -> Problem | None:
        waiting, stored_ms = link.call(oldest(), 2 * link.options.request_timeout_s)
        age_s = max(0.0, (now_ms() - stored_ms) / 1000) if stored_ms is not None else 0.0
        return backlog_problem(name, waiting, age_s, bounds, what, risk)

    return stream_lag


def storage_full_check(storage_share: Callable[[], float | None], full_at: float) -> Check:
    """The NATS account's JetStream storage (nearly) full: the servers refuse new hub messages, so send no PUBACK;
    the hubs keep them and try again, but readings and presses come late or, past a hub's queue, never."""

    def jetstream_storage() -> Problem | None:
        share = storage_share()
        if share is None or share < full_at:
            return None
        return Problem("stream:full", f"JetStream's storage is {share:.0%} full: the NATS servers refuse new hub "
                       "messages (no PUBACK), so readings and pendant presses are not received; free space or raise "
                       "max_file_store")

    return jetstream_storage


def build_cluster_watchdog(settings: Settings, sessions: sessionmaker[Session], clock: Clock, link: JetStreamLink,
                           entries_stream: str, full_at: float) -> Watchdog:
    """The watchdog of cluster mode, on the one-machine watchdog's bounds and channels. No disk check: a worker
    keeps nothing on its disk (the hand-off is the stream); the NATS servers' storage is checked instead."""
    bounds = watchdog_bounds(settings)
    checks = [
        dispatcher_lag_check(sessions, bounds, wall_now(clock)),
        stream_lag_check(link, READINGS_STREAM, "lag:stream", "hub messages wait for the workers",
                         "alerts may come late", bounds, clock.now_ms),
        stream_lag_check(link, entries_stream, "lag:entries", "readings wait for the readings store",
                         "the readings store is behind (alerts are not)", bounds, clock.now_ms),
        storage_full_check(link.storage_share, full_at),
    ]
    return Watchdog(checks, operator_channels(settings))
