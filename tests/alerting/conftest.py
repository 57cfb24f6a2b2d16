"""Alerting fixtures: a migrated database (SQLite and PostgreSQL), a hand-advanced clock, a resident and a chain.

The ``pushover`` fixture (a local server answering as Pushover does) is loaded by the test modules that use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting import people
from gateway.clock import SimulatedClock
from gateway.db.migrate import upgrade
from gateway.db.models import Home
from gateway.db.session import make_engine, make_session_factory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOME = "h1"
# Pushover user keys: 30 letters and digits.
ANNE_KEY, BOB_KEY, COUNCIL_KEY = "anne" + "0" * 26, "bob" + "0" * 27, "council" + "0" * 23


class Clock(SimulatedClock):
    """The gateway's simulated clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        super().__init__()
        self.tick(int(start.timestamp() * 1000), 1.0)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    def advance(self, minutes: float = 0, seconds: float = 0) -> datetime:
        self.tick(self.now_ms() + round((minutes * 60 + seconds) * 1000), 1.0)
        return self.now()


@dataclass
class World:
    """A home with its resident (Mrs Jones) and the chain Anne 15 min → Bob 15 min → Council 30 min."""

    anne: int
    bob: int
    council: int
    resident: int


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with sessions.begin() as s:
        s.add(Home(id=HOME, name="12 Acacia Avenue"))
        s.flush()
        resident = people.add_resident(s, HOME, "Mrs Jones")
        anne = people.add_recipient(s, "Anne", ANNE_KEY)
        bob = people.add_recipient(s, "Bob", BOB_KEY)
        council = people.add_recipient(s, "Council", COUNCIL_KEY)
        people.set_chain(s, HOME, [(anne.id, 15), (bob.id, 15), (council.id, 30)])
        return World(anne.id, bob.id, council.id, resident.id)

