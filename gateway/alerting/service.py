"""Acknowledging and resolving an alert: what a person does (through the API, or a Pushover receipt).

Both work within the caller's transaction (the caller commits) and lock the alert's row, so a receipt poll and an
API call acknowledging at once cannot both win.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.alerting import escalation
from gateway.alerting.errors import AlertAlreadyAcknowledged, AlertAlreadyResolved, AlertNotFound
from gateway.alerting.outbox import ACKNOWLEDGED, ACKNOWLEDGED_MSG, RESOLVED, RESOLVED_MSG, timeline
from gateway.db.models import NAME_LEN, Alert

__all__ = ["AUTO", "acknowledge", "resolve"]

AUTO = "auto"  # resolved_by when the condition ended by itself (activity resumed, hub back ...)


def acknowledge(session: Session, alert_id: int, by: str, note: str | None, now: datetime, *,
                recipient_id: int | None = None) -> Alert:
    """``by`` is dealing with the alert: the chain stops for everyone, the others are told who.

    ``recipient_id`` (when the acknowledgement came from a recipient's Pushover receipt) is not told his own news.
    Raises :class:`AlertNotFound`, :class:`AlertAlreadyResolved` or :class:`AlertAlreadyAcknowledged`.
    """
    alert = _locked(session, alert_id)
    if alert.state == RESOLVED:
        raise AlertAlreadyResolved(f"alert {alert_id} was resolved at {alert.resolved_at:%Y-%m-%d %H:%M} UTC")
    if alert.state == ACKNOWLEDGED:
        raise AlertAlreadyAcknowledged(
            f"alert {alert_id} was acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at:%H:%M} UTC")
    by = _name(by)
    alert.state, alert.acknowledged_at, alert.acknowledged_by, alert.updated_at = ACKNOWLEDGED, now, by, now
    timeline(session, alert, now, "acknowledged", note or "", who=by)
    escalation.stop(session, alert, now, purpose=ACKNOWLEDGED_MSG, by=by, note=note,
                    exclude_recipient_id=recipient_id)
    return alert


def resolve(session: Session, alert_id: int, by: str, note: str | None, now: datetime, *,
            recipient_id: int | None = None) -> Alert:
    """The alert is over: resolved by a person (with a note), or by ``"auto"`` when the condition ended. Whoever
    was alerted is told. Raises :class:`AlertNotFound` or :class:`AlertAlreadyResolved`."""
    alert = _locked(session, alert_id)
    if alert.state == RESOLVED:
        raise AlertAlreadyResolved(f"alert {alert_id} was resolved already, by {alert.resolved_by}")
    by = _name(by)
    alert.state, alert.resolved_at, alert.resolved_by, alert.resolution_note = RESOLVED, now, by, note
    alert.updated_at = now
    timeline(session, alert, now, "cleared" if by == AUTO else "resolved", note or "", who=by)
    escalation.stop(session, alert, now, purpose=RESOLVED_MSG, by=by, note=note, exclude_recipient_id=recipient_id)
    return alert


def _locked(session: Session, alert_id: int) -> Alert:
    alert = session.scalars(select(Alert).where(Alert.id == alert_id).with_for_update()
                            .execution_options(populate_existing=True)).one_or_none()
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return alert


def _name(by: str) -> str:
    by = by.strip()
    if not by:
        raise ValueError("who acknowledged or resolved the alert must be named")
    return by[:NAME_LEN]
