"""Who is told what, how loudly, and when the chain moves: per kind and severity (docs/alerting.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertKind, Severity
from bench.pushover_server import PushoverServer
from gateway.alerting import people
from gateway.alerting.errors import AlertAlreadyAcknowledged, AlertAlreadyResolved, AlertNotFound
from gateway.alerting.policy import policy_for
from gateway.alerting.service import acknowledge, resolve
from gateway.db.models import Home
from tests.alerting.conftest import ANNE_KEY, BOB_KEY, COUNCIL_KEY, T0, Clock, World
from tests.alerting.helpers import (
    alert,
    apply,
    event,
    notifications,
    pushover_dispatcher,
    raised_and_sent,
    sent_to,
    timeline,
)

pytest_plugins = ["tests.conftest_pushover"]


@pytest.mark.parametrize(("kind", "severity", "priority", "escalates"), [
    (AlertKind.PENDANT, Severity.EMERGENCY, 2, True),
    (AlertKind.INACTIVITY, Severity.URGENT, 2, True),
    (AlertKind.NOT_UP, Severity.WARNING, 0, True),
    (AlertKind.ACTIVITY_DECLINE, Severity.LOW, 0, False),
    (AlertKind.RETURNED, Severity.INFO, -1, False),
    (AlertKind.HUB_OFFLINE, Severity.URGENT, 0, False),
    (AlertKind.LOW_BATTERY, Severity.LOW, 0, False),
])
def test_priorities(kind: AlertKind, severity: Severity, priority: int, escalates: bool) -> None:
    policy = policy_for(kind, severity)
    assert (policy.priority, policy.escalate) == (priority, escalates)


def test_device_health_tells_the_first_step_and_never_escalates(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    [alert_id] = apply(sessions, clock, event(kind=AlertKind.HUB_OFFLINE, severity=Severity.URGENT,
                                              subject="hub", clock=clock))
    d.run_once()
    [anne] = pushover.messages
    assert anne["priority"] == "0" and "[hub]" in anne["title"]
    clock.advance(minutes=600)
    d.run_once()
    assert len(pushover.messages) == 1
    assert alert(sessions, alert_id).next_escalation_at is None


def test_device_health_goes_to_the_first_reachable_step(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    pushover.users.discard(ANNE_KEY)
    apply(sessions, clock, event(kind=AlertKind.LOW_BATTERY, severity=Severity.LOW, subject="door", clock=clock))
    d.run_once()
    assert [m["user"] for m in pushover.messages] == [BOB_KEY]


def test_a_notice_is_recorded_resolved_and_told_quietly(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    [alert_id] = apply(sessions, clock, event(Action.NOTICE, AlertKind.RETURNED, Severity.INFO, clock=clock,
                                              message="Back home at 14:05 after the planned absence"))
    d.run_once()
    a = alert(sessions, alert_id)
    assert (a.state, a.resolved_by) == ("resolved", "auto")
    [anne] = pushover.messages
    assert anne["user"] == ANNE_KEY and anne["priority"] == "-1"
    assert [w for w, _, _ in timeline(sessions, alert_id)] == ["notice", "notified"]


def test_a_warning_escalates_four_times_slower_and_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d, alert_id = raised_and_sent(sessions, pushover, clock,
                                  event(kind=AlertKind.NOT_UP, severity=Severity.WARNING, clock=clock))
    clock.advance(minutes=59)
    d.run_once()
    assert sent_to(pushover, BOB_KEY) == []
    clock.advance(minutes=1)
    d.run_once()
    assert len(sent_to(pushover, BOB_KEY)) == 1
    clock.advance(minutes=60)
    d.run_once()
    assert len(sent_to(pushover, COUNCIL_KEY)) == 1
    clock.advance(minutes=600)
    d.run_once()
    assert len(pushover.messages) == 3
    assert timeline(sessions, alert_id)[-1][0] == "exhausted"


def test_an_urgent_alert_never_goes_silent(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d, alert_id = raised_and_sent(sessions, pushover, clock)
    clock.advance(minutes=15)
    d.run_once()
    clock.advance(minutes=15)
    d.run_once()
    assert len(pushover.messages) == 3
    clock.advance(minutes=30)  # the council's wait is over: everyone again
    d.run_once()
    assert len(pushover.messages) == 6
    last = pushover.messages[-1]["message"]
    assert "Anne (60 min, no answer), Bob (45 min, no answer), Council (30 min, no answer)" in last
    clock.advance(minutes=30)  # ... and again at the last step's interval
    d.run_once()
    assert len(pushover.messages) == 9
    assert [w for w, _, _ in timeline(sessions, alert_id)].count("repeated") == 2
    with sessions.begin() as s:
        resolve(s, alert_id, "Carol (coordinator)", "ambulance called", clock.now())
    clock.advance(minutes=30)
    d.run_once()
    assert len(pushover.messages) == 12  # the three told it is resolved; nothing more
    assert all(m["title"].startswith("Resolved by Carol") for m in pushover.messages[-3:])
    assert all(r.cancelled for r in pushover.receipts.values())


def test_without_a_resident_the_alert_is_kept_and_says_nobody_was_told(
        sessions: sessionmaker[Session], clock: Clock, pushover: PushoverServer,
        caplog: pytest.LogCaptureFixture) -> None:
    [alert_id] = apply(sessions, clock, event(home="h-new", clock=clock))
    with sessions() as s:
        assert s.get(Home, "h-new") is not None  # tolerated: created
    assert timeline(sessions, alert_id)[-1] == ("unrouted", None, "nobody to notify: the home has no resident")
    [line] = [r for r in caplog.records if "nobody to notify" in r.getMessage()]
    assert (line.home, line.alert_id) == ("h-new", alert_id), "the line carries what it is about (gateway.logs)"  # type: ignore[attr-defined]
    assert notifications(sessions) == []

    # Once a resident and a chain exist, the next repeat routes it.
    with sessions.begin() as s:
        people.add_resident(s, "h-new", "Mr Smith")
        anne = people.add_recipient(s, "Anne", ANNE_KEY)
        people.set_chain(s, "h-new", [(anne.id, 10)])
    apply(sessions, clock, event(home="h-new", clock=clock))
    d = pushover_dispatcher(sessions, pushover, clock)
    d.run_once()
    assert [m["user"] for m in pushover.messages] == [ANNE_KEY]
    assert "Mr Smith" in pushover.messages[0]["title"]


def test_service_errors(sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    [alert_id] = apply(sessions, clock, event(clock=clock))
    with sessions.begin() as s, pytest.raises(AlertNotFound):
        acknowledge(s, alert_id + 100, "Anne", None, clock.now())
    with sessions.begin() as s:
        acknowledge(s, alert_id, "Anne", None, clock.now())
    with sessions.begin() as s, pytest.raises(AlertAlreadyAcknowledged, match="by Anne"):
        acknowledge(s, alert_id, "Bob", None, clock.now())
    with sessions.begin() as s:
        resolve(s, alert_id, "Anne", "she had gone out", clock.now())
    for fn in (acknowledge, resolve):
        with sessions.begin() as s, pytest.raises(AlertAlreadyResolved):
            fn(s, alert_id, "Bob", None, clock.now())
    a = alert(sessions, alert_id)
    assert (a.state, a.resolved_by, a.resolution_note) == ("resolved", "Anne", "she had gone out")


def test_absences_for_the_detectors(sessions: sessionmaker[Session], world: World) -> None:
    with sessions.begin() as s:
        people.add_absence(s, "h1", T0, T0 + timedelta(days=7), "holiday")
        people.add_absence(s, "h1", T0 + timedelta(days=30), None, "hospital")
    with sessions() as s:
        intervals = people.absences_for(s, "h1")
        assert people.absences_for(s, "elsewhere") == []
    start = int(T0.timestamp() * 1000)
    week, month = 7 * 86_400_000, 30 * 86_400_000
    assert intervals == [(start, start + week), (start + month, None)]
    with sessions.begin() as s:
        [open_ended] = s.scalars(select(people.Absence).where(people.Absence.ends_at.is_(None))).all()
        people.end_absence(s, open_ended.id, T0 + timedelta(days=32))
    with sessions() as s:
        assert people.absences_for(s, "h1")[-1] == (start + month, start + 32 * 86_400_000)
