"""The detectors as a journal consumer: alerts recorded once, checkpoints resumed, time told when caught up."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Outcome
from analytics.detector import HomeDetector
from gateway.alerting import people, service
from gateway.clock import SimulatedClock
from gateway.contract import Kind, state_fields
from gateway.db.models import Absence, Alert, DetectorCheckpoint
from gateway.detect import DetectorConsumer
from gateway.detector_checkpoints import warm_baselines
from gateway.errors import StoreUnavailable
from gateway.journal import Entry
from gateway.stores.readings.sqlite import SqliteReadingStore
from sensors_sim.generate import Simulation, start_of
from sensors_sim.incidents import parse_incidents
from sensors_sim.scenario import default_home
from sensors_sim.sensors import Radio, payloads

HOME = "h1"
T0 = int(datetime(2026, 1, 12, 13, 0, tzinfo=UTC).timestamp() * 1000)  # a Monday, 13:00 in London
MIN = 60_000


class Stream:
    """Journal entries as ingest writes them."""

    def __init__(self) -> None:
        self.seq = 0

    def entry(self, kind: Kind, device: str | None, time_ms: int, body: dict[str, object]) -> Entry:
        self.seq += 1
        return Entry(self.seq, str(kind), HOME, device, time_ms, time_ms, True, body)

    def motion(self, device: str, time_ms: int) -> Entry:
        return self.entry(Kind.STATE, device, time_ms, {"occupancy": True, "battery": 90})

    def quiet(self, start_ms: int, minutes: int) -> list[Entry]:
        return [self.entry(Kind.STATE, "living_room_climate", start_ms + m * MIN, {"temperature": 20.5})
                for m in range(5, minutes + 1, 5)]


def alerts(sessions: sessionmaker[Session]) -> list[Alert]:
    with sessions() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def consumer(sessions: sessionmaker[Session]) -> DetectorConsumer:
    clock = SimulatedClock()
    clock.tick(T0, 1.0)
    return DetectorConsumer(sessions, clock)


def test_a_batch_handed_out_again_after_a_crash_records_its_alert_once(sessions: sessionmaker[Session]) -> None:
    stream = Stream()
    batch = [stream.motion("kitchen_pir", T0), *stream.quiet(T0, 5 * 60)]
    first = consumer(sessions)
    first.handle(batch)
    [alert] = alerts(sessions)
    assert (alert.kind, alert.subject, alert.home_id) == ("inactivity", "", HOME)
    assert "No activity since 13:00, last in the kitchen" in alert.message

    again = consumer(sessions)  # the worker restarted before the journal position moved
    again.handle(batch)
    assert len(alerts(sessions)) == 1, "the checkpoint covers the batch: nothing is raised twice"
    with sessions() as s:
        assert s.get(DetectorCheckpoint, HOME).journal_seq == batch[-1].seq  # type: ignore[union-attr]

    again.handle([stream.motion("hall_pir", T0 + 5 * 60 * MIN + MIN)])
    [resolved] = alerts(sessions)
    assert (resolved.state, resolved.resolved_by) == ("resolved", "auto")


def test_time_told_with_nothing_arriving_raises_at_the_crossing_time(sessions: sessionmaker[Session]) -> None:
    stream = Stream()
    detect = consumer(sessions)
    detect.handle([stream.motion("kitchen_pir", T0)])
    wake = detect.next_wake_ms()
    assert wake is not None and T0 < wake <= T0 + 6 * 60 * MIN
    assert detect.tick(wake - 1) == 0
    assert detect.tick(T0 + 8 * 60 * MIN) == 1
    [alert] = alerts(sessions)
    assert alert.raised_at == datetime.fromtimestamp(wake / 1000, UTC), "stamped when crossed, not when looked"


def test_the_hub_going_offline_is_recorded_as_a_device_alert(sessions: sessionmaker[Session]) -> None:
    stream = Stream()
    detect = consumer(sessions)
    detect.handle([stream.motion("kitchen_pir", T0),
                   stream.entry(Kind.BRIDGE_STATE, None, T0 + MIN, {"online": False})])
    detect.tick(T0 + 10 * 60 * MIN)
    # Revised with issue 10: the hub offline no longer holds inactivity back; it is raised, saying what is unknown.
    hub, inactivity = alerts(sessions)
    assert (hub.kind, hub.subject) == ("hub_offline", "hub")
    assert inactivity.kind == "inactivity" and "the sensors have stopped" in inactivity.message


def test_every_sensor_reported_unavailable_is_cant_see_and_one_back_clears_it(sessions: sessionmaker[Session]) -> None:
    stream = Stream()
    detect = consumer(sessions)
    pirs = ["kitchen_pir", "hall_pir"]
    detect.handle([stream.motion(d, T0) for d in pirs])
    detect.handle([stream.entry(Kind.AVAILABILITY, d, T0 + MIN, {"online": False}) for d in pirs])
    [cant] = alerts(sessions)
    assert (cant.kind, cant.subject, cant.state) == ("cant_see", "hub", "raised")
    detect.handle([stream.entry(Kind.AVAILABILITY, "hall_pir", T0 + 2 * MIN, {"online": True})])
    [cant] = alerts(sessions)
    assert cant.state == "resolved" and cant.resolved_at is not None


def test_a_return_from_a_planned_absence_ends_it(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        people.add_absence(s, HOME, datetime.fromtimestamp(T0 / 1000, UTC), None, "holiday")
        s.commit()
    stream = Stream()
    detect = consumer(sessions)
    detect.handle([*stream.quiet(T0, 60), stream.motion("hall_pir", T0 + 3 * 24 * 60 * MIN)])
    with sessions() as s:
        [absence] = s.scalars(select(Absence))
        assert absence.ends_at == datetime.fromtimestamp((T0 + 3 * 24 * 60 * MIN) / 1000, UTC)
    [notice] = alerts(sessions)
    assert (notice.kind, notice.state) == ("returned", "resolved") and "Back home" in notice.message


def test_a_warmed_baseline_is_what_the_consumer_starts_from(sessions: sessionmaker[Session]) -> None:
    history = list(Simulation([default_home(HOME)], start_of(datetime(2026, 1, 5).date()), 7, seed=2).observations())
    fed = warm_baselines(sessions, history)
    assert fed == {HOME: len(history)}
    detect = consumer(sessions)
    detect.handle([Stream().motion("kitchen_pir", history[-1].time_ms + MIN)])
    detector = detect.detectors[HOME]
    assert detector.baseline()["days_learned"] >= 6 and detector.routine.up_time.days >= 5


def test_a_pendant_pressed_in_a_warmed_history_does_not_hold_back_a_live_press(
        sessions: sessionmaker[Session]) -> None:
    start = start_of(datetime(2026, 1, 5).date())
    history = list(Simulation([default_home(HOME)], start, 5, seed=2,
                              incidents=parse_incidents([{"kind": "pendant", "home": HOME, "day": 2, "at": 600}]))
                   .observations())
    assert any(o.kind == "button" for o in history), "the history holds a press"
    warm_baselines(sessions, history)
    detect = consumer(sessions)
    pressed = history[-1].time_ms + MIN
    detect.handle([Stream().entry(Kind.STATE, "pendant", pressed, {"action": "single"})])
    assert [(a.kind, a.severity) for a in alerts(sessions)] == [("pendant", 4)], "the live press is an emergency"


class AwayStore:
    """A readings store that cannot be reached."""

    def write_daily_summaries(self, summaries: object) -> None:
        raise StoreUnavailable("connection refused")


def test_closed_days_reach_the_readings_store_and_wait_in_the_checkpoint_while_it_is_away(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    start = start_of(datetime(2026, 1, 5).date())
    history = list(Simulation([default_home(HOME)], start, 3, seed=2).observations())
    radio = Radio(default_home(HOME), np.random.default_rng(1))
    stream = Stream()
    entries = [stream.entry(Kind.STATE, o.device, o.time_ms, state_fields(body))  # as ingest journals them
               for o, body in payloads(history, radio)]
    detect = consumer(sessions)
    detect.handle(entries)
    detect.tick(history[-1].time_ms + 2 * 60 * MIN)  # past the third midnight

    with pytest.raises(StoreUnavailable):
        detect.flush_summaries(AwayStore())  # type: ignore[arg-type]
    assert len(detect.detectors[HOME].summaries) == 3, "kept for the next try"

    store = SqliteReadingStore(tmp_path / "readings.sqlite3")
    assert detect.flush_summaries(store) == 3
    days = store.daily_summaries(HOME, date(2026, 1, 1), date(2026, 1, 31))
    assert [d.day for d in days] == [date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)]
    assert days[0].values["activities"] > 50 and days[1].values["bed_minutes"] > 300
    assert 240 < days[1].values["up_min"] < 720 and days[1].values["meals"] >= 1
    restarted = consumer(sessions)
    restarted.handle([stream.entry(Kind.STATE, "kitchen_pir", history[-1].time_ms + 3 * 60 * MIN,
                                   {"occupancy": True})])
    assert restarted.detectors[HOME].summaries == [], "written days are not written again after a restart"


def test_a_reading_a_detector_fails_on_is_logged_and_the_rest_go_on(sessions: sessionmaker[Session],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Stream()
    detect = consumer(sessions)
    detect.handle([stream.motion("kitchen_pir", T0)])
    original = HomeDetector.observe

    def broken_on_the_hall(self: HomeDetector, time_ms: int, device: str, *args: object,
                           **kwargs: object) -> list[object]:
        if device == "hall_pir":
            raise ValueError("a bug")
        return original(self, time_ms, device, *args, **kwargs)  # type: ignore[arg-type, return-value]

    monkeypatch.setattr(HomeDetector, "observe", broken_on_the_hall)
    detect.handle([stream.motion("hall_pir", T0 + MIN), *stream.quiet(T0 + MIN, 5 * 60)])
    assert detect.skipped == 1
    [alert] = alerts(sessions)
    assert alert.kind == "inactivity", "the readings after the bad one still reach the detectors"


def test_a_carers_false_alarm_reaches_the_detector_once_and_a_correction_takes_it_back(
        sessions: sessionmaker[Session]) -> None:
    stream = Stream()
    detect = consumer(sessions)
    detect.handle([stream.motion("kitchen_pir", T0), *stream.quiet(T0, 5 * 60)])
    detect.handle([stream.motion("hall_pir", T0 + 5 * 60 * MIN + MIN)])  # activity again: resolved by itself
    [alert] = alerts(sessions)
    now = datetime.fromtimestamp((T0 + 6 * 60 * MIN) / 1000, UTC)
    with sessions() as s:
        service.record_outcome(s, alert.id, Outcome.FALSE_ALARM, "Jo (carer)", "watching TV", now)
        s.commit()
    assert detect.learn_outcomes() == 1
    [change] = detect.detectors[HOME].baseline()["feedback"]
    assert change["alert_id"] == alert.id and change["limit_after_min"] > change["limit_before_min"]
    assert detect.learn_outcomes() == 0, "each outcome reaches the detectors once"

    restarted = consumer(sessions)  # what was learned is in the checkpoint, committed with the mark
    restarted.handle([stream.motion("hall_pir", T0 + 7 * 60 * MIN)])
    assert restarted.detectors[HOME].baseline()["feedback"] == [change]

    with sessions() as s:
        service.record_outcome(s, alert.id, Outcome.FALL, "Jo (carer)", "she had fallen after all", now)
        s.commit()
    assert restarted.learn_outcomes() == 1
    widened, taken_back = restarted.detectors[HOME].baseline()["feedback"]
    assert taken_back["limit_after_min"] == widened["limit_before_min"]


class FailingCommits:
    """Sessions whose next ``failures`` commits fail, as SQLite's "database is locked" does under load."""

    def __init__(self, sessions: sessionmaker[Session], failures: int) -> None:
        self.sessions = sessions
        self.failures = failures

    def __call__(self) -> Session:
        session = self.sessions()
        commit = session.commit

        def failing() -> None:
            if self.failures > 0:
                self.failures -= 1
                raise OperationalError("COMMIT", {}, Exception("database is locked"))
            commit()

        session.commit = failing  # type: ignore[method-assign]
        return session


def test_a_batch_whose_commit_failed_is_taken_again_whole_and_its_alert_recorded_once(
        sessions: sessionmaker[Session]) -> None:
    stream = Stream()
    batch = [stream.motion("kitchen_pir", T0), *stream.quiet(T0, 5 * 60)]
    flaky = FailingCommits(sessions, failures=1)
    detect = DetectorConsumer(flaky, consumer(sessions).clock)  # type: ignore[arg-type]
    with pytest.raises(OperationalError):
        detect.handle(batch)
    assert alerts(sessions) == [], "nothing committed"
    detect.handle(batch)  # the consumer loop hands the same batch out again
    [alert] = alerts(sessions)
    assert alert.kind == "inactivity" and "No activity since 13:00" in alert.message
    with sessions() as s:
        assert s.get(DetectorCheckpoint, HOME).journal_seq == batch[-1].seq  # type: ignore[union-attr]
