"""A button the gateway discovered, with no role yet, is pressed: the detectors consumer raises an emergency that
goes to the resident's chain at the pendant's priority, worded as unconfirmed (issue 11, finding 5)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting import people
from gateway.clock import SimulatedClock
from gateway.contract import Kind
from gateway.db.models import Alert, Device, Notification
from gateway.detect import DetectorConsumer
from gateway.journal import Entry

HOME = "h1"  # tests/gateway/conftest.py: the simulated home, described, with its resident Mary Jones
T0 = int(datetime(2026, 1, 12, 14, 2, tzinfo=UTC).timestamp() * 1000)  # 14:02 in London


def press(seq: int, device: str, time_ms: int) -> Entry:
    return Entry(seq, str(Kind.STATE), HOME, device, time_ms, time_ms, True, {"action": "single", "battery": 90})


def consumer(sessions: sessionmaker[Session]) -> DetectorConsumer:
    clock = SimulatedClock()
    clock.tick(T0, 1.0)
    return DetectorConsumer(sessions, clock)


def with_chain(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        anne = people.add_recipient(s, "Anne", "a" * 30)
        people.set_chain(s, HOME, [(anne.id, 15)])


def test_a_discovered_button_without_a_role_raises_an_unconfirmed_pendant_emergency(
        sessions: sessionmaker[Session]) -> None:
    with_chain(sessions)
    with sessions.begin() as s:  # as the registry records a device it discovers: its kind, no room, no role
        s.add(Device(home_id=HOME, name="hall_button", kind="button"))
    consumer(sessions).handle([press(1, "hall_button", T0)])
    with sessions() as s:
        [alert] = s.scalars(select(Alert)).all()
        assert (alert.kind, alert.severity, alert.subject, alert.state) == ("pendant", 4, "", "raised")
        assert alert.details["unconfirmed"] is True and alert.details["device"] == "hall_button"
        assert alert.message == ("A button (hall_button) was pressed at 14:02. It is not yet set up, so it may be "
                                 "the pendant: please check on the resident.")
        [sent] = s.scalars(select(Notification).where(Notification.alert_id == alert.id)).all()
        assert sent.priority == 2, "Pushover's emergency priority, as for the pendant: repeated until acknowledged"


def test_a_button_not_yet_in_the_database_is_not_set_up_either(sessions: sessionmaker[Session]) -> None:
    consumer(sessions).handle([press(1, "0x00158d0001a2b3ff", T0)])
    with sessions() as s:
        [alert] = s.scalars(select(Alert)).all()
        assert alert.kind == "pendant" and alert.details["unconfirmed"] is True


def test_the_pendant_set_up_by_its_description_is_as_before(sessions: sessionmaker[Session]) -> None:
    consumer(sessions).handle([press(1, "pendant", T0)])  # the simulated home's pendant, role pendant
    with sessions() as s:
        [alert] = s.scalars(select(Alert)).all()
        assert alert.kind == "pendant" and alert.message.startswith("Pendant pressed at 14:02")
        assert "unconfirmed" not in alert.details
