"""Transactions that only read do not wait for the write lock on SQLite: the dispatcher's looks for due work were
queued behind the detectors' and the registry's writes (issue 11, finding 8)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from gateway.db.migrate import upgrade
from gateway.db.models import Organisation
from gateway.db.session import make_engine, make_session_factory, read_only_sessions


def test_a_read_only_transaction_reads_while_another_holds_the_write_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        s.add(Organisation(name="Acme care"))
    writer = sessions()
    writer.execute(select(func.count()).select_from(Organisation))  # BEGIN IMMEDIATE: the write lock is held
    try:
        started = time.monotonic()
        with read_only_sessions(sessions).begin() as reader:
            assert reader.scalar(select(func.count()).select_from(Organisation)) == 1
        assert time.monotonic() - started < 2, "the reader did not wait for the writer (the busy timeout is 10 s)"
    finally:
        writer.rollback()
        writer.close()
    engine.dispose()
