"""A home whose person cared for has changed (another organisation claimed it, a new resident) is not judged by the
previous person's routine: its detectors start learning again, whether the change is found at start or while
running (issue 12, finding 1)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import SimulatedClock
from gateway.contract import Kind
from gateway.db.models import Alert, DetectorCheckpoint, Home
from gateway.detect import REFRESH_S, DetectorConsumer
from gateway.journal import Entry

HOME = "h1"  # tests/gateway/conftest.py: the simulated home, described, with its resident
T0 = int(datetime(2026, 1, 12, 14, 2, tzinfo=UTC).timestamp() * 1000)  # 14:02 in London
MIN = 60_000


def kitchen_motion(seq: int, time_ms: int) -> Entry:
    return Entry(seq, str(Kind.STATE), HOME, "kitchen_pir", time_ms, time_ms, True, {"occupancy": True})


def press(seq: int, time_ms: int) -> Entry:
    return Entry(seq, str(Kind.STATE), HOME, "pendant", time_ms, time_ms, True, {"action": "single"})


def consumer(sessions: sessionmaker[Session]) -> DetectorConsumer:
    clock = SimulatedClock()
    clock.tick(T0, 1.0)
    return DetectorConsumer(sessions, clock)


def new_person(sessions: sessionmaker[Session]) -> int:
    """Returns the new epoch."""
    with sessions.begin() as s:  # as the API does on a claim, a release, a resident added or removed
        s.execute(update(Home).where(Home.id == HOME).values(care_epoch=Home.care_epoch + 1))
        return s.scalars(select(Home.care_epoch).where(Home.id == HOME)).one()


def pendant_message(sessions: sessionmaker[Session]) -> str:
    with sessions() as s:
        return s.scalars(select(Alert.message).where(Alert.kind == "pendant")).one()


def test_the_same_person_keeps_what_was_learned(sessions: sessionmaker[Session]) -> None:
    consumer(sessions).handle([kitchen_motion(1, T0)])
    consumer(sessions).handle([press(2, T0 + MIN)])  # restarted: read from the checkpoint
    assert pendant_message(sessions) == "Pendant pressed at 14:03 (last activity 14:02 in the kitchen)."


def test_a_checkpoint_of_another_care_epoch_is_not_loaded(sessions: sessionmaker[Session]) -> None:
    consumer(sessions).handle([kitchen_motion(1, T0)])
    epoch = new_person(sessions)
    restarted = consumer(sessions)
    restarted.handle([kitchen_motion(1, T0), press(2, T0 + MIN)])
    assert pendant_message(sessions) == "Pendant pressed at 14:03.", "nothing known of the previous person"
    with sessions() as s:
        row = s.get(DetectorCheckpoint, HOME)
        assert row is not None and (row.care_epoch, row.journal_seq) == (epoch, 2), \
            "checkpointed under the new epoch; the reading the old one saw is not taken twice"


def test_a_running_consumer_starts_again_when_the_person_changes(sessions: sessionmaker[Session]) -> None:
    detect = consumer(sessions)
    detect.handle([kitchen_motion(1, T0)])
    epoch = new_person(sessions)
    detect._refreshed_at = -REFRESH_S  # the next batch reads the database again, as it does every REFRESH_S
    detect.handle([press(2, T0 + MIN)])
    assert pendant_message(sessions) == "Pendant pressed at 14:03."
    with sessions() as s:
        assert s.scalar(select(DetectorCheckpoint.care_epoch).where(DetectorCheckpoint.home_id == HOME)) == epoch
