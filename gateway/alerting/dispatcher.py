"""The dispatcher: sends the outbox, follows emergency receipts and escalates, on the gateway's clock.

Each notification is sent in three steps, each its own transaction around the one slow call:

1. claim: ``pending`` → ``sending`` (attempts + 1), committed;
2. the notifier's call, outside any transaction;
3. the outcome, committed: ``sent`` (with its receipt), ``pending`` again with a back-off (Retry), or ``failed``
   (GiveUp: recorded in the timeline, and the chain moves on at once).

A crash between 1 and 3 leaves the row in ``sending``: the message may or may not have gone. A dispatcher
starting finds such rows and sends them again, noting it in the timeline: delivery is at least once (a carer may
rarely get the same alert twice; an alert is never lost). Only one dispatcher may run per database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting import escalation, service
from gateway.alerting.errors import AlertError
from gateway.alerting.notifiers import Notifier, Outgoing
from gateway.alerting.outbox import (
    ALERT,
    ALERTING,
    ESCALATION,
    FAILED,
    NOTIFIED,
    PENDING,
    R_ACKNOWLEDGED,
    R_CANCEL,
    R_CANCELLED,
    R_EXPIRED,
    R_GONE,
    R_OPEN,
    RAISED,
    SENDING,
    SENT,
    UNACKNOWLEDGED,
    timeline,
)
from gateway.alerting.policy import EMERGENCY, sendable_priority
from gateway.clock import Clock
from gateway.db.models import Alert, Notification, Recipient
from gateway.notify.errors import GiveUp, Retry

__all__ = ["Dispatcher"]

log = logging.getLogger("telecare.alerting")
T = TypeVar("T")

MAX_PASSES = 20  # escalate/send rounds per run_once (a GiveUp escalates at once, which queues more to send)
MAX_SENDS_PER_PASS = 200


class Dispatcher:
    """Does the alerting's due work; ``run_once`` for tests and callers with their own loop, ``run`` for a thread.

    ``emergency_allowed=False`` sends emergency messages at high priority instead (accelerated runs: Pushover's
    retry/expire run on wall time). Back-off on Retry is ``backoff_s[0]`` doubling to ``backoff_s[1]``, or what
    the server asked (``Retry-After``) up to ``max_retry_after_s``; all in the clock's seconds.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        notifier: Notifier,
        clock: Clock,
        *,
        emergency_allowed: bool = True,
        poll_receipts_every_s: float = 15.0,  # Pushover asks for no more than one poll per 5 s
        emergency_retry_s: int = 60,
        emergency_expire_s: int = 3600,
        backoff_s: tuple[float, float] = (5.0, 300.0),
        max_retry_after_s: float = 3600.0,
        idle_poll_s: float = 1.0,  # wall seconds: how often ``run`` looks for work written by other processes
    ) -> None:
        self._sessions = sessions
        self.notifier = notifier
        self.clock = clock
        self.emergency_allowed = emergency_allowed
        self.poll_receipts_every = timedelta(seconds=poll_receipts_every_s)
        self.emergency_retry_s = emergency_retry_s
        self.emergency_expire_s = emergency_expire_s
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.idle_poll_s = idle_poll_s
        self._recovered = False
        self._wake = threading.Event()

    # --- the loop ---------------------------------------------------------------------------------------------

    def run_once(self) -> float | None:
        """Do all due work; returns the clock seconds until the next known due work (None: nothing scheduled)."""
        try:
            if not self._recovered:
                self._recover()
                self._recovered = True
            # Receipts first: an acknowledgement learned now stops an escalation due now.
            self._poll_receipts()
            for _ in range(MAX_PASSES):
                escalated = self._escalate_due()
                sent = self._send_due()
                if not (escalated or sent):
                    break
            self._cancel_receipts()
            return self._next_due()
        except BaseException:
            # A row may be left in ``sending`` (the outcome's commit failed): look again next time.
            self._recovered = False
            raise

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; :meth:`wake` makes it look for new work at once."""
        while not stop.is_set():
            try:
                delay = self.run_once()
            except Exception:
                log.exception("alerting: dispatcher failed; trying again")
                delay = None
            self._pause(stop, delay)

    def wake(self) -> None:
        """New work was committed (an alert raised, acknowledged ...): look now rather than at the next poll."""
        self._wake.set()

    def _pause(self, stop: threading.Event, delay: float | None) -> None:
        # Due work is in clock time (possibly simulated and fast); new work by other processes is polled for in
        # wall time. Short wall-time looks serve both.
        until_ms = None if delay is None else self.clock.now_ms() + delay * 1000
        give_up_at = time.monotonic() + self.idle_poll_s
        while not stop.is_set() and time.monotonic() < give_up_at:
            if until_ms is not None and self.clock.now_ms() >= until_ms:
                break
            if self._wake.wait(0.02):
                break
        self._wake.clear()

    # --- the work -------------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)

    def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in a transaction of its own."""
        with self._sessions.begin() as session:
            return fn(session, *args)

    def _recover(self) -> None:
        def recover(s: Session) -> None:
            now = self._now()
            for n in s.scalars(select(Notification).where(Notification.state == SENDING).with_for_update()):
                n.state, n.next_attempt_at = PENDING, now
                alert = s.get(Alert, n.alert_id)
                recipient = s.get(Recipient, n.recipient_id)
                if alert is not None:
                    timeline(s, alert, now, "resending", "the gateway stopped while sending this message: sending"
                             " it again (it may arrive twice)", who=recipient.name if recipient else None)
                log.warning("alerting: notification %s was being sent when the gateway stopped: sending again",
                            n.id)
        self._tx(recover)

    def _escalate_due(self) -> bool:
        now = self._now()
        ids = self._tx(lambda s: list(s.scalars(
            select(Alert.id).where(Alert.state.in_(UNACKNOWLEDGED), Alert.next_escalation_at <= now)
            .order_by(Alert.next_escalation_at))))

        def escalate(s: Session, alert_id: int) -> None:
            alert = s.scalars(select(Alert).where(Alert.id == alert_id).with_for_update()).one()
            if alert.state in UNACKNOWLEDGED and alert.next_escalation_at is not None \
                    and alert.next_escalation_at <= now:
                escalation.advance(s, alert, now, "no answer")

        for alert_id in ids:
            self._tx(escalate, alert_id)
        return bool(ids)

    def _send_due(self) -> bool:
        sent = 0
        while sent < MAX_SENDS_PER_PASS:
            claimed = self._tx(self._claim)
            if claimed is None:
                break
            notification_id, outgoing = claimed
            sent += 1
            try:
                receipt = self.notifier.send(outgoing)
            except Retry as e:
                self._tx(self._retry, notification_id, e)
            except GiveUp as e:
                self._tx(self._failed, notification_id, e.reason)
            except Exception as e:  # a bug must not make a poison message that blocks the outbox
                log.exception("alerting: notification %s could not be sent", notification_id)
                self._tx(self._failed, notification_id, f"internal error: {e!r}")
            else:
                self._tx(self._sent, notification_id, receipt)
        return sent > 0

    def _claim(self, s: Session) -> tuple[int, Outgoing] | None:
        now = self._now()
        n = s.scalars(select(Notification).where(
            Notification.state == PENDING,
            or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now))
            .order_by(Notification.priority.desc(), Notification.id).limit(1)
            .with_for_update(skip_locked=True)).first()
        if n is None:
            return None
        recipient = s.get(Recipient, n.recipient_id)
        assert recipient is not None  # foreign key
        n.state, n.attempts = SENDING, n.attempts + 1
        priority = sendable_priority(n.priority, self.emergency_allowed)
        emergency = priority == EMERGENCY
        return n.id, Outgoing(
            recipient=recipient.name, user_key=recipient.pushover_user_key, device=recipient.pushover_device,
            title=n.title, message=n.message, priority=priority,
            retry_s=self.emergency_retry_s if emergency else None,
            expire_s=self.emergency_expire_s if emergency else None)

    def _sent(self, s: Session, notification_id: int, receipt: str | None) -> None:
        now = self._now()
        n, alert, recipient = self._load(s, notification_id)
        n.state, n.sent_at, n.next_attempt_at, n.receipt = SENT, now, None, receipt
        if receipt is not None:
            # Acknowledged or resolved while we were sending: stop Pushover repeating it.
            n.receipt_state = R_OPEN if alert.state in UNACKNOWLEDGED else R_CANCEL
        if n.purpose in ALERTING and alert.state == RAISED:
            alert.state = NOTIFIED
        timeline(s, alert, now, "notified", f"{n.purpose}, step {n.step}, priority "
                 f"{sendable_priority(n.priority, self.emergency_allowed)}, via {self.notifier.name}"
                 + (f" (attempt {n.attempts})" if n.attempts > 1 else ""), who=recipient.name)

    def _retry(self, s: Session, notification_id: int, error: Retry) -> None:
        now = self._now()
        n, alert, recipient = self._load(s, notification_id)
        if error.retry_after_s is not None:
            delay = min(error.retry_after_s, self.max_retry_after_s)
        else:
            delay = min(self.backoff_s[0] * 2 ** (n.attempts - 1), self.backoff_s[1])
        delay = max(delay, 1.0)
        n.state, n.next_attempt_at, n.last_error = PENDING, now + timedelta(seconds=delay), error.reason
        if n.attempts == 1:  # once in the timeline; the row keeps the count and the latest error
            timeline(s, alert, now, "delayed", f"{error.reason}; trying again", who=recipient.name)
        log.warning("alerting: notification %s to %s not sent (%s); retry in %.0fs", n.id, recipient.name,
                    error.reason, delay)

    def _failed(self, s: Session, notification_id: int, reason: str) -> None:
        now = self._now()
        n, alert, recipient = self._load(s, notification_id)
        n.state, n.next_attempt_at, n.last_error = FAILED, None, reason
        timeline(s, alert, now, "failed", f"{n.purpose} could not be delivered: {reason}", who=recipient.name)
        log.error("alerting: notification %s to %s failed: %s", n.id, recipient.name, reason)
        if n.purpose in (ALERT, ESCALATION) and alert.state in UNACKNOWLEDGED and n.step == alert.escalation_step:
            escalation.advance(s, alert, now, f"{recipient.name} could not be reached")

    def _load(self, s: Session, notification_id: int) -> tuple[Notification, Alert, Recipient]:
        """The notification, its alert and recipient; the alert locked first, as ``acknowledge`` does, so the two
        never wait for each other."""
        alert_id = s.scalar(select(Notification.alert_id).where(Notification.id == notification_id))
        alert = s.scalars(select(Alert).where(Alert.id == alert_id).with_for_update()).one()
        n = s.scalars(select(Notification).where(Notification.id == notification_id).with_for_update()).one()
        recipient = s.get(Recipient, n.recipient_id)
        assert recipient is not None  # foreign key
        return n, alert, recipient

    # --- emergency receipts -----------------------------------------------------------------------------------

    def _due_receipts(self, s: Session, receipt_state: str, now: datetime) -> list[tuple[int, str]]:
        query = select(Notification.id, Notification.receipt).where(
            Notification.receipt_state == receipt_state,
            or_(Notification.receipt_checked_at.is_(None),
                Notification.receipt_checked_at <= now - self.poll_receipts_every))
        if receipt_state == R_OPEN:
            query = query.join(Alert, Alert.id == Notification.alert_id).where(Alert.state.in_(UNACKNOWLEDGED))
        return [(i, r) for i, r in s.execute(query.order_by(Notification.id)) if r]

    def _cancel_receipts(self) -> None:
        now = self._now()
        for notification_id, receipt in self._tx(self._due_receipts, R_CANCEL, now):
            try:
                self.notifier.cancel(receipt)
            except Retry as e:
                log.warning("alerting: cannot cancel receipt of notification %s yet: %s", notification_id, e)
                self._tx(self._checked, notification_id, now, None, "")
                continue
            except GiveUp as e:
                log.info("alerting: receipt of notification %s is gone: %s", notification_id, e)
            self._tx(self._checked, notification_id, now, R_CANCELLED, "emergency message stopped repeating")

    def _poll_receipts(self) -> None:
        now = self._now()
        for notification_id, receipt in self._tx(self._due_receipts, R_OPEN, now):
            try:
                status = self.notifier.receipt(receipt)
            except Retry as e:
                log.warning("alerting: cannot poll receipt of notification %s: %s", notification_id, e)
                self._tx(self._checked, notification_id, now, None, "")
            except GiveUp as e:
                self._tx(self._checked, notification_id, now, R_GONE, e.reason)
            else:
                if status.acknowledged:
                    self._tx(self._acknowledged, notification_id, now)
                elif status.expired:
                    self._tx(self._checked, notification_id, now, R_EXPIRED, "emergency message expired unanswered")
                else:
                    self._tx(self._checked, notification_id, now, None, "")

    def _checked(self, s: Session, notification_id: int, now: datetime, receipt_state: str | None,
                 detail: str) -> None:
        n, alert, recipient = self._load(s, notification_id)
        n.receipt_checked_at = now
        if receipt_state is not None:
            n.receipt_state = receipt_state
            timeline(s, alert, now, f"receipt {receipt_state}", detail, who=recipient.name)

    def _acknowledged(self, s: Session, notification_id: int, now: datetime) -> None:
        n, alert, recipient = self._load(s, notification_id)
        n.receipt_checked_at, n.receipt_state = now, R_ACKNOWLEDGED
        try:
            service.acknowledge(s, alert.id, recipient.name, "acknowledged in Pushover", now,
                                recipient_id=recipient.id)
        except AlertError as e:  # someone else was first: nothing more to do
            log.info("alerting: receipt acknowledgement of alert %s by %s: %s", alert.id, recipient.name, e)

    # --- when next ------------------------------------------------------------------------------------------

    def _next_due(self) -> float | None:
        def earliest(s: Session) -> datetime | None:
            now = self._now()
            times = [
                s.scalar(select(func.min(Notification.next_attempt_at)).where(Notification.state == PENDING)),
                s.scalar(select(func.min(Alert.next_escalation_at)).where(Alert.state.in_(UNACKNOWLEDGED))),
            ]
            for state in (R_OPEN, R_CANCEL):
                q = select(Notification.receipt_checked_at).where(Notification.receipt_state == state)
                if state == R_OPEN:
                    q = q.join(Alert, Alert.id == Notification.alert_id).where(Alert.state.in_(UNACKNOWLEDGED))
                checked = list(s.scalars(q))
                if None in checked:
                    times.append(now)
                elif checked:
                    times.append(min(c for c in checked if c is not None) + self.poll_receipts_every)
            known = [t for t in times if t is not None]
            return min(known) if known else None

        at = self._tx(earliest)
        if at is None:
            return None
        return max(0.0, (at - self._now()).total_seconds())

    # For tests and operators: whether anything is still in flight.
    def pending_count(self) -> int:
        return self._tx(lambda s: s.scalar(select(func.count()).select_from(Notification).where(
            Notification.state.in_((PENDING, SENDING)))) or 0)

