"""Only one dispatcher sends per database (issue 11, finding 7): on PostgreSQL, two dispatchers over the same
database never both send the same row, and a standing-by one takes over when the other is gone."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bench.pushover_server import PushoverServer
from gateway.alerting.dispatcher import Dispatcher
from gateway.db.session import make_engine, make_session_factory
from tests.alerting.conftest import ANNE_KEY, BOB_KEY, Clock, World
from tests.alerting.helpers import apply, event, pushover_dispatcher, sent_to

pytest_plugins = ["tests.conftest_pushover"]


@pytest.fixture
def other_sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """The same database through an engine of its own, as a second gateway process would have."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite: the gateway's one worker process runs the one dispatcher (see DispatcherLock)")
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_two_dispatchers_never_both_send_the_same_row(
        sessions: sessionmaker[Session], other_sessions: sessionmaker[Session], clock: Clock, world: World,
        pushover: PushoverServer) -> None:
    first = pushover_dispatcher(sessions, pushover, clock)
    second = pushover_dispatcher(other_sessions, pushover, clock)
    try:
        pushover.slow_users[ANNE_KEY] = 1.0  # the first is mid-send, its row in ``sending``, when the second looks
        apply(sessions, clock, event(clock=clock))
        sending = threading.Thread(target=first.run_once)
        sending.start()
        _wait_for_request(pushover)
        second.run_once()  # today's code takes the row for a crashed send and sends it again
        sending.join(10)
        for _ in range(3):
            second.run_once()
            first.run_once()
        assert len(sent_to(pushover, ANNE_KEY)) == 1

        first.close()  # the first gateway stops: the second takes over the chain
        clock.advance(minutes=15)
        second.run_once()
        assert len(sent_to(pushover, ANNE_KEY)) == 1 and len(sent_to(pushover, BOB_KEY)) == 1
    finally:
        first.close()
        second.close()


def test_a_dispatcher_standing_by_does_no_work(
        sessions: sessionmaker[Session], other_sessions: sessionmaker[Session], clock: Clock, world: World,
        pushover: PushoverServer) -> None:
    first: Dispatcher = pushover_dispatcher(sessions, pushover, clock)
    second: Dispatcher = pushover_dispatcher(other_sessions, pushover, clock)
    try:
        first.run_once()  # takes the lock
        apply(sessions, clock, event(clock=clock))
        assert second.run_once() is None
        assert pushover.messages == []
        first.run_once()
        assert len(pushover.messages) == 1
    finally:
        first.close()
        second.close()


def _wait_for_request(server: PushoverServer, timeout_s: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if server.requests:
            return
        done.wait(0.01)
    raise AssertionError("no request reached the Pushover server")
