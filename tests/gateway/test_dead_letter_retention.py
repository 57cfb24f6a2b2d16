"""Dead letters are kept by age and by count, per home and in all, purged in batches (issue 11, finding 3).

On SQLite and PostgreSQL (the ``db_url`` fixture, tests/conftest.py).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import WallClock
from gateway.config import Settings, load_settings
from gateway.db.migrate import upgrade
from gateway.db.models import DeadLetter
from gateway.db.session import make_engine, make_session_factory
from gateway.metrics import WorkerMetrics
from gateway.retention import DeadLetterLimits, DeadLetterRetention

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def now_ms(self) -> int:
        return int(self.when.timestamp() * 1000)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def add(sessions: sessionmaker[Session], home: str | None, ages: list[timedelta], seq0: int = 0) -> None:
    """Dead letters of ``home`` received ``age`` before NOW, one per age."""
    rows: list[dict[str, Any]] = [
        {"journal_seq": seq0 + i, "received_at": NOW - age, "home_id": home, "device": "d", "topic": "t",
         "reason": "invalid_json", "detail": "", "payload": "{"} for i, age in enumerate(ages)]
    with sessions() as session, session.begin():
        session.execute(insert(DeadLetter), rows)


def kept(sessions: sessionmaker[Session]) -> dict[str | None, list[datetime]]:
    """Each home's dead letters' receipt times, oldest first."""
    out: dict[str | None, list[datetime]] = {}
    with sessions() as session:
        for home, at in session.execute(select(DeadLetter.home_id, DeadLetter.received_at)
                                        .order_by(DeadLetter.received_at)):
            out.setdefault(home, []).append(at)
    return out


def minutes(*values: int) -> list[timedelta]:
    return [timedelta(minutes=m) for m in values]


def count_deletes(engine: Engine) -> list[str]:
    """Each DELETE on dead_letters, in order."""
    statements: list[str] = []

    @event.listens_for(engine, "after_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM DEAD_LETTERS"):
            statements.append(statement)
    return statements


def test_dead_letters_past_the_age_go_in_batches_and_the_metric_counts_them(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    add(sessions, "h1", [timedelta(days=15)] * 2500 + [timedelta(days=13)] * 3)
    metrics = WorkerMetrics()
    deletes = count_deletes(engine)
    retention = DeadLetterRetention(sessions, FixedClock(NOW), DeadLetterLimits(pause_s=0), metrics)
    purged = retention.purge()
    assert (purged.age, purged.home, purged.total, purged.kept) == (2500, 0, 0, 3)
    assert len(deletes) == 3 and all("LIMIT" in d.upper() for d in deletes), "batches of at most 1,000 rows"
    assert kept(sessions)["h1"] == [NOW - timedelta(days=13)] * 3
    assert metrics.registry.get_sample_value("telecare_dead_letters_purged_total", {"rule": "age"}) == 2500
    assert metrics.registry.get_sample_value("telecare_dead_letters_kept") == 3
    assert retention.purge().age == 0  # nothing more to do


def test_a_home_over_its_count_loses_its_oldest_and_no_other_home_is_touched(
        sessions: sessionmaker[Session]) -> None:
    add(sessions, "noisy", minutes(*range(1, 26)))  # 1 .. 25 minutes old
    add(sessions, "quiet", minutes(100, 200), seq0=100)
    add(sessions, None, minutes(*range(300, 307)), seq0=200)  # no home: one bucket of its own
    metrics = WorkerMetrics()
    limits = DeadLetterLimits(max_per_home=5, batch_rows=3, pause_s=0)
    purged = DeadLetterRetention(sessions, FixedClock(NOW), limits, metrics).purge()
    assert purged.home == 20 + 2 and purged.kept == 5 + 2 + 5
    after = kept(sessions)
    assert after["noisy"] == [NOW - m for m in minutes(5, 4, 3, 2, 1)]  # the newest five
    assert after["quiet"] == [NOW - m for m in minutes(200, 100)]
    assert after[None] == [NOW - m for m in minutes(304, 303, 302, 301, 300)]
    assert metrics.registry.get_sample_value("telecare_dead_letters_purged_total", {"rule": "home"}) == 22


def test_over_the_total_the_oldest_go_whichever_home(sessions: sessionmaker[Session]) -> None:
    add(sessions, "a", minutes(10, 30, 50))
    add(sessions, "b", minutes(20, 40, 60), seq0=10)
    limits = DeadLetterLimits(max_rows=4, batch_rows=1, pause_s=0)
    purged = DeadLetterRetention(sessions, FixedClock(NOW), limits).purge()
    assert (purged.total, purged.kept) == (2, 4)
    assert kept(sessions) == {"a": [NOW - m for m in minutes(30, 10)], "b": [NOW - m for m in minutes(40, 20)]}


def test_the_settings_reach_the_limits_and_the_defaults_are_the_documented_ones() -> None:
    s = load_settings()
    assert (s.dead_letter_max_age_days, s.dead_letter_max_rows, s.dead_letter_max_per_home) == (14, 100_000, 10_000)
    s = load_settings(dead_letter_max_age_days=2, dead_letter_max_rows=50, dead_letter_max_per_home=7)
    assert (s.dead_letter_max_age_days, s.dead_letter_max_rows, s.dead_letter_max_per_home) == (2, 50, 7)


def wait_until_empty(sessions: sessionmaker[Session], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sessions() as session:
            if session.scalar(select(func.count()).select_from(DeadLetter)) == 0:
                return True
        time.sleep(0.02)
    return False


def test_the_worker_purges_at_start_and_then_periodically(sessions: sessionmaker[Session]) -> None:
    add(sessions, "h1", [timedelta(days=30)] * 3)
    retention = DeadLetterRetention(sessions, WallClock(), DeadLetterLimits(pause_s=0))
    stop = threading.Event()
    thread = threading.Thread(target=retention.run, args=(stop, 0.05))
    thread.start()
    try:
        assert wait_until_empty(sessions)
        add(sessions, "h1", [timedelta(days=30)], seq0=10)  # arrives later: the next round takes it
        assert wait_until_empty(sessions)
    finally:
        stop.set()
        thread.join(timeout=10)


def test_the_worker_runs_retention_with_the_configured_limits(tmp_path: Path) -> None:
    from telecare.processes import build_worker

    settings = load_settings(data_dir=tmp_path, dead_letter_max_age_days=1, dead_letter_max_rows=50,
                             dead_letter_max_per_home=7)
    upgrade(settings.database_url)
    worker = build_worker(settings)
    assert (worker.retention.limits.max_age_days, worker.retention.limits.max_rows,
            worker.retention.limits.max_per_home) == (1, 50, 7)
    sessions = make_session_factory(make_engine(settings.database_url))
    now = datetime.now(UTC)
    with sessions() as session, session.begin():
        session.execute(insert(DeadLetter), [
            {"journal_seq": i, "received_at": now - timedelta(days=2 if i < 3 else 0, seconds=i), "home_id": "h1",
             "device": "d", "topic": "t", "reason": "invalid_json", "detail": "", "payload": "{"}
            for i in range(12)])
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "telecare_dead_letters_kept 7.0" not in _text(settings):
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=60)
    text = _text(settings)
    assert 'telecare_dead_letters_purged_total{rule="age"} 3.0' in text
    assert 'telecare_dead_letters_purged_total{rule="home"} 2.0' in text
    assert "telecare_dead_letters_kept 7.0" in text
    assert "telecare_journal_bytes" in text


def _text(settings: Settings) -> str:
    path = settings.worker_metrics_path
    return path.read_text() if path.exists() else ""
