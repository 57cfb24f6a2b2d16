"""Acknowledging and resolving an alert, and recording what was found: what a person does (through the API, the
dashboard, the CLI, or a Pushover receipt).

All work within the caller's transaction (the caller commits) and lock the alert's row, so a receipt poll and an
API call acknowledging at once cannot both win.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.alerts import AlertKind, Outcome
from gateway.alerting import escalation
from gateway.alerting.errors import AlertAlreadyAcknowledged, AlertAlreadyResolved, AlertNotFound, OutcomeRefused
from gateway.alerting.outbox import timeline
from gateway.alerting.outcomes import label, parse_outcome
from gateway.alerting.states import AlertState, Purpose
from gateway.db.models import NAME_LEN, Alert

__all__ = ["AUTO", "acknowledge", "locked_alert", "record_outcome", "resolve"]

AUTO = "auto"  # resolved_by when the condition ended by itself (activity resumed, hub back ...)


def acknowledge(session: Session, alert_id: int, by: str, note: str | None, now: datetime, *,
                recipient_id: int | None = None) -> Alert:
    """``by`` is dealing with the alert: the chain stops for everyone, the others are told who.

    ``recipient_id`` (when the acknowledgement came from a recipient's Pushover receipt) is not told his own news.
    Raises :class:`AlertNotFound`, :class:`AlertAlreadyResolved` or :class:`AlertAlreadyAcknowledged`.
    """
    alert = locked_alert(session, alert_id)
    if alert.state == AlertState.RESOLVED:
        raise AlertAlreadyResolved(f"alert {alert_id} was resolved at {alert.resolved_at:%Y-%m-%d %H:%M} UTC")
    if alert.state == AlertState.ACKNOWLEDGED:
        raise AlertAlreadyAcknowledged(
            f"alert {alert_id} was acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at:%H:%M} UTC")
    by = _name(by)
    alert.state, alert.acknowledged_at, alert.acknowledged_by, alert.updated_at = AlertState.ACKNOWLEDGED, now, by, now
    timeline(session, alert, now, "acknowledged", note or "", who=by)
    escalation.stop(session, alert, now, purpose=Purpose.ACKNOWLEDGED, by=by, note=note,
                    exclude_recipient_id=recipient_id)
    return alert


def resolve(session: Session, alert_id: int, by: str, note: str | None, now: datetime, *,
            outcome: Outcome | None = None, recipient_id: int | None = None) -> Alert:
    """The alert is over: resolved by a person (with a note, and what they found), or by ``"auto"`` when the
    condition ended. Whoever was alerted is told, the outcome included. Raises :class:`AlertNotFound` or
    :class:`AlertAlreadyResolved`."""
    outcome = parse_outcome(outcome) if outcome is not None else None
    alert = locked_alert(session, alert_id)
    if alert.state == AlertState.RESOLVED:
        raise AlertAlreadyResolved(f"alert {alert_id} was resolved already, by {alert.resolved_by}"
                                   + ("; record what was found as its outcome instead" if outcome else ""))
    by = _name(by)
    alert.state, alert.resolved_at, alert.resolved_by, alert.resolution_note = AlertState.RESOLVED, now, by, note
    alert.updated_at = now
    timeline(session, alert, now, "cleared" if by == AUTO else "resolved", note or "", who=by)
    if outcome is not None:
        _set_outcome(session, alert, outcome, by, note, now)
    told = f"{label(outcome)}. {note or ''}".strip() if outcome is not None else note
    escalation.stop(session, alert, now, purpose=Purpose.RESOLVED, by=by, note=told, exclude_recipient_id=recipient_id)
    return alert


def record_outcome(session: Session, alert_id: int, outcome: Outcome, by: str, note: str | None,
                   now: datetime) -> Alert:
    """What was found, on an alert already resolved: one that cleared by itself (activity resumed) and that a
    carer went to see, or a correction of an outcome recorded before. Nobody is messaged; the timeline says it.
    Raises :class:`AlertNotFound`, or :class:`OutcomeRefused` for an open alert or a notice."""
    outcome, by = parse_outcome(outcome), _name(by)
    alert = locked_alert(session, alert_id)
    if alert.kind == AlertKind.RETURNED:
        raise OutcomeRefused(f"alert {alert_id} is a notice (the resident is back), not an alert: it has no outcome")
    if alert.state != AlertState.RESOLVED:
        raise OutcomeRefused(f"alert {alert_id} is still open ({alert.state}): resolve it, with its outcome")
    if alert.outcome == outcome and alert.outcome_note == note:
        return alert  # said again (a retried request): nothing new
    _set_outcome(session, alert, outcome, by, note, now)
    return alert


def _set_outcome(session: Session, alert: Alert, outcome: Outcome, by: str, note: str | None,
                 now: datetime) -> None:
    previous = alert.outcome
    alert.outcome, alert.outcome_note, alert.outcome_by, alert.outcome_at = outcome.value, note, by, now
    alert.updated_at = now
    # The detectors are given each outcome once: a different one than they were given is pending again (they are
    # told what they had); going back to the one they were given needs nothing more.
    if outcome.value != alert.outcome_learned:
        alert.outcome_learned_at = None
    elif alert.outcome_learned_at is None:
        alert.outcome_learned_at = now
    said = f": {note}" if note else ""
    if previous is None:
        timeline(session, alert, now, "outcome", f"{outcome.value}{said}", who=by)
    else:
        timeline(session, alert, now, "outcome corrected", f"{previous} → {outcome.value}{said}", who=by)


def locked_alert(session: Session, alert_id: int) -> Alert:
    """The alert, its row locked until the caller's transaction ends (read afresh), or :class:`AlertNotFound`."""
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
