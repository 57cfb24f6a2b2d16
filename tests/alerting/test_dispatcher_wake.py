"""Work committed by a process whose dispatcher stands by wakes the dispatcher that sends, in another process
(cluster mode: any worker's detectors raise alerts, one worker sends), rather than waiting for its next poll.

The sending dispatcher here polls once an hour: the alert can only reach Pushover within the test's minute because
the notice woke it."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bench.pushover_server import PushoverServer
from gateway.alerting.wakeups import WorkNotices
from gateway.db.session import make_engine, make_session_factory
from tests.alerting.conftest import ANNE_KEY, Clock, World
from tests.alerting.helpers import apply, event, pushover_dispatcher, sent_to

pytest_plugins = ["tests.conftest_pushover"]

NEVER_S = 3600.0  # the sending dispatcher's poll: longer than any test waits
PATIENCE_S = 60.0  # how long the test waits for what a notice brings (a shared, slow machine)


@pytest.fixture
def other_engine(db_url: str) -> Iterator[Engine]:
    """The same database through an engine of its own, as another worker process has."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite: one gateway process, whose detectors wake its dispatcher directly")
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_an_alert_committed_where_the_dispatcher_stands_by_reaches_pushover_through_the_one_sending(
        sessions: sessionmaker[Session], other_engine: Engine, clock: Clock, world: World,
        pushover: PushoverServer) -> None:
    other_sessions = make_session_factory(other_engine)
    sending = pushover_dispatcher(sessions, pushover, clock, idle_poll_s=NEVER_S)
    standing_by = pushover_dispatcher(other_sessions, pushover, clock, idle_poll_s=NEVER_S)
    stop = threading.Event()
    thread = threading.Thread(target=sending.run, args=(stop,), name="sending-dispatcher", daemon=True)
    try:
        assert sending.run_once() is None  # takes the lock; nothing due
        assert standing_by.run_once() is None  # the lock is taken: stands by
        thread.start()
        _until(lambda: _in_pause(thread), "the sending dispatcher pausing")

        apply(other_sessions, clock, event(clock=clock))  # the other worker's detectors commit an alert ...
        standing_by.wake()  # ... and wake their own dispatcher, which stands by

        _until(lambda: len(sent_to(pushover, ANNE_KEY)) == 1, "the alert at Pushover")
    finally:
        stop.set()
        thread.join(10)
        standing_by.close()
        sending.close()
    assert not thread.is_alive()


def test_a_notice_is_heard_once_by_the_listener(db_url: str, other_engine: Engine) -> None:
    engine = make_engine(db_url)
    listener, announcer = WorkNotices(engine), WorkNotices(other_engine)
    try:
        assert not listener.heard(0)  # not listening yet
        assert listener.listen()
        announcer.announce()
        assert listener.heard(PATIENCE_S)
        assert not listener.heard(0)  # heard once
        listener.stop_listening()
        announcer.announce()
        assert not listener.listening and not listener.heard(0)
    finally:
        listener.stop_listening()
        engine.dispose()


def test_on_sqlite_notices_do_nothing(db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the SQLite case")
    engine = make_engine(db_url)
    notices = WorkNotices(engine)
    try:
        notices.announce()
        assert not notices.listen() and not notices.heard(0)
    finally:
        engine.dispose()


def _in_pause(thread: threading.Thread) -> bool:
    """Whether ``thread`` (a dispatcher's ``run``) is in its pause between looks for work, so that what it sends
    next is what a wake brought, not what a look already under way found."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "_pause":
            return True
        frame = frame.f_back
    return False


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {PATIENCE_S:.0f} s")
        time.sleep(0.02)
