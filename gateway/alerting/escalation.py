"""Moving an alert down its resident's chain, and stopping the chain for everyone.

``escalation_step`` counts steps from 1: the step last alerted. Past the last step it is ``len(chain) + 1``:
everyone in the chain is alerted again at each interval (urgent alerts never go silent).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway.alerting import messages
from gateway.alerting.outbox import alerted, chain, queue, timeline
from gateway.alerting.policy import MIN_REPEAT_MIN, follow_up_priority, policy_for
from gateway.alerting.states import ALERTING, NotificationState, Purpose, ReceiptState
from gateway.db.models import Alert, EscalationStep, Notification
from gateway.logs import about

log = logging.getLogger(__name__)


def start(session: Session, alert: Alert, now: datetime) -> None:
    """Alert the first step of the chain, or say in the timeline that there is nobody to alert."""
    steps = chain(session, alert.resident_id)
    if not steps:
        why = "the home has no resident" if alert.resident_id is None else "the resident has no escalation chain"
        timeline(session, alert, now, "unrouted", f"nobody to notify: {why}")
        log.warning("alert %s (%s, home %s): nobody to notify: %s", alert.id, alert.kind, alert.home_id, why,
                    extra=about(home=alert.home_id, alert_id=alert.id))
        alert.next_escalation_at = None
        return
    _alert_step(session, alert, steps, 1, Purpose.ALERT, alert.message, now)


def advance(session: Session, alert: Alert, now: datetime, why: str) -> None:
    """The current step did not answer (or could not be reached): alert the next, or repeat, or stop."""
    steps = chain(session, alert.resident_id)
    policy = policy_for(alert.kind, alert.severity)
    step = alert.escalation_step + 1
    if step <= len(steps):
        text = messages.escalation_message(session, alert, now)
        _alert_step(session, alert, steps, step, Purpose.ESCALATION, text, now)
        timeline(session, alert, now, "escalated", f"{why}; step {step}: {steps[step - 1].recipient.name}")
    elif policy.repeat and steps:
        text = messages.escalation_message(session, alert, now)
        title = messages.title(session, alert)
        for i, s in enumerate(steps, 1):
            queue(session, alert, s.recipient, step=i, purpose=Purpose.REPEAT, priority=policy.priority,
                  title=title, message=text, now=now)
        alert.escalation_step = len(steps) + 1
        alert.next_escalation_at = now + timedelta(minutes=max(steps[-1].wait_min, MIN_REPEAT_MIN))
        timeline(session, alert, now, "repeated", f"{why}; chain exhausted, alerting everyone in it again")
        log.warning("alert %s (%s, home %s): nobody has acknowledged; alerting the whole chain again",
                    alert.id, alert.kind, alert.home_id, extra=about(home=alert.home_id, alert_id=alert.id))
    else:
        alert.next_escalation_at = None
        timeline(session, alert, now, "exhausted", f"{why}; nobody further in the chain")
        log.warning("alert %s (%s, home %s): chain exhausted", alert.id, alert.kind, alert.home_id,
                    extra=about(home=alert.home_id, alert_id=alert.id))


def realert(session: Session, alert: Alert, now: datetime) -> None:
    """The alert became more severe: alert the current step again at the new priority, timer restarted."""
    steps = chain(session, alert.resident_id)
    if steps:
        step = min(max(alert.escalation_step, 1), len(steps))
        _alert_step(session, alert, steps, step, Purpose.ALERT, alert.message, now)


def stop(session: Session, alert: Alert, now: datetime, *, purpose: str, by: str, note: str | None,
         exclude_recipient_id: int | None = None) -> None:
    """Acknowledged or resolved: no further steps, no pending alerts, emergency receipts to cancel, and everyone
    already alerted is told (except the one who did it)."""
    alert.next_escalation_at = None
    cancelled = session.execute(  # an UPDATE's result says how many rows it changed
        update(Notification).where(Notification.alert_id == alert.id, Notification.state == NotificationState.PENDING,
                                   Notification.purpose.in_(ALERTING))
        .values(state=NotificationState.CANCELLED, next_attempt_at=None)).rowcount  # type: ignore[attr-defined]
    if cancelled:
        timeline(session, alert, now, "cancelled", f"{cancelled} alert message(s) not sent: no longer needed")
    session.execute(update(Notification).where(Notification.alert_id == alert.id,
                                               Notification.receipt_state == ReceiptState.OPEN)
                    .values(receipt_state=ReceiptState.CANCEL, receipt_checked_at=None))
    alert_title = messages.title(session, alert)
    if purpose == Purpose.ACKNOWLEDGED:
        title, text = messages.acknowledged_message(alert_title, by, note)
    else:
        title, text = messages.resolved_message(alert_title, by, note)
    priority = follow_up_priority(alert.kind, alert.severity)
    for recipient in alerted(session, alert):
        if recipient.id != exclude_recipient_id:
            queue(session, alert, recipient, step=alert.escalation_step, purpose=purpose, priority=priority,
                  title=title, message=text, now=now)


def _alert_step(session: Session, alert: Alert, steps: list[EscalationStep], step: int, purpose: str,
                text: str, now: datetime) -> None:
    policy = policy_for(alert.kind, alert.severity)
    s = steps[step - 1]
    queue(session, alert, s.recipient, step=step, purpose=purpose, priority=policy.priority,
          title=messages.title(session, alert), message=text, now=now)
    alert.escalation_step = step
    alert.next_escalation_at = (now + timedelta(minutes=s.wait_min * policy.wait_factor)
                                if policy.escalate else None)
