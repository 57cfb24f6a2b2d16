"""Delivery failures are neither silent nor slow (issue 11, finding 7): retry deadlines, a refused application
token, the delivery metrics, concurrent sends and clock jumps. One dispatcher per database: test_dispatcher_lock.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind
from bench.pushover_server import PushoverServer
from gateway.alerting import people
from gateway.alerting.dispatcher import Dispatcher, dispatcher_options
from gateway.alerting.notifiers import LogNotifier
from gateway.config import ConfigError, load_settings
from gateway.db.models import Home
from gateway.db.session import make_engine, make_session_factory
from tests.alerting.conftest import ANNE_KEY, BOB_KEY, COUNCIL_KEY, T0, Clock, World
from tests.alerting.helpers import (
    alert,
    apply,
    event,
    notifications,
    pushover_dispatcher,
    sent_to,
    timeline,
)

pytest_plugins = ["tests.conftest_pushover"]


def sample(d: Dispatcher, name: str, **labels: str) -> float | None:
    return d.metrics.registry.get_sample_value(name, labels)


# --- retry deadline ---------------------------------------------------------------------------------------------


def test_past_its_retry_deadline_a_message_expires_and_the_chain_moves_on_at_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock, retry_deadline_urgent_s=300)
    [alert_id] = apply(sessions, clock, event(clock=clock))
    pushover.fail_next(1000, 503)
    for _ in range(5 * 6):  # five minutes of Pushover answering 503
        d.run_once()
        clock.advance(seconds=10)
    # Anne's message was given up within its five minutes, and Bob's queued at once: not at Anne's 15-minute step.
    anne, bob = notifications(sessions, alert_id)
    assert anne.state == "failed" and bob.step == 2
    assert bob.created_at <= T0 + timedelta(minutes=5)
    pushover.recover()
    clock.advance(minutes=1)  # Bob's next attempt is due, his own five minutes not yet over
    d.run_once()
    assert sent_to(pushover, ANNE_KEY) == []
    assert len(sent_to(pushover, BOB_KEY)) == 1
    anne = notifications(sessions, alert_id)[0]
    assert anne.state == "failed" and anne.last_error is not None
    assert anne.last_error.startswith("expired: not delivered within 5 min (last error: Pushover answered HTTP 503")
    assert [w for w, who, _ in timeline(sessions, alert_id) if who == "Anne"].count("expired") == 1
    assert "Anne (could not be reached: expired" in sent_to(pushover, BOB_KEY)[0]["message"]
    assert sample(d, "telecare_notifications_failed_total", reason="expired") == 1


def test_an_outage_of_hours_does_not_end_in_a_burst_of_stale_messages(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    apply(sessions, clock, event(clock=clock))
    pushover.fail_next(100_000, 503)
    for _ in range(3 * 60):  # three hours, looked at every minute
        d.run_once()
        clock.advance(minutes=1)
    pushover.recover()
    recovered_at = clock.now()
    for _ in range(30):  # Pushover is back: the next half hour
        d.run_once()
        clock.advance(minutes=1)
    sent = [n for n in notifications(sessions) if n.state == "sent"]
    assert sent, "the alert must still reach someone once Pushover is back"
    # Nothing sent late: each message went within its 15 minutes (today's code sends three-hour-old ones).
    assert all(n.sent_at is not None and n.sent_at - n.created_at <= timedelta(minutes=15) for n in sent)
    assert all(n.sent_at is not None and n.sent_at >= recovered_at for n in sent)
    assert len(pushover.messages) <= 3  # the chain once, not a burst


def test_a_restart_after_hours_expires_what_was_queued_before(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    [alert_id] = apply(sessions, clock, event(clock=clock))  # raised, then the gateway was down for two hours
    clock.advance(minutes=120)
    d = pushover_dispatcher(sessions, pushover, clock)
    d.run_once()
    first = notifications(sessions, alert_id)[0]
    assert first.state == "failed" and first.last_error is not None and first.last_error.startswith("expired")
    assert sent_to(pushover, ANNE_KEY) == []  # a two-hour-old alert message is not sent as if new
    assert len(sent_to(pushover, BOB_KEY)) == 1  # ... the chain moved on, and the next step was alerted


# --- a refused application token --------------------------------------------------------------------------------


def test_a_refused_token_falls_back_to_the_console_and_alarms_operators_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer,
        caplog: pytest.LogCaptureFixture) -> None:
    console = io.StringIO()
    d = pushover_dispatcher(sessions, pushover, clock, fallback=LogNotifier(console))
    pushover.tokens.clear()  # Pushover refuses our token: 400, {"token": "invalid", ...}
    [first] = apply(sessions, clock, event(clock=clock))
    [second] = apply(sessions, clock, event(clock=clock, kind=AlertKind.PENDANT))
    with caplog.at_level("ERROR", logger="gateway.alerting"):
        d.run_once()
    # Not the recipients' fault: nobody is marked unreachable and no chain runs to its end.
    for alert_id in (first, second):
        [n] = notifications(sessions, alert_id)
        assert n.state == "sent" and n.last_error is not None and "application token" in n.last_error
        assert alert(sessions, alert_id).escalation_step == 1
        assert "escalated" not in [w for w, _, _ in timeline(sessions, alert_id)]
    lines = console.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("[telecare alert p+2] to Anne:") for line in lines)
    # Pushover was asked once; the second message went straight to the console.
    assert [p for _, p in pushover.requests].count("/1/messages.json") == 1
    alarms = [r for r in caplog.records if "APPLICATION TOKEN" in r.getMessage()]
    assert len(alarms) == 1 and alarms[0].levelname == "ERROR"
    d.observe()
    assert sample(d, "telecare_pushover_token_invalid") == 1
    assert sample(d, "telecare_notifications_fallback_total") == 2
    # The chain still moves on its own timer: Bob is told at 15 minutes, through the console too.
    clock.advance(minutes=15)
    d.run_once()
    assert any("to Bob:" in line for line in console.getvalue().splitlines())


def test_once_the_token_is_accepted_again_messages_go_through_pushover(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock, fallback=LogNotifier(io.StringIO()), token_recheck_s=0)
    pushover.tokens.clear()
    apply(sessions, clock, event(clock=clock))
    d.run_once()
    pushover.tokens.add("a" * 30)
    apply(sessions, clock, event(clock=clock, kind=AlertKind.PENDANT))
    d.run_once()
    d.observe()
    assert len(pushover.messages) == 1
    assert sample(d, "telecare_pushover_token_invalid") == 0


# --- metrics ----------------------------------------------------------------------------------------------------


def test_pending_unrouted_and_oldest_pending_are_measured(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    with sessions.begin() as s:  # a second home with nobody to tell
        s.add(Home(id="h2", name="3 Elm Row"))
        s.flush()
        people.add_resident(s, "h2", "Mr Smith")
    d = pushover_dispatcher(sessions, pushover, clock)
    pushover.fail_next(1000, 503)
    apply(sessions, clock, event(clock=clock), event(clock=clock, home="h2"))
    d.run_once()
    clock.advance(minutes=2)
    d.run_once()
    d.observe()
    assert sample(d, "telecare_notifications_pending") == 1
    assert sample(d, "telecare_notifications_oldest_pending_seconds") == pytest.approx(120)
    assert sample(d, "telecare_alerts_unrouted") == 1
    pushover.users.discard(BOB_KEY)
    pushover.recover()
    clock.advance(minutes=15)
    d.run_once()
    d.observe()
    assert sample(d, "telecare_notifications_failed_total", reason="refused") == 1  # Bob's key
    assert sample(d, "telecare_notifications_oldest_pending_seconds") == 0


def test_dispatcher_errors_are_counted(tmp_path: Path, clock: Clock) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'not-migrated.db'}")  # no tables: every round fails
    d = Dispatcher(make_session_factory(engine), LogNotifier(io.StringIO()), clock, idle_poll_s=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=d.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _eventually(lambda: (sample(d, "telecare_dispatcher_errors_total") or 0) >= 2)
    finally:
        stop.set()
        thread.join(5)
        engine.dispose()


# --- concurrent sends -------------------------------------------------------------------------------------------


def test_one_slow_recipient_holds_up_nobody_else(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    with sessions.begin() as s:  # a second home whose chain starts with Bob
        s.add(Home(id="h2", name="3 Elm Row"))
        s.flush()
        people.add_resident(s, "h2", "Mr Smith")
        people.set_chain(s, "h2", [(world.bob, 15)])
    d = pushover_dispatcher(sessions, pushover, clock)
    pushover.slow_users[ANNE_KEY] = 2.0  # Anne's messages take 2 s to be answered
    apply(sessions, clock, event(clock=clock), event(clock=clock, home="h2"))
    started = time.monotonic()
    d.run_once()
    assert time.monotonic() - started < 3.5  # not 2 s per message in turn
    # Bob's alert (queued second) was delivered while Anne's was still on its way.
    assert [m["user"] for m in pushover.messages] == [BOB_KEY, ANNE_KEY]


def test_a_recipients_messages_keep_their_order(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    pushover.slow_users[ANNE_KEY] = 0.3
    apply(sessions, clock, *(event(clock=clock, subject=f"room {i}") for i in range(3)))
    d.run_once()
    anne = [m["message"] for m in sent_to(pushover, ANNE_KEY)]
    assert len(anne) == 3
    ids = [n.id for n in notifications(sessions) if n.recipient_id == world.anne]
    assert ids == sorted(ids)


def test_receipts_are_polled_a_few_at_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    d = pushover_dispatcher(sessions, pushover, clock)
    apply(sessions, clock, *(event(clock=clock, subject=f"room {i}") for i in range(3)))
    d.run_once()
    assert len(pushover.receipts) == 3
    pushover.delay_s = 1.0  # every answer takes a second
    clock.advance(seconds=10)  # the three receipts are due for a poll
    before = len(pushover.requests)
    started = time.monotonic()
    d.run_once()
    assert [p for _, p in pushover.requests[before:]].count("/1/messages.json") == 0
    assert len(pushover.requests) - before == 3
    assert time.monotonic() - started < 2.5  # not a second per receipt in turn


# --- clock jumps ------------------------------------------------------------------------------------------------


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jump(clock: Clock, minutes: float) -> None:
    """The gateway's clock is set (NTP step, an operator): it moves, while monotonic time does not."""
    clock._now_ms = clock.now_ms() + round(minutes * 60_000)  # SimulatedClock.tick never moves backwards


