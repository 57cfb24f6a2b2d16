"""The dispatcher: sends the outbox, follows emergency receipts and escalates, on the gateway's clock.

Each notification is sent in three steps, each its own transaction around the one slow call:

1. claim: ``pending`` → ``sending`` (attempts + 1), committed;
2. the notifier's call, outside any transaction;
3. the outcome, committed: ``sent`` (with its receipt), ``pending`` again with a back-off (Retry), or ``failed``
   (GiveUp: recorded in the timeline, and the chain moves on at once).

A crash between 1 and 3 leaves the row in ``sending``: the message may or may not have gone. A dispatcher
starting finds such rows and sends them again, noting it in the timeline: delivery is at least once (a carer may
rarely get the same alert twice; an alert is never lost).

Delivery failures are neither silent nor slow (docs/alerting.md, "Delivery"):

* each message has a retry deadline (``retry_deadline_urgent_s`` for high and emergency priority, else
  ``retry_deadline_s``, from when it was queued): past it, or when the next attempt would fall past it, the
  message is given up as expired and the chain moves on at once, so an outage of hours never ends in a burst
  of stale alerts;
* an application token that Pushover refuses is not the recipient's fault: the message goes to the fallback
  notifier (console and log) instead, the chain runs on its usual timer, and operators get an ERROR line and
  ``telecare_pushover_token_invalid``;
* sends run on a small pool (``max_concurrent_sends``), one at a time per recipient (their messages keep their
  order), so one slow recipient holds up nobody else;
* only one dispatcher per database sends (:class:`~gateway.alerting.guards.DispatcherLock`), woken at once by work
  other processes commit (:mod:`gateway.alerting.wakeups`);
* a jump of the gateway's clock moves the open deadlines by as much
  (:class:`~gateway.alerting.guards.ClockJumpDetector`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting import escalation
from gateway.alerting.guards import ClockJumpDetector, DispatcherLock, TokenAlarm, outbox_health, shift_deadlines
from gateway.alerting.notifiers import LogNotifier, Notifier, Outgoing
from gateway.alerting.outbox import timeline
from gateway.alerting.policy import EMERGENCY, HIGH, sendable_priority
from gateway.alerting.receipts import ReceiptFollower
from gateway.alerting.states import ALERTING, UNACKNOWLEDGED, AlertState, NotificationState, Purpose, ReceiptState
from gateway.alerting.wakeups import WorkNotices
from gateway.backoff import Backoff, RetryAfter
from gateway.clock import Clock, WallClock
from gateway.db.models import Alert, Notification, Recipient
from gateway.db.session import read_only_sessions
from gateway.logs import about
from gateway.metrics import WorkerMetrics
from gateway.notify.errors import GiveUp, Retry

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["Dispatcher", "dispatcher_options"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PASSES = 20  # escalate/send rounds per run_once (a GiveUp escalates at once, which queues more to send)
MAX_SENDS_PER_PASS = 200


def dispatcher_options(settings: Settings) -> dict[str, Any]:
    """The dispatcher's keyword arguments from the gateway's settings (``Dispatcher(..., **dispatcher_options(s))``)."""
    return {"retry_deadline_urgent_s": settings.delivery_deadline_urgent_s,
            "retry_deadline_s": settings.delivery_deadline_s,
            "max_concurrent_sends": settings.delivery_concurrency}


@dataclass(frozen=True, slots=True)
class _Delivery:
    """What one send came to, handed from the pool's thread back to the dispatcher's."""

    receipt: str | None = None
    error: Exception | None = None
    via: str = ""
    token_refused: str | None = None  # Pushover refused the application token: sent to the fallback instead


class Dispatcher(ReceiptFollower):
    """Does the alerting's due work; ``run_once`` for tests and callers with their own loop, ``run`` for a thread.

    ``emergency_allowed=False`` sends emergency messages at high priority instead (accelerated runs: Pushover's
    retry/expire run on wall time). Back-off on Retry is ``backoff_s[0]`` doubling to ``backoff_s[1]``, or what
    the server asked (``Retry-After``) up to ``max_retry_after_s``; all in the clock's seconds. ``monotonic``
    (default: ``time.monotonic`` on a :class:`~gateway.clock.WallClock`, None otherwise) detects clock jumps.
    ``metrics`` receives the delivery metrics (a registry of its own when not given).
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
        retry_deadline_urgent_s: float = 900.0,  # high and emergency priority: 15 min, then the chain moves on
        retry_deadline_s: float = 4 * 3600.0,  # everything else
        max_concurrent_sends: int = 4,
        fallback: Notifier | None = None,  # where messages go while Pushover refuses the token (default: the log)
        token_recheck_s: float = 300.0,  # wall seconds between asking Pushover again about a refused token
        metrics: WorkerMetrics | None = None,
        monotonic: Callable[[], float] | None = None,
        clock_jump_tolerance_s: float = 30.0,
        observe_every_s: float = 5.0,  # wall seconds between the outbox's gauges (a few counts)
    ) -> None:
        if max_concurrent_sends < 1:
            raise ValueError("max_concurrent_sends must be at least 1")
        self._sessions = sessions
        self._reading = read_only_sessions(sessions)
        self.notifier = notifier
        self.clock = clock
        self.emergency_allowed = emergency_allowed
        self.poll_receipts_every = timedelta(seconds=poll_receipts_every_s)
        self.emergency_retry_s = emergency_retry_s
        self.emergency_expire_s = emergency_expire_s
        # At least a second between attempts, whatever a server says: a Retry-After of 0 must not spin.
        self.retry_backoff = Backoff(first_s=backoff_s[0], cap_s=backoff_s[1], floor_s=1.0,
                                     retry_after=RetryAfter.INSTEAD, retry_after_cap_s=max_retry_after_s)
        self.idle_poll_s = idle_poll_s
        self.retry_deadline_urgent = timedelta(seconds=retry_deadline_urgent_s)
        self.retry_deadline = timedelta(seconds=retry_deadline_s)
        self.max_concurrent_sends = max_concurrent_sends
        self.fallback = fallback or LogNotifier()
        self.metrics = metrics or WorkerMetrics()
        self.observe_every_s = observe_every_s
        self._observed_at: float | None = None
        self._token = TokenAlarm(token_recheck_s)
        if monotonic is None and isinstance(clock, WallClock):
            monotonic = time.monotonic
        self._jumps = ClockJumpDetector(monotonic, clock_jump_tolerance_s)
        bind = sessions.kw.get("bind")
        self._lock = DispatcherLock(bind) if bind is not None else None
        self._notices = WorkNotices(bind)
        self._holding = False  # whether this dispatcher sends, as its last look found
        self._recovered = False
        self._wake = threading.Event()

    # --- the loop ---------------------------------------------------------------------------------------------

    def run_once(self) -> float | None:
        """Do all due work; returns the clock seconds until the next known due work (None: nothing scheduled)."""
        try:
            if self._lock is not None and not self._lock.held():
                self._recovered = False  # whoever held the lock may have left rows in ``sending``
                self._holding = False
                self._notices.stop_listening()
                return None
            self._holding = True
            self._notices.listen()  # before looking: what is committed after the look is heard
            if not self._recovered:
                self._recover()
                self._recovered = True
            self._follow_clock_jump()
            # Receipts first: an acknowledgement learned now stops an escalation due now.
            self._poll_receipts()
            for _ in range(MAX_PASSES):
                self._expire_overdue()
                escalated = self._escalate_due()
                sent = self._send_due()
                if not (escalated or sent):
                    break
            self._cancel_receipts()
            if self._observed_at is None or time.monotonic() - self._observed_at >= self.observe_every_s:
                self.observe()
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
                self.metrics.dispatcher_errors.inc()
                log.exception("alerting: dispatcher failed; trying again")
                delay = None
            self._pause(stop, delay)
        self.close()

    def close(self) -> None:
        """Let another dispatcher take over (the PostgreSQL lock's connection is closed)."""
        self._notices.stop_listening()
        if self._lock is not None:
            self._lock.release()

    def observe(self) -> None:
        """Set the outbox's gauges: pending messages, the oldest one's age, unrouted alerts, the token alarm."""
        health = self._read(outbox_health, self._now())
        self.metrics.notifications_pending.set(health.pending)
        self.metrics.notifications_oldest_pending.set(health.oldest_pending_s)
        self.metrics.alerts_unrouted.set(health.unrouted)
        self.metrics.pushover_token_invalid.set(1 if self._token.raised else 0)
        self._observed_at = time.monotonic()

    def wake(self) -> None:
        """New work was committed (an alert raised, acknowledged ...): look now rather than at the next poll; or,
        when another process's dispatcher sends (cluster mode), have it look now."""
        self._wake.set()
        if not self._holding:
            self._notices.announce()

    def _pause(self, stop: threading.Event, delay: float | None) -> None:
        # Due work is in clock time (possibly simulated and fast); new work by other processes is polled for in
        # wall time. Short wall-time looks serve both.
        until_ms = None if delay is None else self.clock.now_ms() + delay * 1000
        give_up_at = time.monotonic() + self.idle_poll_s
        while not stop.is_set() and time.monotonic() < give_up_at:
            if until_ms is not None and self.clock.now_ms() >= until_ms:
                break
            if self._notices.listening:
                if self._wake.is_set() or self._notices.heard(0.02):
                    break
            elif self._wake.wait(0.02):
                break
        self._wake.clear()

    # --- the work -------------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)

    def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in a transaction of its own."""
        with self._sessions.begin() as session:
            return fn(session, *args)

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in a transaction of its own that only reads: under SQLite it does not wait for
        the detectors' and registry's write lock, as the dispatcher's many looks for due work did (a pendant's
        notification waited about a second behind them at 5,000 readings/s)."""
        with self._reading.begin() as session:
            return fn(session, *args)

    def _recover(self) -> None:
        def recover(s: Session) -> None:
            now = self._now()
            sending = select(Notification).where(Notification.state == NotificationState.SENDING)
            for n in s.scalars(sending.with_for_update()):
                n.state, n.next_attempt_at = NotificationState.PENDING, now
                alert = s.get(Alert, n.alert_id)
                recipient = s.get(Recipient, n.recipient_id)
                if alert is not None:
                    timeline(s, alert, now, "resending", "the gateway stopped while sending this message: sending"
                             " it again (it may arrive twice)", who=recipient.name if recipient else None)
                log.warning("alerting: notification %s was being sent when the gateway stopped: sending again",
                            n.id, extra=about(alert_id=n.alert_id, notification_id=n.id))
        self._tx(recover)

    def _escalate_due(self) -> bool:
        now = self._now()
        ids = self._read(lambda s: list(s.scalars(
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

    def _follow_clock_jump(self) -> None:
        jump_s = self._jumps.jump_s(self.clock.now_ms() / 1000)
        if jump_s:
            moved = self._tx(shift_deadlines, timedelta(seconds=jump_s))
            log.warning("alerting: the gateway clock jumped %+.0fs; %d open deadline(s) moved by as much, so each "
                        "keeps the time it had left", jump_s, moved)

    def _deadline(self, priority: int) -> timedelta:
        return self.retry_deadline_urgent if priority >= HIGH else self.retry_deadline

    def _expire_overdue(self) -> None:
        """Messages still unsent past their retry deadline (an outage, a restart after hours): give them up now
        rather than send them late, and move their chains on."""
        now = self._now()
        overdue = Notification.state == NotificationState.PENDING, or_(
            and_(Notification.priority >= HIGH, Notification.created_at <= now - self.retry_deadline_urgent),
            and_(Notification.priority < HIGH, Notification.created_at <= now - self.retry_deadline))
        ids = self._read(lambda s: list(s.scalars(select(Notification.id).where(*overdue)
                                                  .order_by(Notification.id))))
        for notification_id in ids:
            self._tx(self._expire_if_pending, notification_id)

    def _expire_if_pending(self, s: Session, notification_id: int) -> None:
        n, _, _ = self._load(s, notification_id)
        if n.state == NotificationState.PENDING:  # nobody (acknowledge, another pass) changed it meanwhile
            self._failed(s, notification_id, self._expiry_reason(n), expired=True)

    def _expiry_reason(self, n: Notification) -> str:
        minutes = self._deadline(n.priority).total_seconds() / 60
        last = f" (last error: {n.last_error})" if n.last_error else ""
        return f"expired: not delivered within {minutes:g} min{last}"

    def _send_due(self) -> bool:
        """Claim and send due messages on a small pool, at most one at a time per recipient; outcomes are
        recorded here, on the dispatcher's thread, as each send ends."""
        sent = 0
        in_flight: dict[Future[_Delivery], tuple[int, int]] = {}  # → (notification id, recipient id)
        pool: ThreadPoolExecutor | None = None
        try:
            while True:
                while len(in_flight) < self.max_concurrent_sends and sent < MAX_SENDS_PER_PASS:
                    busy = {recipient_id for _, recipient_id in in_flight.values()}
                    claimed = self._tx(self._claim, busy)
                    if claimed is None:
                        break
                    notification_id, recipient_id, outgoing = claimed
                    if pool is None:
                        pool = ThreadPoolExecutor(self.max_concurrent_sends, thread_name_prefix="send")
                    in_flight[pool.submit(self._deliver, outgoing)] = (notification_id, recipient_id)
                    sent += 1
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    notification_id, _ = in_flight.pop(future)
                    self._record(notification_id, future.result())  # a BaseException (the process dying) rises
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return sent > 0

    def _deliver(self, outgoing: Outgoing) -> _Delivery:
        """On a pool thread: send through the notifier, or through the fallback while the token is refused."""
        refused = "as it did earlier; not asked again yet"
        if not self._token.skip_pushover():
            try:
                return _Delivery(receipt=self.notifier.send(outgoing), via=self.notifier.name)
            except GiveUp as e:
                if not e.token_refused:
                    return _Delivery(error=e)
                refused = e.reason
            except Exception as e:  # classified on the dispatcher's thread
                return _Delivery(error=e)
        try:
            self.fallback.send(outgoing)
        except Exception as e:
            return _Delivery(error=e, token_refused=refused)
        return _Delivery(via=self.fallback.name, token_refused=refused)

    def _record(self, notification_id: int, delivery: _Delivery) -> None:
        if delivery.token_refused is not None:
            self._token.refused(delivery.token_refused)
            self.metrics.pushover_token_invalid.set(1)
        elif delivery.error is None or isinstance(delivery.error, GiveUp):  # Pushover took the token
            self._token.accepted()
            self.metrics.pushover_token_invalid.set(0)
        error = delivery.error
        if error is None:
            self._tx(self._sent, notification_id, delivery.receipt, delivery.via, delivery.token_refused)
            if delivery.token_refused is not None:
                self.metrics.notifications_fallback.inc()
        elif isinstance(error, Retry):
            self._tx(self._retry, notification_id, error)
        elif isinstance(error, GiveUp):
            self._tx(self._failed, notification_id, error.reason)
        else:  # a bug must not make a poison message that blocks the outbox
            log.error("alerting: notification %s could not be sent", notification_id, exc_info=error,
                      extra=about(notification_id=notification_id))
            self._tx(self._failed, notification_id, f"internal error: {error!r}")

    def _claim(self, s: Session, busy_recipients: set[int]) -> tuple[int, int, Outgoing] | None:
        now = self._now()
        query = select(Notification).where(
            Notification.state == NotificationState.PENDING,
            or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now))
        if busy_recipients:  # their next message waits for the one in flight: a recipient's messages keep order
            query = query.where(Notification.recipient_id.not_in(busy_recipients))
        n = s.scalars(query.order_by(Notification.priority.desc(), Notification.id).limit(1)
                      .with_for_update(skip_locked=True)).first()
        if n is None:
            return None
        recipient = s.get(Recipient, n.recipient_id)
        assert recipient is not None  # foreign key
        n.state, n.attempts = NotificationState.SENDING, n.attempts + 1
        priority = sendable_priority(n.priority, self.emergency_allowed)
        emergency = priority == EMERGENCY
        return n.id, recipient.id, Outgoing(
            recipient=recipient.name, user_key=recipient.pushover_user_key, device=recipient.pushover_device,
            title=n.title, message=n.message, priority=priority,
            retry_s=self.emergency_retry_s if emergency else None,
            expire_s=self.emergency_expire_s if emergency else None)

    def _sent(self, s: Session, notification_id: int, receipt: str | None, via: str,
              token_refused: str | None = None) -> None:
        now = self._now()
        n, alert, recipient = self._load(s, notification_id)
        n.state, n.sent_at, n.next_attempt_at, n.receipt = NotificationState.SENT, now, None, receipt
        if token_refused is not None:
            n.last_error = f"Pushover refused the application token ({token_refused}): sent to the {via} instead"
        if receipt is not None:
            # Acknowledged or resolved while we were sending: stop Pushover repeating it.
            n.receipt_state = ReceiptState.OPEN if alert.state in UNACKNOWLEDGED else ReceiptState.CANCEL
        if n.purpose in ALERTING and alert.state == AlertState.RAISED:
            alert.state = AlertState.NOTIFIED
        timeline(s, alert, now, "notified", f"{n.purpose}, step {n.step}, priority "
                 f"{sendable_priority(n.priority, self.emergency_allowed)}, via {via}"
                 + (f" (attempt {n.attempts})" if n.attempts > 1 else "")
                 + (" because Pushover refused the application token" if token_refused is not None else ""),
                 who=recipient.name)

    def _retry(self, s: Session, notification_id: int, error: Retry) -> None:
        now = self._now()
        n, alert, recipient = self._load(s, notification_id)
        delay = self.retry_backoff.delay_s(max(n.attempts, 1), error.retry_after_s)
        n.last_error = error.reason
        if now + timedelta(seconds=delay) >= n.created_at + self._deadline(n.priority):
            # The next attempt would come too late to be of use: the chain moves on now.
            self._failed(s, notification_id, self._expiry_reason(n), expired=True)
            return
        n.state, n.next_attempt_at = NotificationState.PENDING, now + timedelta(seconds=delay)
        if n.attempts == 1:  # once in the timeline; the row keeps the count and the latest error
            timeline(s, alert, now, "delayed", f"{error.reason}; trying again", who=recipient.name)
        log.warning("alerting: notification %s to %s not sent (%s); retry in %.0fs", n.id, recipient.name,
                    error.reason, delay, extra=about(home=alert.home_id, alert_id=alert.id, notification_id=n.id))

    def _failed(self, s: Session, notification_id: int, reason: str, *, expired: bool = False) -> None:
        """Given up: refused by Pushover, a bug, or (``expired``) past the retry deadline. The row is ``failed``
        either way (the escalation message then says the person could not be reached); the timeline and the
        metric say which."""
        now = self._now()
        n, alert, recipient = self._load(s, notification_id)
        n.state, n.next_attempt_at, n.last_error = NotificationState.FAILED, None, reason
        what = "expired" if expired else "failed"
        timeline(s, alert, now, what, f"{n.purpose} could not be delivered: {reason}", who=recipient.name)
        log.error("alerting: notification %s to %s given up: %s", n.id, recipient.name, reason,
                  extra=about(home=alert.home_id, alert_id=alert.id, notification_id=n.id))
        metric_reason = "expired" if expired else "internal" if reason.startswith("internal error") else "refused"
        self.metrics.notifications_failed.labels(metric_reason).inc()
        if (n.purpose in (Purpose.ALERT, Purpose.ESCALATION) and alert.state in UNACKNOWLEDGED
                and n.step == alert.escalation_step):
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

    # --- when next ------------------------------------------------------------------------------------------

    def _next_due(self) -> float | None:
        def earliest(s: Session) -> datetime | None:
            now = self._now()
            times = [
                s.scalar(select(func.min(Notification.next_attempt_at))
                         .where(Notification.state == NotificationState.PENDING)),
                s.scalar(select(func.min(Alert.next_escalation_at)).where(Alert.state.in_(UNACKNOWLEDGED))),
            ]
            for state in (ReceiptState.OPEN, ReceiptState.CANCEL):
                q = select(Notification.receipt_checked_at).where(Notification.receipt_state == state)
                if state == ReceiptState.OPEN:
                    q = q.join(Alert, Alert.id == Notification.alert_id).where(Alert.state.in_(UNACKNOWLEDGED))
                checked = list(s.scalars(q))
                if None in checked:
                    times.append(now)
                elif checked:
                    times.append(min(c for c in checked if c is not None) + self.poll_receipts_every)
            known = [t for t in times if t is not None]
            return min(known) if known else None

        at = self._read(earliest)
        if at is None:
            return None
        return max(0.0, (at - self._now()).total_seconds())

    # For tests and operators: whether anything is still in flight.
    def pending_count(self) -> int:
        return self._read(lambda s: s.scalar(select(func.count()).select_from(Notification).where(
            Notification.state.in_((NotificationState.PENDING, NotificationState.SENDING)))) or 0)

