"""The retention purge (issue 12): each kind removes what is past its organisation's retention and keeps the rest;
other organisations' data are untouched. On SQLite and PostgreSQL (``db_url``), with the embedded readings store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from gateway.db.models import (
    Alert,
    AlertLog,
    AuditEntry,
    AuthToken,
    DeadLetter,
    Home,
    HomeClaim,
    LoginThrottleEntry,
    Notification,
    Organisation,
    Recipient,
    User,
)
from gateway.db.session import make_session_factory
from gateway.errors import StoreUnavailable
from gateway.metrics import WorkerMetrics
from gateway.purge import RetentionPurge
from gateway.stores.readings.base import DailySummary, Point
from gateway.stores.readings.sqlite import SqliteReadingStore
from telecare.cli_db import db_app

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


class FixedClock:
    def now_ms(self) -> int:
        return int(NOW.timestamp() * 1000)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteReadingStore]:
    s = SqliteReadingStore(tmp_path / "readings.sqlite3")
    yield s
    s.close()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class World:
    a: int  # organisation A: cared for "shared" long ago (ended 10 years ago), and for "recent" until 2 years ago
    b: int  # organisation B: cares for "shared" now
    alerts: dict[str, int]


def alert(session: Session, home: str, org: int | None, raised: datetime, state: str = "resolved") -> Alert:
    row = Alert(home_id=home, organisation_id=org, kind="inactivity", subject="", severity=2, state=state,
                message="no movement", details={}, raised_at=raised, updated_at=raised)
    session.add(row)
    session.flush()
    return row


def seed(sessions: sessionmaker[Session], store: SqliteReadingStore) -> World:
    a_claim = (NOW - 16 * YEAR, NOW - 10 * YEAR)  # A cared for "shared" then: ended past 8 years
    with sessions.begin() as s:
        a, b = Organisation(name="A", dead_letter_retention_days=2), Organisation(name="B",
                                                                                  audit_retention_days=3650)
        s.add_all([a, b])
        s.flush()
        s.add_all([Home(id="shared", organisation_id=b.id), Home(id="recent"), Home(id="a-now", organisation_id=a.id),
                   Home(id="b-now", organisation_id=b.id)])
        s.flush()
        s.add_all([HomeClaim(home_id="shared", organisation_id=a.id, claimed_at=a_claim[0], released_at=a_claim[1]),
                   HomeClaim(home_id="shared", organisation_id=b.id, claimed_at=a_claim[1]),
                   HomeClaim(home_id="recent", organisation_id=a.id, claimed_at=NOW - 6 * YEAR,
                             released_at=NOW - 2 * YEAR),
                   HomeClaim(home_id="a-now", organisation_id=a.id, claimed_at=NOW - 20 * YEAR)])
        recipient = Recipient(organisation_id=a.id, name="Carer", pushover_user_key="u" * 30)
        s.add(recipient)
        s.flush()
        old = alert(s, "shared", a.id, NOW - 12 * YEAR)
        s.add_all([AlertLog(alert_id=old.id, at=old.raised_at, what="raised", detail="Mary"),
                   Notification(alert_id=old.id, recipient_id=recipient.id, step=0, purpose="alert", priority=1,
                                title="Mary", message="no movement", state="sent", created_at=old.raised_at)])
        alerts = {
            "a_old": old.id,
            "a_old_open": alert(s, "shared", a.id, NOW - 11 * YEAR, state="acknowledged").id,
            "b_shared": alert(s, "shared", b.id, NOW - 5 * YEAR).id,
            "a_recent": alert(s, "recent", a.id, NOW - 3 * YEAR).id,
            "a_now_old": alert(s, "a-now", a.id, NOW - 15 * YEAR).id,  # care goes on: kept
        }
        for org, age in ((a.id, 9 * YEAR), (a.id, YEAR), (b.id, 9 * YEAR), (b.id, 11 * YEAR)):
            s.add(AuditEntry(organisation_id=org, at=NOW - age, actor="x", action="view", resource="resident",
                             detail=f"{org} {age.days}"))
        for home, days in (("a-now", 3), ("a-now", 1), ("b-now", 3), (None, 3)):
            s.add(DeadLetter(received_at=NOW - timedelta(days=days), home_id=home, topic="t", reason="bad",
                             detail="", payload="{"))
        user = User(organisation_id=a.id, email="a@example.org", name="Ann", role="admin", password_hash="x")
        s.add(user)
        s.flush()
        for i, expires in enumerate((NOW - timedelta(minutes=1), NOW + timedelta(hours=1))):
            s.add(AuthToken(user_id=user.id, token_hash=f"{i:064d}", created_at=NOW - timedelta(hours=2),
                            expires_at=expires))
            s.add(LoginThrottleEntry(key=f"{i:064x}", count=1, started_at=NOW - timedelta(hours=1),
                                     expires_at=expires))
        world = World(a.id, b.id, alerts)
    store.write([Point("reading", {"home": "shared", "device": "d"}, {"n": 1}, ms(NOW - 12 * YEAR)),
                 Point("reading", {"home": "shared", "device": "d"}, {"n": 2}, ms(NOW - 5 * YEAR)),
                 Point("reading", {"home": "recent", "device": "d"}, {"n": 3}, ms(NOW - 3 * YEAR))])
    old_day = (NOW - 12 * YEAR).date()
    store.write_daily_summaries([DailySummary("shared", old_day, {"meals": 3}),
                                 DailySummary("shared", (NOW - 5 * YEAR).date(), {"meals": 2})])
    return world


def readings(store: SqliteReadingStore, home: str) -> list[float]:
    return [float(p.fields["n"]) for p in store.timeline(home, 0, ms(NOW))]


def alert_ids(sessions: sessionmaker[Session]) -> set[int]:
    with sessions() as s:
        return set(s.scalars(select(Alert.id)))


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def purger(sessions: sessionmaker[Session], store: object, metrics: WorkerMetrics | None = None) -> RetentionPurge:
    return RetentionPurge(sessions, FixedClock(), store, dead_letter_max_age_days=14.0,  # type: ignore[arg-type]
                          metrics=metrics, pause_s=0, api_now=lambda: NOW)


def test_each_kind_goes_past_its_retention_and_the_rest_stays(sessions: sessionmaker[Session],
                                                              store: SqliteReadingStore) -> None:
    world = seed(sessions, store)
    metrics = WorkerMetrics()
    purged = purger(sessions, store, metrics).purge()

    a, b = purged.organisations
    assert (a.organisation_id, a.alerts, a.reading_periods, a.claims, a.audit, a.dead_letters) == (
        world.a, 1, 1, 1, 1, 1)
    assert (b.organisation_id, b.alerts, b.reading_periods, b.claims, b.audit, b.dead_letters) == (
        world.b, 0, 0, 0, 1, 0)
    assert (purged.tokens, purged.login_throttle) == (1, 1)

    # Care records: A's alert of its ended claim went, with its notifications and timeline; the open one stays
    # (uncertainty is never erased silently), as do B's, those of a claim ended 2 years ago and of ongoing care.
    ids = world.alerts
    assert alert_ids(sessions) == {ids["a_old_open"], ids["b_shared"], ids["a_recent"], ids["a_now_old"]}
    assert count(sessions, Notification) == 0 and count(sessions, AlertLog) == 0
    assert readings(store, "shared") == [2.0] and readings(store, "recent") == [3.0]
    assert [s.day for s in store.daily_summaries("shared", date(2000, 1, 1), NOW.date())] == [
        (NOW - 5 * YEAR).date()]
    with sessions() as s:
        claims = s.execute(select(HomeClaim.home_id, HomeClaim.organisation_id).order_by(HomeClaim.id)).all()
        assert claims == [("shared", world.b), ("recent", world.a), ("a-now", world.a)]
        # Audit: A keeps 8 years (the 9-year-old row went); B keeps 10 (its 11-year-old row went, not the 9).
        audit = sorted((org, (NOW - at).days // 365) for org, at in s.execute(
            select(AuditEntry.organisation_id, AuditEntry.at)))
        assert audit == [(world.a, 1), (world.b, 9)]
        # Dead letters: A keeps 2 days for its homes; B's home and the unassigned follow the global 14 days.
        dead = sorted((home or "-", (NOW - at).days) for home, at in s.execute(
            select(DeadLetter.home_id, DeadLetter.received_at)))
        assert dead == [("-", 3), ("a-now", 1), ("b-now", 3)]
        assert s.scalars(select(AuthToken.expires_at)).all() == [NOW + timedelta(hours=1)]
        assert s.scalars(select(LoginThrottleEntry.expires_at)).all() == [NOW + timedelta(hours=1)]

    assert metrics.retention_purged.labels("alerts")._value.get() == 1
    assert metrics.retention_purged.labels("audit")._value.get() == 2
    assert metrics.retention_readings_pending._value.get() == 0
    again = purger(sessions, store).purge()
    assert sum(o.alerts + o.claims + o.audit + o.dead_letters for o in again.organisations) == 0


def test_a_dry_run_counts_and_removes_nothing(sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    world = seed(sessions, store)
    before = alert_ids(sessions)
    purged = purger(sessions, None).purge(dry_run=True)
    a = purged.organisations[0]
    assert (a.alerts, a.reading_periods, a.claims, a.audit, a.dead_letters) == (1, 1, 1, 1, 1)
    assert (purged.tokens, purged.login_throttle) == (1, 1)
    assert alert_ids(sessions) == before and world.alerts["a_old"] in before
    assert count(sessions, HomeClaim) == 4 and count(sessions, AuditEntry) == 4
    assert readings(store, "shared") == [1.0, 2.0]


class NoDeleteStore:
    """A store that cannot delete (InfluxDB away, or VictoriaMetrics, which has no delete API)."""

    def __init__(self, inner: SqliteReadingStore) -> None:
        self.inner = inner

    def delete_range(self, home: str, start_ms: int, end_ms: int) -> None:
        raise StoreUnavailable("no delete API here")


def test_readings_that_cannot_be_deleted_keep_the_claim_for_the_next_purge(
        sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    seed(sessions, store)
    metrics = WorkerMetrics()
    first = purger(sessions, NoDeleteStore(store), metrics).purge()
    assert (first.organisations[0].readings_pending, first.organisations[0].claims) == (1, 0)
    assert "could not be deleted" in first.organisations[0].summary()
    assert metrics.retention_readings_pending._value.get() == 1
    assert count(sessions, HomeClaim) == 4 and readings(store, "shared") == [1.0, 2.0]

    second = purger(sessions, store, metrics).purge()
    assert (second.organisations[0].readings_pending, second.organisations[0].claims) == (0, 1)
    assert readings(store, "shared") == [2.0]
    assert metrics.retention_readings_pending._value.get() == 0


def test_cli_purge_prints_per_organisation(db_url: str, tmp_path: Path, sessions: sessionmaker[Session],
                                           store: SqliteReadingStore) -> None:
    seed(sessions, store)
    env = {"TELECARE_DB_URL": db_url, "TELECARE_DATA_DIR": str(tmp_path)}
    # The CLI reads the wall clock: the seeded world is from 2026-12-06, and its old rows are old at any later date.
    dry = CliRunner().invoke(db_app, ["purge", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("dry run, nothing removed")
    assert "organisation 1 (A): 1 alerts, 1 care periods' readings, 1 ended care periods" in dry.output
    assert count(sessions, HomeClaim) == 4

    done = CliRunner().invoke(db_app, ["purge"], env=env)
    assert done.exit_code == 0, done.output
    assert "organisation 1 (A): 1 alerts" in done.output and "everyone:" in done.output
    assert count(sessions, HomeClaim) == 3
    assert readings(store, "shared") == [2.0]  # the embedded store of TELECARE_DATA_DIR


def test_run_purges_until_stopped(sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    seed(sessions, store)
    stop = threading.Event()
    thread = threading.Thread(target=purger(sessions, store).run, args=(stop, 0.05))
    thread.start()
    try:
        for _ in range(100):
            if count(sessions, HomeClaim) == 3:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert count(sessions, HomeClaim) == 3 and not thread.is_alive()


def test_the_worker_runs_the_purge_on_its_own_database_store_and_metrics(
        sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    from types import SimpleNamespace

    from gateway.purge import run_purge

    seed(sessions, store)
    wall = datetime.now(UTC)
    with sessions.begin() as s:  # a live login, on the API's (wall) clock
        user_id = s.scalars(select(User.id)).first()
        s.add(AuthToken(user_id=user_id, token_hash="f" * 64, created_at=wall, expires_at=wall + timedelta(hours=1)))
    # A worker following a simulator 30 days ahead of the wall clock.
    ahead = SimpleNamespace(now_ms=lambda: ms(wall + timedelta(days=30)))
    worker = SimpleNamespace(sessions=sessions, clock=ahead, store=store, metrics=WorkerMetrics(),
                             settings=SimpleNamespace(dead_letter_max_age_days=14.0))
    stop = threading.Event()
    stop.set()  # one purge, then stop
    run_purge(worker, stop)  # type: ignore[arg-type]
    assert count(sessions, HomeClaim) == 3 and readings(store, "shared") == [2.0]
    assert worker.metrics.retention_purged.labels("claims")._value.get() == 1
    with sessions() as s:  # tokens expire on the API's wall clock, not on the worker's
        assert s.scalar(select(AuthToken.id).where(AuthToken.token_hash == "f" * 64)) is not None


def test_a_removed_residents_care_ends_then_and_is_purged_past_retention(
        sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    """The organisation keeps the home, and a resident leaves: their care ends at their removal, and their alerts
    and readings go the organisation's retention after it, while the next resident's stay."""
    from gateway.db.models import EndedCare, Resident
    from gateway.purge import record_care_end

    world = seed(sessions, store)
    left, stayed = NOW - 9 * YEAR, NOW - YEAR  # removed 9 years ago (past 8), and 1 year ago
    with sessions.begin() as s:
        for home, created, removed in (("a-now", NOW - 12 * YEAR, left), ("b-now", NOW - 3 * YEAR, stayed)):
            resident = Resident(home_id=home, name="Mary", created_at=created)
            s.add(resident)
            s.flush()
            record_care_end(s, resident, world.a if home == "a-now" else world.b, removed)
            s.delete(resident)
        gone = alert(s, "a-now", world.a, NOW - 10 * YEAR).id
        kept = [alert(s, "a-now", world.a, NOW - 8 * YEAR).id,  # the next resident's
                alert(s, "b-now", world.b, NOW - 2 * YEAR).id]  # care ended within retention
    store.write([Point("reading", {"home": "a-now", "device": "d"}, {"n": 7}, ms(NOW - 10 * YEAR)),
                 Point("reading", {"home": "a-now", "device": "d"}, {"n": 8}, ms(NOW - 8 * YEAR))])

    purger(sessions, store).purge()
    remaining = alert_ids(sessions)
    assert gone not in remaining and set(kept) <= remaining
    assert world.alerts["a_now_old"] in remaining  # raised 15 years ago, before that resident came: not theirs
    assert readings(store, "a-now") == [8.0]
    with sessions() as s:
        assert s.scalars(select(EndedCare.home_id)).all() == ["b-now"]
