"""The outbox's guarantees: retries with back-off, give-ups recorded and escalated past, restarts resumed."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bench.pushover_server import PushoverServer
from gateway.alerting.dispatcher import Dispatcher
from gateway.alerting.notifiers import LogNotifier, Outgoing, PushoverNotifier, make_notifier
from gateway.config import load_settings
from gateway.db.session import make_engine, make_session_factory
from gateway.notify.pushover import ReceiptStatus
from tests.alerting.conftest import ANNE_KEY, BOB_KEY, COUNCIL_KEY, T0, Clock, World
from tests.alerting.helpers import (
    alert,
    apply,
    dispatcher,
    event,
    notifications,
    pushover_dispatcher,
    sent_to,
    timeline,
)

pytest_plugins = ["tests.conftest_pushover"]


def test_429_and_5xx_are_retried_with_back_off_and_delivered_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    [alert_id] = apply(sessions, clock, event(clock=clock))
    pushover.fail_next(1, 429, retry_after=120)
    pushover.fail_next(2, 503)
    assert d.run_once() == pytest.approx(120)  # the server's Retry-After
    clock.advance(seconds=119)
    d.run_once()
    assert pushover.messages == []

    clock.advance(seconds=1)
    assert d.run_once() == pytest.approx(10)  # 503: our own back-off, 5 s doubling
    clock.advance(seconds=10)
    assert d.run_once() == pytest.approx(20)
    clock.advance(seconds=20)
    d.run_once()
    assert len(sent_to(pushover, ANNE_KEY)) == 1
    [n] = notifications(sessions, alert_id)
    assert (n.state, n.attempts) == ("sent", 4)
    whats = [w for w, _, _ in timeline(sessions, alert_id)]
    assert whats.count("delayed") == 1 and whats.count("notified") == 1
    # The escalation timer counts from when the alert was raised, not from the late delivery.
    assert alert(sessions, alert_id).next_escalation_at == T0 + timedelta(minutes=15)


def test_an_invalid_user_key_is_recorded_and_the_next_step_alerted_at_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    pushover.users.discard(ANNE_KEY)
    [alert_id] = apply(sessions, clock, event(clock=clock))
    d.run_once()
    assert sent_to(pushover, ANNE_KEY) == []
    [bob] = sent_to(pushover, BOB_KEY)
    assert "Anne (could not be reached: user identifier is invalid)" in bob["message"]
    anne, to_bob = notifications(sessions, alert_id)
    assert (anne.state, anne.last_error) == ("failed", "user identifier is invalid")
    assert to_bob.state == "sent" and to_bob.step == 2
    log = timeline(sessions, alert_id)
    assert ("failed", "Anne", "alert could not be delivered: user identifier is invalid") in log
    assert ("escalated", None, "Anne could not be reached; step 2: Bob") in log
    # Bob has his own full wait.
    clock.advance(minutes=14)
    d.run_once()
    assert sent_to(pushover, COUNCIL_KEY) == []
    clock.advance(minutes=1)
    d.run_once()
    assert len(sent_to(pushover, COUNCIL_KEY)) == 1


def test_a_restart_mid_escalation_resumes_without_losing_or_repeating(
        db_url: str, sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    first = pushover_dispatcher(sessions, pushover, clock)
    apply(sessions, clock, event(clock=clock))
    first.run_once()
    clock.advance(minutes=10)
    first.run_once()
    first.close()  # the gateway stops (its database connections, and the dispatcher lock, go with it)

    clock.advance(minutes=10)  # ... and is back 20 minutes after the alert: step 2 is overdue
    engine = make_engine(db_url)
    try:
        second = pushover_dispatcher(make_session_factory(engine), pushover, clock)
        second.run_once()
        second.run_once()
        assert [m["user"] for m in pushover.messages] == [ANNE_KEY, BOB_KEY]
        clock.advance(minutes=15)
        second.run_once()
        assert [m["user"] for m in pushover.messages] == [ANNE_KEY, BOB_KEY, COUNCIL_KEY]
    finally:
        engine.dispose()


class Crash(BaseException):
    """The process dies: nothing after this runs."""


class CrashAfterSending:
    """Delivers, then dies before the dispatcher can record it."""

    name = "pushover"

    def __init__(self, inner: PushoverNotifier) -> None:
        self.inner = inner

    def send(self, message: Outgoing) -> str | None:
        self.inner.send(message)
        raise Crash

    def receipt(self, receipt: str) -> ReceiptStatus:
        return self.inner.receipt(receipt)

    def cancel(self, receipt: str) -> None:
        self.inner.cancel(receipt)


def test_a_crash_between_sending_and_recording_sends_again_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    ok = pushover_dispatcher(sessions, pushover, clock)
    assert isinstance(ok.notifier, PushoverNotifier)
    crashing = dispatcher(sessions, CrashAfterSending(ok.notifier), clock)
    [alert_id] = apply(sessions, clock, event(clock=clock))
    with pytest.raises(Crash):
        crashing.run_once()
    crashing.close()  # the process is gone, and its database connections with it
    [n] = notifications(sessions, alert_id)
    assert n.state == "sending"

    restarted = pushover_dispatcher(sessions, pushover, clock)
    restarted.run_once()
    restarted.run_once()
    # At least once: the alert may reach Anne twice, never zero times.
    assert len(sent_to(pushover, ANNE_KEY)) == 2
    [n] = notifications(sessions, alert_id)
    assert (n.state, n.attempts) == ("sent", 2)
    assert [w for w, _, _ in timeline(sessions, alert_id)].count("resending") == 1


def test_without_a_token_alerts_go_to_the_console_through_the_same_outbox(
        sessions: sessionmaker[Session], clock: Clock, world: World, monkeypatch: pytest.MonkeyPatch,
        tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TELECARE_PUSHOVER_TOKEN", raising=False)
    assert isinstance(make_notifier(load_settings()), LogNotifier)
    assert isinstance(make_notifier(load_settings(pushover_token="a" * 30)), PushoverNotifier)

    console = io.StringIO()
    d = dispatcher(sessions, LogNotifier(console), clock)
    [alert_id] = apply(sessions, clock, event(clock=clock))
    d.run_once()
    [line] = console.getvalue().splitlines()
    assert line.startswith("[telecare alert p+2] to Anne: URGENT: inactivity — Mrs Jones (h1)")
    assert "No movement since 06:10" in line
    [n] = notifications(sessions, alert_id)
    assert n.state == "sent" and n.receipt is None
    clock.advance(minutes=15)  # no receipts to poll: the chain goes on until acknowledged through the API
    d.run_once()
    assert "to Bob:" in console.getvalue().splitlines()[-1]


def test_accelerated_runs_send_no_emergency_priority(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock, emergency_allowed=False)
    [alert_id] = apply(sessions, clock, event(clock=clock))
    d.run_once()
    [anne] = pushover.messages
    assert anne["priority"] == "1" and "retry" not in anne and pushover.receipts == {}
    assert notifications(sessions, alert_id)[0].receipt is None


def test_run_loops_on_the_clock_until_stopped(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d: Dispatcher = pushover_dispatcher(sessions, pushover, clock, idle_poll_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=d.run, args=(stop,), daemon=True)
    thread.start()
    try:
        apply(sessions, clock, event(clock=clock))
        d.wake()
        _eventually(lambda: len(pushover.messages) == 1)
        clock.advance(minutes=15)  # simulated time jumps: step 2 is due
        _eventually(lambda: len(sent_to(pushover, BOB_KEY)) == 1)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        done.wait(0.02)
    raise AssertionError("condition not met in time")
