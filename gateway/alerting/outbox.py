"""The alert's timeline and its outbox: rows written in the caller's transaction, sent later by the dispatcher.

Writing the notification in the same transaction as the alert is what makes "persisted before any attempt to
send" hold: the dispatcher only ever sends rows that are committed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.alerting.states import ALERTING, NotificationState
from gateway.db.models import NAME_LEN, Alert, AlertLog, EscalationStep, Notification, Recipient


def timeline(session: Session, alert: Alert, now: datetime, what: str, detail: str = "",
             who: str | None = None) -> None:
    session.add(AlertLog(alert_id=alert.id, at=now, what=what, who=who[:NAME_LEN] if who else None,
                         detail=detail))


def chain(session: Session, resident_id: int | None) -> list[EscalationStep]:
    """The resident's escalation steps, in order (empty without a resident)."""
    if resident_id is None:
        return []
    return list(session.scalars(select(EscalationStep).where(EscalationStep.resident_id == resident_id)
                                .order_by(EscalationStep.position)))


def queue(session: Session, alert: Alert, recipient: Recipient, *, step: int, purpose: str, priority: int,
          title: str, message: str, now: datetime) -> Notification:
    n = Notification(alert_id=alert.id, recipient_id=recipient.id, step=step, purpose=purpose, priority=priority,
                     title=title[:NAME_LEN], message=message, state=NotificationState.PENDING, attempts=0,
                     next_attempt_at=now, created_at=now)
    session.add(n)
    return n


def alerted(session: Session, alert: Alert) -> list[Recipient]:
    """Everyone who was (or is being) asked to act on the alert, in the order they were first asked."""
    rows = session.execute(
        select(Notification.recipient_id).where(
            Notification.alert_id == alert.id, Notification.purpose.in_(ALERTING),
            Notification.state.in_((NotificationState.SENDING, NotificationState.SENT)))
        .order_by(Notification.id)).scalars()
    ids = list(dict.fromkeys(rows))
    recipients = {r.id: r for r in session.scalars(select(Recipient).where(Recipient.id.in_(ids)))}
    return [recipients[i] for i in ids if i in recipients]


def has_notifications(session: Session, alert: Alert) -> bool:
    return session.scalar(select(Notification.id).where(Notification.alert_id == alert.id).limit(1)) is not None
