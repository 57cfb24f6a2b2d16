"""The worker's side of partition ownership: one call, :meth:`LeaseKeeper.tick`, every :data:`TICK_INTERVAL_S`.

A tick, in two short transactions: first stay alive (membership: the one row whose renewal keeps every lease this
worker holds), then see who is alive and who owns what, give up the partitions above this worker's fair share, and
take free ones or dead workers' ones up to it (:mod:`gateway.cluster.assignment`). It returns what the worker owns
now (partition to fencing epoch) and what it gained and lost since the last tick; the worker starts consuming the
partitions gained (from the last acknowledged message, with the detectors' checkpoints) and stops those lost.

Timing. A dead worker's partitions must move to survivors within 15 s. A worker whose process dies (a crash, an
out-of-memory kill, ``kill -9``) loses its liveness lock with its database connection at once, and the survivors
take its partitions at their next tick: **within one interval, 3 s** (:func:`gateway.cluster.membership.
live_worker_ids`). A worker that stops renewing while its connection stays (paused, or its machine gone without
closing it) is judged by its row: its leases lapse at most ``TTL`` after its last renewal, a survivor sees that on
its next tick, at most one interval later, so a partition moves within ``TTL + TICK_INTERVAL`` = 9 + 3 = 12 s,
leaving 3 s for the tick itself and for the new owner's consumer to start. A live worker renews every 3 s, so it
keeps its leases through two missed ticks (a slow database, a long pause of the process) and loses them only on the
third.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting.guards import AdvisoryLock
from gateway.cluster import leases, membership
from gateway.cluster.assignment import plan_for
from gateway.cluster.database import require_postgresql

__all__ = ["DEFAULT_PARTITIONS", "LEASE_TTL_S", "TICK_INTERVAL_S", "LeaseKeeper", "Ownership"]

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 16  # the NATS servers' mapping: partition(16, 1) on the home id
LEASE_TTL_S = 9.0
TICK_INTERVAL_S = 3.0

_EMPTY: Mapping[int, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Ownership:
    """What a worker owns after a tick, and what changed since the previous one.

    ``owned``: partition to fencing epoch, to pass to :func:`gateway.cluster.leases.still_owner`. ``gained``:
    partitions to start consuming. ``lost``: partitions to stop consuming (taken over, given up to balance the
    cluster, or no longer renewable). A partition lost and taken back between two ticks is in both, with a new
    epoch: its work under the old epoch can no longer commit, so the worker restarts it from the checkpoints."""

    owned: Mapping[int, int] = field(default_factory=lambda: _EMPTY)
    gained: frozenset[int] = frozenset()
    lost: frozenset[int] = frozenset()

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost)


class LeaseKeeper:
    """Keeps this worker's share of the partitions: call :meth:`tick` every ``tick_interval`` seconds, and
    :meth:`stop` on a clean stop.

    ``sessions`` are sessions of the operational database, which must be PostgreSQL (else
    :class:`~gateway.cluster.errors.ClusterConfigError`). ``clock`` is monotonic, for the one
    judgement made locally: when the database cannot be reached, the leases are given up (``lost``) once the last
    successful renewal is ``ttl`` old, since others may then take them over. Commits of a worker that has lost a
    lease fail the fencing check anyway; this only stops it working for nothing."""

    def __init__(self, sessions: sessionmaker[Session], *, worker_id: str | None = None,
                 partitions: int = DEFAULT_PARTITIONS, ttl: float = LEASE_TTL_S,
                 tick_interval: float = TICK_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        if partitions < 1:
            raise ValueError(f"the stream has at least one partition (got {partitions})")
        if not 0 < tick_interval < ttl:
            raise ValueError(f"the tick interval ({tick_interval} s) must be positive and shorter than the lease "
                             f"TTL ({ttl} s), or leases expire between ticks")
        bind = sessions.kw.get("bind")
        if bind is not None:
            require_postgresql(bind.url)
        # Held on a connection of its own while this worker runs: when the process dies, PostgreSQL drops it with
        # the connection, and the others count this worker dead at their next tick (membership.live_worker_ids).
        self.liveness_key = membership.new_liveness_key()
        self._liveness = AdvisoryLock(bind, self.liveness_key, "worker liveness", "cluster") if bind else None
        self._sessions = sessions
        self.worker_id = worker_id or membership.new_worker_id()
        self.partitions = partitions
        self.ttl = ttl
        self.tick_interval = tick_interval
        self._clock = clock
        self._owned: Mapping[int, int] = _EMPTY
        self._joined = False
        self._renewed_until = clock()

    @property
    def owned(self) -> Mapping[int, int]:
        """Partition to fencing epoch, as of the last tick."""
        return self._owned

    def tick(self) -> Ownership:
        """Renew, rebalance and acquire; what this worker owns now and what changed.

        Raises :class:`~gateway.cluster.errors.ClusterConfigError` on the first tick if the cluster's workers use
        another partition count. A database error is logged, not raised: when the renewal failed, the leases are
        kept until they could have expired, then reported lost; when only the rebalancing failed, the next tick
        tries again."""
        started = self._clock()
        try:
            held = self._renew()
        except SQLAlchemyError as e:
            if self._owned and self._clock() >= self._renewed_until:
                log.warning("worker %s cannot renew its leases (%s) and they may have expired: giving up partitions "
                            "%s", self.worker_id, _reason(e), _listed(self._owned))
                return self._update({})
            log.warning("worker %s cannot renew its leases (%s); retrying at the next tick", self.worker_id,
                        _reason(e))
            return Ownership(owned=self._owned)
        self._joined = True
        self._renewed_until = started + self.ttl
        try:
            held = self._rebalance(held)
        except SQLAlchemyError as e:  # the renewal stands: only the share waits for the next tick
            log.warning("worker %s could not rebalance the partitions (%s); retrying at the next tick",
                        self.worker_id, _reason(e))
        return self._update(held)

    def stop(self) -> Ownership:
        """Release every lease and leave the cluster, so that others take the partitions at their next tick rather
        than after the TTL. Stop consuming first: commits after this fail the fencing check. A database error is
        logged (the leases then expire after the TTL)."""
        try:
            with self._sessions.begin() as session:
                self._limit_waits(session)
                leases.release(session, self.worker_id)
                membership.leave(session, self.worker_id)
        except SQLAlchemyError as e:
            log.warning("worker %s could not release its leases (%s): they expire within %s s", self.worker_id,
                        _reason(e), self.ttl)
        if self._liveness is not None:
            self._liveness.release()
        return self._update({})

    def _renew(self) -> dict[int, int]:
        # Its own short transaction, touching this worker's membership row only: no lease row, so no wait for the
        # fencing locks that commits of this worker's partitions hold, and a rebalancing that fails costs no renewal.
        # The liveness lock first (taken once, then its connection checked): registered only while held, else the
        # row alone says this worker is alive, until it expires.
        key = self.liveness_key if self._liveness is not None and self._liveness.held() else None
        with self._sessions.begin() as session:
            self._limit_waits(session)
            if self._joined:
                membership.renew(session, self.worker_id, self.partitions, self.ttl, key)
            else:
                membership.join(session, self.worker_id, self.partitions, self.ttl, key)
                leases.ensure_partitions(session, self.partitions)
            return leases.held(session, self.worker_id)

    def _rebalance(self, renewed: dict[int, int]) -> dict[int, int]:
        held = dict(renewed)  # kept as renewed if this transaction rolls back
        with self._sessions.begin() as session:
            self._limit_waits(session)
            plan = plan_for(self.worker_id, self.partitions, membership.live_workers(session), leases.owners(session))
            for partition in leases.release(session, self.worker_id, plan.release):
                held.pop(partition, None)
            held.update(leases.acquire(session, self.worker_id, plan.acquire))
            membership.forget_dead(session)
            return held

    def _limit_waits(self, session: Session) -> None:
        # A tick never waits longer than one interval for a lock (a lease row to release that a commit of this
        # worker holds fenced while it takes long): it fails, and the next tick tries again.
        session.execute(text("SELECT set_config('lock_timeout', :limit, true)"),
                        {"limit": f"{round(self.tick_interval * 1000)}ms"})

    def _update(self, held: Mapping[int, int]) -> Ownership:
        before = self._owned
        gained = frozenset(p for p, epoch in held.items() if before.get(p) != epoch)
        lost = frozenset(p for p, epoch in before.items() if held.get(p) != epoch)
        self._owned = MappingProxyType(dict(sorted(held.items())))
        if gained:
            log.info("worker %s acquired partitions %s", self.worker_id, _listed(gained))
        if lost:
            log.info("worker %s no longer owns partitions %s", self.worker_id, _listed(lost))
        return Ownership(owned=self._owned, gained=gained, lost=lost)


def _reason(error: SQLAlchemyError) -> str:
    # The driver's first line: what went wrong, without the SQL and parameters SQLAlchemy appends.
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def _listed(partitions: Mapping[int, int] | frozenset[int]) -> str:
    return ",".join(str(p) for p in sorted(partitions))
