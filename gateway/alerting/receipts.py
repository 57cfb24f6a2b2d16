"""Following emergency messages' receipts: acknowledged in Pushover, expired, or to be cancelled there.

A mixin of :class:`~gateway.alerting.dispatcher.Dispatcher`, apart only to keep each module readable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.alerting import service
from gateway.alerting.errors import AlertError
from gateway.alerting.guards import TokenAlarm
from gateway.alerting.notifiers import Notifier
from gateway.alerting.outbox import (
    R_ACKNOWLEDGED,
    R_CANCEL,
    R_CANCELLED,
    R_EXPIRED,
    R_GONE,
    R_OPEN,
    UNACKNOWLEDGED,
    timeline,
)
from gateway.db.models import Alert, Notification, Recipient
from gateway.notify.errors import GiveUp, Retry

log = logging.getLogger("telecare.alerting")
T = TypeVar("T")


class ReceiptFollower:
    """Polls open receipts (an acknowledgement there acknowledges the alert) and cancels the ones no longer
    needed. A refused application token is not a receipt's fault: it is asked about again later."""

    notifier: Notifier
    poll_receipts_every: timedelta
    _token: TokenAlarm

    def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def _load(self, s: Session, notification_id: int) -> tuple[Notification, Alert, Recipient]:
        raise NotImplementedError

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
                if "token" in e.invalid:
                    self._token.refused(e.reason)
                    self._tx(self._checked, notification_id, now, None, "")
                    continue
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
                if "token" in e.invalid:  # not the receipt's fault: ask again once the token is fixed
                    self._token.refused(e.reason)
                    self._tx(self._checked, notification_id, now, None, "")
                else:
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
