"""The detectors' events applied to the operational database: raise, repeat, clear, notice.

Runs inside the detector consumer's transaction; the outbox rows it writes are sent by the dispatcher once that
transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.alerts import Action, AlertEvent
from gateway.alerting import escalation, messages
from gateway.alerting.outbox import chain, has_notifications, queue, timeline
from gateway.alerting.policy import policy_for, severity_name
from gateway.alerting.service import AUTO, resolve
from gateway.alerting.states import UNACKNOWLEDGED, AlertState, Purpose
from gateway.db.models import Alert, Home, Resident
from gateway.db.upserts import ensure_homes

__all__ = ["apply_events", "open_alert"]

log = logging.getLogger(__name__)


def apply_events(session: Session, events: Sequence[AlertEvent], now: datetime) -> list[Alert]:
    """Apply ``events`` in order; returns the alerts created or changed (each once). The caller commits."""
    touched: dict[int, Alert] = {}
    for event in events:
        ensure_homes(session, [event.home])  # the registry creates homes as seen: first here only in a replay
        if event.action is Action.RAISE:
            alert: Alert | None = _raise(session, event, now)
        elif event.action is Action.CLEAR:
            alert = _clear(session, event, now)
        else:
            alert = _notice(session, event, now)
        if alert is not None:
            touched.setdefault(alert.id, alert)
    return list(touched.values())


def open_alert(session: Session, home: str, kind: str, subject: str) -> Alert | None:
    return session.scalars(select(Alert).where(Alert.home_id == home, Alert.kind == kind, Alert.subject == subject,
                                               Alert.state != AlertState.RESOLVED).with_for_update()).one_or_none()


def _raise(session: Session, event: AlertEvent, now: datetime) -> Alert:
    alert = open_alert(session, *event.key)
    if alert is not None and alert.organisation_id != _organisation_id(session, event.home):
        # Raised while someone else cared for the home: that alert stays theirs, closed; this is a new one.
        resolve(session, alert.id, AUTO, "the home changed hands: raised again for its new carers", now)
        session.flush()
        alert = None
    if alert is None:
        alert = _new(session, event, now, state=AlertState.RAISED)
        timeline(session, alert, now, "raised", f"{severity_name(event.severity)}: {event.message}")
        escalation.start(session, alert, now)
        return alert
    # A repeat: the same alert, brought up to date. The timeline notes only what changes its handling.
    alert.repeat_count += 1
    alert.updated_at, alert.message, alert.details = now, event.message, dict(event.details)
    if alert.resident_id is None:
        alert.resident_id = _resident_id(session, event.home)
    if event.severity > alert.severity:
        was = alert.severity
        alert.severity = int(event.severity)
        timeline(session, alert, now, "updated", f"severity {severity_name(was)} → {severity_name(event.severity)}")
        if alert.state in UNACKNOWLEDGED:
            escalation.realert(session, alert, now)
    if alert.state == AlertState.RAISED and not has_notifications(session, alert) and chain(session, alert.resident_id):
        escalation.start(session, alert, now)  # a chain was set up since it was raised
    return alert


def _clear(session: Session, event: AlertEvent, now: datetime) -> Alert | None:
    alert = open_alert(session, *event.key)
    if alert is None:
        log.debug("clear for %s with no open alert: ignored", event.key)
        return None
    return resolve(session, alert.id, AUTO, event.message, now)


def _notice(session: Session, event: AlertEvent, now: datetime) -> Alert:
    """A notice (back from a planned absence) is a resolved-at-once record, told quietly to the first step."""
    alert = _new(session, event, now, state=AlertState.RESOLVED)
    alert.resolved_at, alert.resolved_by = now, AUTO
    timeline(session, alert, now, "notice", event.message)
    steps = chain(session, alert.resident_id)
    if not steps:
        timeline(session, alert, now, "unrouted", "nobody to notify")
        return alert
    queue(session, alert, steps[0].recipient, step=1, purpose=Purpose.NOTICE,
          priority=policy_for(alert.kind, alert.severity).priority, title=messages.title(session, alert),
          message=alert.message, now=now)
    return alert


def _new(session: Session, event: AlertEvent, now: datetime, *, state: str) -> Alert:
    # Stamped with the organisation caring for the home now: the alert is its own for good, whoever claims the
    # home later (the API scopes alerts by it, not by the home's current owner).
    alert = Alert(home_id=event.home, resident_id=_resident_id(session, event.home),
                  organisation_id=_organisation_id(session, event.home), kind=str(event.kind),
                  subject=event.subject, severity=int(event.severity), state=state, message=event.message,
                  details=dict(event.details), raised_at=datetime.fromtimestamp(event.at_ms / 1000, UTC),
                  updated_at=now, repeat_count=0, escalation_step=0)
    session.add(alert)
    session.flush()  # the id, for the timeline and the outbox
    return alert


def _resident_id(session: Session, home: str) -> int | None:
    return session.scalar(select(Resident.id).where(Resident.home_id == home))


def _organisation_id(session: Session, home: str) -> int | None:
    return session.scalar(select(Home.organisation_id).where(Home.id == home))


