"""What recipients read: titles, the history of who was tried, follow-ups. Pure text from rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.alerting.policy import label, severity_name
from gateway.alerting.states import ALERTING, NotificationState
from gateway.db.models import Alert, Notification, Recipient, Resident

PUSHOVER_MAX_TITLE = 250
PUSHOVER_MAX_MESSAGE = 1024


def who(session: Session, alert: Alert) -> str:
    resident = session.get(Resident, alert.resident_id) if alert.resident_id is not None else None
    return f"{resident.name} ({alert.home_id})" if resident is not None else f"home {alert.home_id}"


def title(session: Session, alert: Alert) -> str:
    subject = f" [{alert.subject}]" if alert.subject else ""
    return f"{severity_name(alert.severity)}: {label(alert.kind)}{subject} — {who(session, alert)}"


def history(session: Session, alert: Alert, now: datetime) -> str:
    """``Anne (15 min, no answer), Bob (could not be reached: user key is invalid)``: each person asked so far,
    how long ago they were first asked, and whether their message failed."""
    rows = session.execute(
        select(Notification, Recipient.name).join(Recipient, Recipient.id == Notification.recipient_id)
        .where(Notification.alert_id == alert.id, Notification.purpose.in_(ALERTING))
        .order_by(Notification.id)).all()
    first: dict[str, datetime] = {}
    last: dict[str, Notification] = {}
    for n, name in rows:
        first.setdefault(name, n.created_at)
        last[name] = n
    parts = []
    for name, since in first.items():
        n = last[name]
        if n.state == NotificationState.FAILED:
            parts.append(f"{name} (could not be reached: {n.last_error})")
        elif n.state == NotificationState.PENDING:
            parts.append(f"{name} (not delivered yet: {n.last_error or 'waiting'})")
        else:
            minutes = round((now - since).total_seconds() / 60)
            parts.append(f"{name} ({minutes} min, no answer)")
    return ", ".join(parts)


def escalation_message(session: Session, alert: Alert, now: datetime) -> str:
    tried = history(session, alert, now)
    return f"{alert.message}\nNobody has acknowledged yet — tried: {tried}." if tried else alert.message


def acknowledged_message(alert_title: str, by: str, note: str | None) -> tuple[str, str]:
    return f"Acknowledged by {by}: {alert_title}", f"{by} is dealing with it." + (f" {note}" if note else "")


def resolved_message(alert_title: str, by: str, note: str | None) -> tuple[str, str]:
    if by == "auto":
        return f"Resolved: {alert_title}", note or "The condition is over."
    return f"Resolved by {by}: {alert_title}", note or f"{by} marked it resolved."


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
