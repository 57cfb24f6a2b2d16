"""The gateway's consumers over a migrated database holding one simulated home (``h1``) and its resident."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting import people
from gateway.db.migrate import upgrade
from gateway.db.session import make_engine, make_session_factory
from gateway.homes import import_homes, parse_description
from sensors_sim.scenario import default_home, to_home_description

HOME = "h1"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with factory() as s:
        import_homes(s, parse_description(to_home_description(default_home(HOME))))
        people.add_resident(s, HOME, "Mary Jones")
        s.commit()
    yield factory
    engine.dispose()
