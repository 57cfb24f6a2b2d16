"""Following emergency messages' receipts: acknowledged in Pushover, expired, or to be cancelled there.

A mixin of :class:`~gateway.alerting.dispatcher.Dispatcher`, apart only to keep each module readable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.alerting import service
from gateway.alerting.errors import AlertError
from gateway.alerting.guards import TokenAlarm
from gateway.alerting.notifiers import Notifier
from gateway.alerting.outbox import timeline
from gateway.alerting.states import UNACKNOWLEDGED, ReceiptState
from gateway.db.models import Alert, Notification, Recipient
from gateway.logs import about
from gateway.notify.errors import DeliveryError, GiveUp, Retry

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class ReceiptFollower:
    """Polls open receipts (an acknowledgement there acknowledges the alert) and cancels the ones no longer
    needed. A refused application token is not a receipt's fault: it is asked about again later."""

    notifier: Notifier
    poll_receipts_every: timedelta
    max_concurrent_sends: int
    _token: TokenAlarm

    def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def _now(self) -> datetime:
        raise NotImplementedError

    def _load(self, s: Session, notification_id: int) -> tuple[Notification, Alert, Recipient]:
        raise NotImplementedError

    def _due_receipts(self, s: Session, receipt_state: str, now: datetime) -> list[tuple[int, str]]:
        query = select(Notification.id, Notification.receipt).where(
            Notification.receipt_state == receipt_state,
            or_(Notification.receipt_checked_at.is_(None),
                Notification.receipt_checked_at <= now - self.poll_receipts_every))
        if receipt_state == ReceiptState.OPEN:
            query = query.join(Alert, Alert.id == Notification.alert_id).where(Alert.state.in_(UNACKNOWLEDGED))
        return [(i, r) for i, r in s.execute(query.order_by(Notification.id)) if r]

    def _ask_all(self, ask: Callable[[str], R], due: list[tuple[int, str]]) -> list[tuple[int, R | DeliveryError]]:
        """``ask(receipt)`` for each due receipt, a few at once (as sends are): one slow answer holds up nobody
        else's. Pushover's refusals come back as values; anything else (a bug) rises."""
        def one(receipt: str) -> R | DeliveryError:
            try:
                return ask(receipt)
            except DeliveryError as e:
                return e

        if len(due) <= 1:
            return [(i, one(r)) for i, r in due]
        with ThreadPoolExecutor(min(len(due), self.max_concurrent_sends), thread_name_prefix="receipt") as pool:
            return list(zip((i for i, _ in due), pool.map(one, (r for _, r in due)), strict=True))

    def _cancel_receipts(self) -> None:
        now = self._now()
        due = self._read(self._due_receipts, ReceiptState.CANCEL, now)
        for notification_id, outcome in self._ask_all(self.notifier.cancel, due):
            if isinstance(outcome, Retry):
                log.warning("alerting: cannot cancel receipt of notification %s yet: %s", notification_id, outcome,
                            extra=about(notification_id=notification_id))
                self._tx(self._checked, notification_id, now, None, "")
                continue
            if isinstance(outcome, GiveUp):
                if outcome.token_refused:
                    self._token.refused(outcome.reason)
                    self._tx(self._checked, notification_id, now, None, "")
                    continue
                log.info("alerting: receipt of notification %s is gone: %s", notification_id, outcome,
                         extra=about(notification_id=notification_id))
            self._tx(self._checked, notification_id, now, ReceiptState.CANCELLED, "emergency message stopped repeating")

    def _poll_receipts(self) -> None:
        now = self._now()
        due = self._read(self._due_receipts, ReceiptState.OPEN, now)
        for notification_id, status in self._ask_all(self.notifier.receipt, due):
            if isinstance(status, Retry):
                log.warning("alerting: cannot poll receipt of notification %s: %s", notification_id, status,
                            extra=about(notification_id=notification_id))
                self._tx(self._checked, notification_id, now, None, "")
            elif isinstance(status, GiveUp):
                if status.token_refused:  # not the receipt's fault: ask again once the token is fixed
                    self._token.refused(status.reason)
                    self._tx(self._checked, notification_id, now, None, "")
                else:
                    self._tx(self._checked, notification_id, now, ReceiptState.GONE, status.reason)
            elif isinstance(status, DeliveryError):  # neither: treat as "try again later"
                self._tx(self._checked, notification_id, now, None, "")
            elif status.acknowledged:
                self._tx(self._acknowledged, notification_id, now)
            elif status.expired:
                self._tx(self._checked, notification_id, now, ReceiptState.EXPIRED,
                         "emergency message expired unanswered")
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
        n.receipt_checked_at, n.receipt_state = now, ReceiptState.ACKNOWLEDGED
        try:
            service.acknowledge(s, alert.id, recipient.name, "acknowledged in Pushover", now,
                                recipient_id=recipient.id)
        except AlertError as e:  # someone else was first: nothing more to do
            log.info("alerting: receipt acknowledgement of alert %s by %s: %s", alert.id, recipient.name, e,
                     extra=about(home=alert.home_id, alert_id=alert.id, notification_id=n.id))
