"""Outcomes: recorded on resolving or afterwards, corrected, and handed to the detectors once (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertKind, Outcome, Severity
from gateway.alerting.errors import AlertAlreadyResolved, AlertNotFound, OutcomeRefused
from gateway.alerting.outcomes import label, mark_fed, parse_outcome, pending_feedback
from gateway.alerting.service import AUTO, record_outcome, resolve
from gateway.db.models import Notification
from tests.alerting.conftest import HOME, Clock, World
from tests.alerting.helpers import alert, apply, event, timeline


def _raised(sessions: sessionmaker[Session], clock: Clock, kind: AlertKind = AlertKind.INACTIVITY) -> int:
    [alert_id] = apply(sessions, clock, event(kind=kind, clock=clock))
    return alert_id


def _cleared(sessions: sessionmaker[Session], clock: Clock) -> int:
    """An inactivity alert that cleared by itself: activity resumed before anyone went."""
    alert_id = _raised(sessions, clock)
    clock.advance(minutes=20)
    apply(sessions, clock, event(Action.CLEAR, clock=clock, message="Movement in the kitchen at 09:20"))
    return alert_id


def test_resolving_with_an_outcome_records_it_and_tells_those_alerted(
        sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    alert_id = _raised(sessions, clock)
    with sessions.begin() as s:  # the first step's message went out
        for n in s.scalars(select(Notification)):
            n.state = "sent"
    now = clock.advance(minutes=30)
    with sessions.begin() as s:
        resolve(s, alert_id, "Anne", "Asleep in the garden chair", now, outcome=Outcome.FALSE_ALARM)
    a = alert(sessions, alert_id)
    assert (a.state, a.outcome, a.outcome_by, a.outcome_at, a.outcome_note) == (
        "resolved", "false_alarm", "Anne", now, "Asleep in the garden chair")
    assert a.resolution_note == "Asleep in the garden chair" and a.outcome_learned_at is None
    assert timeline(sessions, alert_id)[-2:] == [("resolved", "Anne", "Asleep in the garden chair"),
                                                 ("outcome", "Anne", "false_alarm: Asleep in the garden chair")]
    with sessions() as s:
        told = s.scalars(select(Notification).where(Notification.purpose == "resolved")).one()
    assert told.message == "False alarm: the resident was fine. Asleep in the garden chair"


def test_resolving_without_an_outcome_leaves_it_unrecorded(sessions: sessionmaker[Session], clock: Clock,
                                                           world: World) -> None:
    alert_id = _raised(sessions, clock)
    with sessions.begin() as s:
        resolve(s, alert_id, "Anne", "Seen", clock.now())
    assert alert(sessions, alert_id).outcome is None
    assert "outcome" not in [w for w, _, _ in timeline(sessions, alert_id)]
    with sessions() as s:
        assert pending_feedback(s) == []


def test_an_outcome_on_an_alert_that_cleared_by_itself_then_corrected(
        sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    alert_id = _cleared(sessions, clock)
    assert alert(sessions, alert_id).resolved_by == AUTO
    now = clock.advance(minutes=40)
    with sessions.begin() as s:
        record_outcome(s, alert_id, Outcome.FALSE_ALARM, "Anne", "She was reading upstairs", now)
    a = alert(sessions, alert_id)
    assert (a.outcome, a.outcome_by, a.outcome_note) == ("false_alarm", "Anne", "She was reading upstairs")
    assert a.resolution_note == "Movement in the kitchen at 09:20"  # the detector's word is kept
    later = clock.advance(minutes=5)
    with sessions.begin() as s:
        record_outcome(s, alert_id, Outcome.FALL, "Cora", "She had slipped; got up by herself", later)
    a = alert(sessions, alert_id)
    assert (a.outcome, a.outcome_by, a.outcome_at) == ("fall", "Cora", later)
    assert timeline(sessions, alert_id)[-2:] == [
        ("outcome", "Anne", "false_alarm: She was reading upstairs"),
        ("outcome corrected", "Cora", "false_alarm → fall: She had slipped; got up by herself")]
    with sessions.begin() as s:  # said again (a retried request): no new line
        record_outcome(s, alert_id, Outcome.FALL, "Cora", "She had slipped; got up by herself", later)
    assert [w for w, _, _ in timeline(sessions, alert_id)].count("outcome corrected") == 1
    with sessions() as s:
        assert not s.scalars(select(Notification).where(Notification.purpose == "resolved",
                                                        Notification.created_at >= now)).all()


def test_outcomes_are_refused_on_open_alerts_notices_and_unknown_ids(
        sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    open_id = _raised(sessions, clock)
    [notice_id] = apply(sessions, clock, event(Action.NOTICE, AlertKind.RETURNED, Severity.INFO, clock=clock))
    with sessions.begin() as s, pytest.raises(OutcomeRefused, match=r"still open .*resolve it"):
        record_outcome(s, open_id, Outcome.FALSE_ALARM, "Anne", None, clock.now())
    with sessions.begin() as s, pytest.raises(OutcomeRefused, match="notice"):
        record_outcome(s, notice_id, Outcome.FALSE_ALARM, "Anne", None, clock.now())
    with sessions.begin() as s, pytest.raises(AlertNotFound):
        record_outcome(s, 4242, Outcome.FALSE_ALARM, "Anne", None, clock.now())
    with sessions.begin() as s, pytest.raises(ValueError):
        record_outcome(s, notice_id, "earthquake", "Anne", None, clock.now())  # type: ignore[arg-type]
    with sessions.begin() as s:
        resolve(s, open_id, "Anne", "ok", clock.now(), outcome=Outcome.OUT)
    with sessions.begin() as s, pytest.raises(AlertAlreadyResolved, match="as its outcome instead"):
        resolve(s, open_id, "Bob", "again", clock.now(), outcome=Outcome.OUT)
    assert alert(sessions, notice_id).outcome is None


def test_pending_feedback_is_handed_out_once(sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    cleared = _cleared(sessions, clock)
    fallen = _raised(sessions, clock)
    still_open = _raised(sessions, clock, AlertKind.NOT_UP)
    with sessions.begin() as s:
        record_outcome(s, cleared, Outcome.FALSE_ALARM, "Anne", None, clock.now())
        resolve(s, fallen, "Bob", "On the bathroom floor", clock.now(), outcome=Outcome.FALL)
    with sessions() as s:
        pending = pending_feedback(s)
    assert [(p.alert_id, p.home, p.kind, p.outcome, p.previously_fed) for p in pending] == [
        (cleared, HOME, "inactivity", Outcome.FALSE_ALARM, None), (fallen, HOME, "inactivity", Outcome.FALL, None)]
    assert pending[0].details == {"since_ms": 1} and pending[0].raised_at_ms == pending[0].raised_at.timestamp() * 1000
    assert still_open not in {p.alert_id for p in pending}
    fed_at = clock.advance(minutes=1)
    with sessions.begin() as s:
        assert mark_fed(s, pending, fed_at) == 2
    with sessions() as s:
        assert pending_feedback(s) == []
    a = alert(sessions, cleared)
    assert (a.outcome_learned_at, a.outcome_learned) == (fed_at, "false_alarm")
    with sessions.begin() as s:
        assert mark_fed(s, [cleared], clock.now()) == 0  # once only


def test_a_correction_after_learning_is_handed_out_again_with_what_was_given(
        sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    alert_id = _cleared(sessions, clock)
    with sessions.begin() as s:
        record_outcome(s, alert_id, Outcome.FALSE_ALARM, "Anne", None, clock.now())
    with sessions.begin() as s:
        mark_fed(s, pending_feedback(s), clock.now())
    with sessions.begin() as s:
        record_outcome(s, alert_id, Outcome.FALSE_ALARM, "Anne", "a better note", clock.now())
        assert pending_feedback(s) == []  # the same outcome: nothing new for the detectors
        record_outcome(s, alert_id, Outcome.UNWELL, "Anne", "she was poorly after all", clock.now())
        [again] = pending_feedback(s)
    assert (again.outcome, again.previously_fed) == (Outcome.UNWELL, Outcome.FALSE_ALARM)
    with sessions.begin() as s:  # corrected back before the detectors saw it: they already have it
        record_outcome(s, alert_id, Outcome.FALSE_ALARM, "Anne", "no, she was fine", clock.now())
        assert pending_feedback(s) == []


def test_a_correction_between_reading_and_marking_stays_pending(
        sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    alert_id = _cleared(sessions, clock)
    with sessions.begin() as s:
        record_outcome(s, alert_id, Outcome.FALSE_ALARM, "Anne", None, clock.now())
    with sessions() as s:
        read = pending_feedback(s)
    with sessions.begin() as s:  # the carer corrects it while the detectors are learning the first one
        record_outcome(s, alert_id, Outcome.FALL, "Anne", None, clock.now())
    with sessions.begin() as s:
        assert mark_fed(s, read, clock.now()) == 0
        [pending] = pending_feedback(s)
    assert pending.outcome is Outcome.FALL


def test_the_vocabulary_in_words_and_parsed() -> None:
    assert [o.value for o in Outcome] == ["false_alarm", "fall", "unwell", "out", "sensor_problem", "other"]
    assert all(label(o) and label(o) != o.value for o in Outcome)
    assert parse_outcome(" False_Alarm ") is Outcome.FALSE_ALARM
    with pytest.raises(ValueError, match="unknown outcome 'fine': it is one of false_alarm, fall, unwell"):
        parse_outcome("fine")
