"""Dead-letter retention: the worker deletes dead letters past an age, past a count per home, and past a count in
all, oldest first, so a hub sending garbage cannot fill the operational database (issue 11, finding 3).

Deletes run in batches of ``batch_rows``, each its own short transaction, with a pause between them: on SQLite
one transaction holds the only write lock, and the registry and the dispatcher must never wait long for it.
Dead letters without a home (a topic the gateway could not place) share one bucket for the per-home count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from gateway.clock import Clock
from gateway.db.models import DeadLetter
from gateway.metrics import WorkerMetrics
from gateway.registry import to_datetime

log = logging.getLogger(__name__)

RULES = ("age", "home", "total")


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    max_age_days: float = 14.0
    max_rows: int = 100_000
    max_per_home: int = 10_000
    batch_rows: int = 1_000  # rows per delete transaction
    pause_s: float = 0.01  # wall time between batches: lets other writers take the lock


@dataclass(slots=True)
class Purged:
    """Rows deleted by each rule in one purge, and the rows kept after it."""

    age: int = 0
    home: int = 0
    total: int = 0
    kept: int = 0


class DeadLetterRetention:
    def __init__(self, sessions: sessionmaker[Session] | Callable[[], Session], clock: Clock,
                 limits: DeadLetterLimits | None = None, metrics: WorkerMetrics | None = None) -> None:
        self._sessions = sessions
        self.clock = clock
        self.limits = limits or DeadLetterLimits()
        self.metrics = metrics

    def purge(self) -> Purged:
        """One pass of every rule; returns what went and what is kept."""
        limits = self.limits
        purged = Purged()
        cutoff: datetime = to_datetime(self.clock.now_ms()) - timedelta(days=limits.max_age_days)
        purged.age = self._delete_oldest(DeadLetter.received_at < cutoff, None)
        for home_id, count in self._homes_over(limits.max_per_home):
            where = DeadLetter.home_id.is_(None) if home_id is None else DeadLetter.home_id == home_id
            purged.home += self._delete_oldest(where, count - limits.max_per_home)
        purged.total = self._delete_oldest(None, self._count() - limits.max_rows)
        purged.kept = self._count()
        if self.metrics is not None:
            for rule in RULES:
                self.metrics.dead_letters_purged.labels(rule).inc(getattr(purged, rule))
            self.metrics.dead_letters_kept.set(purged.kept)
        if purged.age or purged.home or purged.total:
            log.info("dead letters purged: %d past %g days, %d past %d per home, %d past %d in all; %d kept",
                     purged.age, limits.max_age_days, purged.home, limits.max_per_home, purged.total,
                     limits.max_rows, purged.kept)
        return purged

    def run(self, stop: threading.Event, every_s: float = 60.0) -> None:
        """Purge now, then every ``every_s`` wall seconds until ``stop``; a failure is retried next time."""
        run_periodically(self.purge, "dead-letter retention", stop, every_s)

    def _count(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(DeadLetter)) or 0

    def _homes_over(self, most: int) -> list[tuple[str | None, int]]:
        with self._sessions() as session:
            rows = session.execute(select(DeadLetter.home_id, func.count()).group_by(DeadLetter.home_id)
                                   .having(func.count() > most))
            return [(home_id, count) for home_id, count in rows]

    def _delete_oldest(self, where: ColumnElement[bool] | None, how_many: int | None) -> int:
        """Delete the oldest rows matching ``where`` (all of them when ``how_many`` is None), a batch at a time."""
        return delete_in_batches(self._sessions, DeadLetter, DeadLetter.id, where, how_many=how_many,
                                 order_by=(DeadLetter.received_at, DeadLetter.id), batch_rows=self.limits.batch_rows,
                                 pause_s=self.limits.pause_s)


def run_periodically(job: Callable[[], object], what: str, stop: threading.Event, every_s: float) -> None:
    """``job()`` now, then every ``every_s`` wall seconds until ``stop``; a failure is logged and retried next time."""
    while True:
        try:
            job()
        except Exception:
            log.exception("%s failed; trying again in %.0f s", what, every_s)
        if stop.wait(every_s):
            return


def delete_in_batches(sessions: sessionmaker[Session] | Callable[[], Session], model: type[Any],
                      key: InstrumentedAttribute[Any], where: ColumnElement[bool] | None, *,
                      how_many: int | None = None, order_by: Sequence[InstrumentedAttribute[Any]] = (),
                      batch_rows: int = 1_000, pause_s: float = 0.01) -> int:
    """Delete the rows of ``model`` matching ``where`` (first by ``order_by``; all of them when ``how_many`` is
    None), ``batch_rows`` per transaction with ``pause_s`` between: on SQLite a transaction holds the only write
    lock, and the registry and the dispatcher must never wait long for it. ``key`` is the primary key."""
    deleted = 0
    while how_many is None or deleted < how_many:
        take = batch_rows if how_many is None else min(batch_rows, how_many - deleted)
        first = select(key).order_by(*order_by).limit(take)
        if where is not None:
            first = first.where(where)
        with sessions() as session, session.begin():
            gone = session.execute(delete(model).where(key.in_(first.scalar_subquery())))
        count: int = gone.rowcount  # type: ignore[attr-defined]  # a CursorResult
        deleted += count
        if count < take:
            break
        if pause_s:
            time.sleep(pause_s)
    return deleted
