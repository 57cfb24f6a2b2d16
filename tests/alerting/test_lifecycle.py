"""Raise → notify → escalate → acknowledge → resolve, against a local Pushover server, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertKind, Severity
from bench.pushover_server import PushoverServer
from gateway.alerting.service import acknowledge
from gateway.db.models import Alert
from tests.alerting.conftest import ANNE_KEY, BOB_KEY, COUNCIL_KEY, Clock, World
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


def test_raise_is_persisted_before_sending_then_notifies_step_one(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    [alert_id] = apply(sessions, clock, event(clock=clock))
    # Committed with its outbox row before any attempt: nothing is lost if sending fails or the gateway stops.
    [pending] = notifications(sessions, alert_id)
    assert (pending.state, pending.recipient_id, pending.purpose, pending.step) == ("pending", world.anne, "alert", 1)
    assert alert(sessions, alert_id).state == "raised"

    pushover.fail_next(1, 503)
    d = pushover_dispatcher(sessions, pushover, clock)
    d.run_once()
    [still] = notifications(sessions, alert_id)
    assert still.state == "pending" and still.attempts == 1 and "503" in (still.last_error or "")
    assert pushover.messages == []

    clock.advance(seconds=5)
    d.run_once()
    [anne] = sent_to(pushover, ANNE_KEY)
    assert anne["priority"] == "2" and anne["retry"] == "60" and anne["expire"] == "3600"
    assert "Mrs Jones" in anne["title"] and "No movement since 06:10" in anne["message"]
    a = alert(sessions, alert_id)
    assert a.state == "notified" and a.escalation_step == 1
    assert [n.state for n in notifications(sessions, alert_id)] == ["sent"]


def test_a_repeat_updates_the_open_alert_without_notifying_again(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d, first = raised_and_sent(sessions, pushover, clock)
    clock.advance(minutes=5)
    [again] = apply(sessions, clock, event(clock=clock, message="No movement since 06:10 (3 h 55 min)"))
    d.run_once()
    assert again == first
    a = alert(sessions, first)
    assert a.repeat_count == 1 and a.message.endswith("(3 h 55 min)")
    assert len(pushover.messages) == 1 and len(notifications(sessions, first)) == 1
    with sessions() as s:
        assert len(s.scalars(select(Alert)).all()) == 1


def test_no_answer_escalates_with_history_then_a_receipt_stops_the_chain(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d, alert_id = raised_and_sent(sessions, pushover, clock)
    clock.advance(minutes=14)
    d.run_once()
    assert sent_to(pushover, BOB_KEY) == []

    clock.advance(minutes=1)
    d.run_once()
    [bob] = sent_to(pushover, BOB_KEY)
    assert "tried: Anne (15 min, no answer)" in bob["message"]
    assert ("escalated", None, "no answer; step 2: Bob") in timeline(sessions, alert_id)

    # Bob acknowledges on his phone; the next receipt poll learns it.
    bob_receipt = next(n.receipt for n in notifications(sessions, alert_id) if n.recipient_id == world.bob)
    anne_receipt = next(n.receipt for n in notifications(sessions, alert_id) if n.recipient_id == world.anne)
    assert bob_receipt and anne_receipt
    pushover.acknowledge(bob_receipt, by_user=BOB_KEY)
    clock.advance(seconds=10)
    d.run_once()
    a = alert(sessions, alert_id)
    assert (a.state, a.acknowledged_by, a.next_escalation_at) == ("acknowledged", "Bob", None)
    assert pushover.receipts[anne_receipt].cancelled  # Anne's phone stops ringing
    told = sent_to(pushover, ANNE_KEY)[-1]
    assert told["title"].startswith("Acknowledged by Bob") and told["priority"] == "0"
    assert len(sent_to(pushover, BOB_KEY)) == 1  # not told his own news

    clock.advance(minutes=120)
    d.run_once()
    assert sent_to(pushover, COUNCIL_KEY) == []
    assert len(pushover.messages) == 3
    whats = [w for w, _, _ in timeline(sessions, alert_id)]
    assert whats.count("acknowledged") == 1 and "receipt cancelled" in whats


def test_clear_resolves_and_tells_everyone_alerted(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d, alert_id = raised_and_sent(sessions, pushover, clock)
    clock.advance(minutes=15)
    d.run_once()
    clock.advance(minutes=3)
    apply(sessions, clock, event(Action.CLEAR, clock=clock, message="Activity again at 09:33 (kitchen)"))
    d.run_once()
    a = alert(sessions, alert_id)
    assert (a.state, a.resolved_by, a.resolution_note) == ("resolved", "auto", "Activity again at 09:33 (kitchen)")
    for key in (ANNE_KEY, BOB_KEY):
        resolved = sent_to(pushover, key)[-1]
        assert resolved["title"].startswith("Resolved:") and "Activity again" in resolved["message"]
    assert sent_to(pushover, COUNCIL_KEY) == []
    assert all(r.cancelled for r in pushover.receipts.values())
    assert ("cleared", "auto", "Activity again at 09:33 (kitchen)") in timeline(sessions, alert_id)

    # Nothing more, ever; and the next time it happens it is a new alert.
    clock.advance(minutes=60)
    d.run_once()
    assert len(pushover.messages) == 4
    [second] = apply(sessions, clock, event(clock=clock))
    assert second != alert_id


def test_acknowledge_through_the_service_stops_the_chain(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d, alert_id = raised_and_sent(sessions, pushover, clock)
    clock.advance(minutes=15)
    d.run_once()
    with sessions.begin() as s:
        acknowledge(s, alert_id, "Carol (coordinator)", "phoned her, she is fine", clock.now())
    d.wake()
    d.run_once()
    assert all(r.cancelled for r in pushover.receipts.values())
    for key in (ANNE_KEY, BOB_KEY):
        assert sent_to(pushover, key)[-1]["title"].startswith("Acknowledged by Carol (coordinator)")
    clock.advance(minutes=90)
    d.run_once()
    assert len(pushover.messages) == 4
    assert ("acknowledged", "Carol (coordinator)", "phoned her, she is fine") in timeline(sessions, alert_id)


def test_a_worse_repeat_realerts_the_current_step(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d, alert_id = raised_and_sent(sessions, pushover, clock, event(severity=Severity.WARNING, clock=clock))
    assert sent_to(pushover, ANNE_KEY)[0]["priority"] == "0"
    apply(sessions, clock, event(severity=Severity.URGENT, clock=clock))
    d.run_once()
    assert [m["priority"] for m in sent_to(pushover, ANNE_KEY)] == ["0", "2"]
    assert alert(sessions, alert_id).severity == Severity.URGENT
    clock.advance(minutes=15)  # the urgent pace now, not the warning's
    d.run_once()
    assert len(sent_to(pushover, BOB_KEY)) == 1


def test_device_kinds_keep_their_own_alert_per_device(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    ids = apply(sessions, clock,
                event(kind=AlertKind.LOW_BATTERY, severity=Severity.LOW, subject="kitchen_motion", clock=clock),
                event(kind=AlertKind.LOW_BATTERY, severity=Severity.LOW, subject="front_door", clock=clock))
    assert len(set(ids)) == 2


def test_the_database_refuses_a_second_open_alert_for_one_key(
        sessions: sessionmaker[Session], clock: Clock, world: World) -> None:
    [alert_id] = apply(sessions, clock, event(clock=clock))
    original = alert(sessions, alert_id)
    duplicate = {c: getattr(original, c) for c in ("home_id", "kind", "subject", "severity", "message", "details",
                                                   "raised_at", "updated_at", "repeat_count", "escalation_step")}
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(Alert(**duplicate, state="notified"))
    with sessions.begin() as s:  # a resolved one beside the open one is history, and fine
        s.add(Alert(**duplicate, state="resolved"))
