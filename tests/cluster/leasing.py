"""Shared by the lease tests: each "worker" gets its own engine (its own connections), as separate processes would."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.migrate import upgrade
from gateway.db.session import make_engine, make_session_factory

# Cluster mode requires PostgreSQL (gateway.cluster.database.require_postgresql): the lease tests run on it only.
ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

Connect = Callable[[], sessionmaker[Session]]


@pytest.fixture
def connect(db_url: str) -> Iterator[Connect]:
    """``connect()``: sessions of a new engine on the migrated database, one per worker; disposed at teardown."""
    upgrade(db_url)
    engines: list[Engine] = []

    def new_worker_sessions() -> sessionmaker[Session]:
        engine = make_engine(db_url)
        engines.append(engine)
        return make_session_factory(engine)

    yield new_worker_sessions
    for engine in engines:
        engine.dispose()


def lease_rows(sessions: sessionmaker[Session]) -> dict[int, tuple[str | None, int]]:
    """Partition to (owner, epoch), as the database has them."""
    with sessions() as session:
        rows = session.execute(text("SELECT partition, owner, epoch FROM partition_leases ORDER BY partition"))
        return {partition: (owner, epoch) for partition, owner, epoch in rows}