def test_a_clock_set_back_an_hour_does_not_delay_escalation_by_an_hour(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    mono = Monotonic()
    d = pushover_dispatcher(sessions, pushover, clock, monotonic=mono)
    apply(sessions, clock, event(clock=clock))
    d.run_once()
    jump(clock, -60)
    mono.now += 1
    d.run_once()
    clock.advance(minutes=15)
    mono.now += 15 * 60
    d.run_once()
    assert len(sent_to(pushover, BOB_KEY)) == 1  # today's code: only an hour and a quarter later


def test_a_clock_set_forward_does_not_fire_every_step_at_once(
        sessions: sessionmaker[Session], clock: Clock, world: World, pushover: PushoverServer) -> None:
    mono = Monotonic()
    d = pushover_dispatcher(sessions, pushover, clock, monotonic=mono)
    apply(sessions, clock, event(clock=clock))
    d.run_once()
    jump(clock, +120)
    mono.now += 1
    d.run_once()
    assert sent_to(pushover, BOB_KEY) == [] and sent_to(pushover, COUNCIL_KEY) == []
    clock.advance(minutes=15)
    mono.now += 15 * 60
    d.run_once()
    assert len(sent_to(pushover, BOB_KEY)) == 1


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")



def test_deadlines_and_concurrency_come_from_the_settings(
        sessions: sessionmaker[Session], clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELECARE_DELIVERY_DEADLINE_URGENT_S", "600")
    monkeypatch.setenv("TELECARE_DELIVERY_DEADLINE_S", "7200")
    monkeypatch.setenv("TELECARE_DELIVERY_CONCURRENCY", "2")
    d = Dispatcher(sessions, LogNotifier(io.StringIO()), clock, **dispatcher_options(load_settings()))
    assert d.retry_deadline_urgent == timedelta(minutes=10) and d.retry_deadline == timedelta(hours=2)
    assert d.max_concurrent_sends == 2
    monkeypatch.setenv("TELECARE_DELIVERY_CONCURRENCY", "0")
    with pytest.raises(ConfigError, match="TELECARE_DELIVERY_CONCURRENCY"):
        load_settings()
