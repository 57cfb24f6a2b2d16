"""Detector checkpoints (issue 11, finding 8): a batch's checkpoints cost a few statements however many homes it
touches, a checkpoint is written only when the home's state or position changed, and what is written is what a
restarted consumer resumes from (nothing fed twice, nothing skipped)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import SimulatedClock
from gateway.contract import Kind
from gateway.db.models import Alert, DetectorCheckpoint
from gateway.detect import DetectorConsumer
from gateway.detector_checkpoints import load_detector
from gateway.journal import Entry

T0 = int(datetime(2026, 1, 12, 13, 0, tzinfo=UTC).timestamp() * 1000)  # a Monday, 13:00 in London
MIN = 60_000
HOMES = [f"flat{i:03d}" for i in range(60)]


def motion(seq: int, home: str, time_ms: int) -> Entry:
    return Entry(seq, str(Kind.STATE), home, "kitchen_pir", time_ms, time_ms, True, {"occupancy": True})


def consumer(sessions: sessionmaker[Session], at_ms: int = T0) -> DetectorConsumer:
    clock = SimulatedClock()
    clock.tick(at_ms, 1.0)
    return DetectorConsumer(sessions, clock)


@contextmanager
def statements(sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    """The SQL statements executed meanwhile (an executemany counts once)."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine)
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def checkpoints(sessions: sessionmaker[Session]) -> dict[str, DetectorCheckpoint]:
    with sessions() as s:
        return {c.home_id: c for c in s.scalars(select(DetectorCheckpoint))}


def test_a_batch_over_many_homes_checkpoints_them_in_a_few_statements(sessions: sessionmaker[Session]) -> None:
    detect = consumer(sessions)
    detect.handle([motion(i + 1, home, T0) for i, home in enumerate(HOMES)])  # new homes: detectors made
    seq = len(HOMES)
    batch = [motion(seq + i + 1, home, T0 + MIN) for i, home in enumerate(HOMES)]
    with statements(sessions) as seen:
        detect.handle(batch)
    writes = [s for s in seen if "detector_checkpoints" in s or "homes" in s]
    # One per home was two SELECTs and an UPDATE each (180 here): now one read of the homes, one of the
    # checkpoints, one executemany UPDATE.
    assert len(writes) <= 4, writes
    saved = checkpoints(sessions)
    assert sorted(saved) == sorted(HOMES)
    assert all(saved[e.home].journal_seq == e.seq for e in batch if e.home)
    assert all(saved[h].baseline is not None for h in HOMES), "the readable baseline is written with the first"


def test_a_checkpoint_is_written_only_when_its_home_changed(sessions: sessionmaker[Session]) -> None:
    home = HOMES[0]
    detect = consumer(sessions)
    detect.handle([motion(1, home, T0)])
    first = checkpoints(sessions)[home]

    detect.clock.tick(T0 + 30 * MIN, 1.0)  # type: ignore[attr-defined]
    detect._commit([], {home})  # touched (say, an outcome it could not learn from), its state unchanged
    again = checkpoints(sessions)[home]
    assert (again.saved_at, again.state, again.journal_seq) == (first.saved_at, first.state, first.journal_seq)

    detect.handle([motion(2, home, T0 + 31 * MIN)])
    changed = checkpoints(sessions)[home]
    assert changed.journal_seq == 2 and changed.state != first.state and changed.saved_at > first.saved_at


def test_a_restarted_consumer_resumes_from_the_bulk_written_checkpoints(sessions: sessionmaker[Session]) -> None:
    """The crash story with many homes: the journal hands out the last batch again; homes it covers skip it, and
    each home's inactivity alert (raised from its checkpointed state) is recorded once."""
    detect = consumer(sessions)
    first = [motion(i + 1, home, T0) for i, home in enumerate(HOMES)]
    detect.handle(first)
    restarted = consumer(sessions, T0)
    restarted.handle(first)  # handed out again: the position had not moved
    for home in HOMES:
        assert restarted.detectors[home].now_ms == T0
        blob = checkpoints(sessions)[home].state
        assert load_detector(blob).now_ms == T0
    assert restarted.tick(T0 + 12 * 60 * MIN) >= 1
    with sessions() as s:
        raised = list(s.scalars(select(Alert.home_id).where(Alert.home_id.in_(HOMES))))
    assert len(raised) == len(set(raised)), "one alert per home, however often the batch was handed out"
