"""Builders shared by the alerting tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertEvent, AlertKind, Severity
from bench.pushover_server import PushoverServer
from gateway.alerting.dispatcher import Dispatcher
from gateway.alerting.notifiers import Notifier, PushoverNotifier
from gateway.alerting.record import apply_events
from gateway.db.models import Alert, AlertLog, Notification
from gateway.notify.pushover import PushoverClient
from tests.alerting.conftest import ANNE_KEY, BOB_KEY, COUNCIL_KEY, HOME, Clock

TOKEN = "a" * 30


def event(action: Action = Action.RAISE, kind: AlertKind = AlertKind.INACTIVITY,
          severity: Severity = Severity.URGENT, *, clock: Clock, home: str = HOME, subject: str = "",
          message: str = "No movement since 06:10; usually up by 08:00") -> AlertEvent:
    return AlertEvent(action, kind, home, clock.now_ms(), severity, message, subject, {"since_ms": 1})


def apply(sessions: sessionmaker[Session], clock: Clock, *events: AlertEvent) -> list[int]:
    with sessions.begin() as s:
        return [a.id for a in apply_events(s, events, clock.now())]


def pushover_dispatcher(sessions: sessionmaker[Session], server: PushoverServer, clock: Clock,
                        **kwargs: Any) -> Dispatcher:
    server.users |= {ANNE_KEY, BOB_KEY, COUNCIL_KEY}
    return dispatcher(sessions, PushoverNotifier(PushoverClient(server.url, TOKEN, timeout_s=5)), clock, **kwargs)


def raised_and_sent(sessions: sessionmaker[Session], server: PushoverServer, clock: Clock,
                    raised: AlertEvent | None = None) -> tuple[Dispatcher, int]:
    """A dispatcher on the Pushover server, an alert raised (urgent inactivity unless said) and its first step
    sent: where most alerting stories begin."""
    d = pushover_dispatcher(sessions, server, clock)
    [alert_id] = apply(sessions, clock, raised or event(clock=clock))
    d.run_once()
    return d, alert_id


def dispatcher(sessions: sessionmaker[Session], notifier: Notifier, clock: Clock, **kwargs: Any) -> Dispatcher:
    kwargs.setdefault("poll_receipts_every_s", 10)
    return Dispatcher(sessions, notifier, clock, **kwargs)


def sent_to(server: PushoverServer, key: str) -> list[dict[str, str]]:
    return [m for m in server.messages if m["user"] == key]


def alert(sessions: sessionmaker[Session], alert_id: int) -> Alert:
    with sessions() as s:
        a = s.get(Alert, alert_id)
        assert a is not None
        return a


def timeline(sessions: sessionmaker[Session], alert_id: int) -> list[tuple[str, str | None, str]]:
    with sessions() as s:
        return [(r.what, r.who, r.detail) for r in s.scalars(
            select(AlertLog).where(AlertLog.alert_id == alert_id).order_by(AlertLog.id))]


def notifications(sessions: sessionmaker[Session], alert_id: int | None = None) -> list[Notification]:
    with sessions() as s:
        query = select(Notification).order_by(Notification.id)
        if alert_id is not None:
            query = query.where(Notification.alert_id == alert_id)
        return list(s.scalars(query))
