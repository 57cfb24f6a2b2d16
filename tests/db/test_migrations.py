"""Migrations on SQLite and PostgreSQL: they build the schema the models describe, and nothing else."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from gateway.db.migrate import alembic_config, current_revision, head_revision, upgrade
from gateway.db.models import Alert, Base, Device, Home, HomeClaim
from gateway.db.session import make_engine, make_session_factory, normalise_url

TABLES = {"organisations", "homes", "devices", "dead_letters", "residents", "absences", "recipients",
          "escalation_steps", "alerts", "alert_log", "notifications", "detector_checkpoints",
          "users", "auth_tokens", "api_keys", "audit_log", "login_throttle", "home_claims", "ended_care",
          "alert_notes", "alert_attendance", "cluster_workers", "partition_leases", "cluster_device_states",
          "cluster_streams"}


def test_upgrade_creates_every_table_at_head(db_url: str) -> None:
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables == TABLES | {"alembic_version"}


def test_upgrade_again_changes_nothing(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()


def test_processes_starting_together_take_turns(db_url: str) -> None:
    """The gateway and the API both migrate at start; started together, neither may fail."""
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in [pool.submit(upgrade, db_url) for _ in range(3)]:
            future.result(timeout=120)
    assert current_revision(db_url) == head_revision()


def test_threads_of_one_process_take_turns(db_url: str) -> None:
    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(upgrade, db_url) for _ in range(3)]:
            future.result(timeout=120)
    assert current_revision(db_url) == head_revision()


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": True})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_downgrade_to_nothing_and_back(engine: Engine, db_url: str) -> None:
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_outcomes_migration_down_and_up_keeps_the_schema(engine: Engine, db_url: str) -> None:
    """0004 adds columns to tables that have data: going back one step and forward again (SQLite copies the table
    to drop a column) must leave the schema exactly as the models say, the open-alert index included."""
    command.downgrade(alembic_config(engine), "0003")
    columns = {c["name"] for c in inspect(engine).get_columns("alerts")}
    assert "outcome" not in columns and "uq_alerts_open_key" in {ix["name"] for ix in inspect(engine)
                                                                 .get_indexes("alerts")}
    upgrade(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    checkpoint = {c["name"] for c in inspect(engine).get_columns("detector_checkpoints")}
    assert {"baseline", "baseline_at"} <= checkpoint


def test_the_indexes_the_api_filters_on(engine: Engine) -> None:
    inspector = inspect(engine)
    dead = {tuple(ix["column_names"]) for ix in inspector.get_indexes("dead_letters")}
    assert {("received_at",), ("reason", "received_at"), ("home_id", "received_at")} <= dead
    devices = {tuple(uq["column_names"]) for uq in inspector.get_unique_constraints("devices")}
    devices |= {tuple(ix["column_names"]) for ix in inspector.get_indexes("devices")}
    assert ("home_id", "name") in devices


def test_times_come_back_aware_and_in_utc(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    seen = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    with sessions.begin() as s:
        s.add(Home(id="h1", last_seen=seen))
    with sessions() as s:
        last_seen = s.scalar(select(Home.last_seen).where(Home.id == "h1"))
    assert last_seen == seen
    assert last_seen is not None and last_seen.tzinfo is UTC
    assert last_seen.hour == 23


def test_naive_times_are_refused(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with pytest.raises(StatementError, match="naive datetime"), sessions.begin() as s:
        s.add(Home(id="h1", last_seen=datetime(2026, 1, 1)))
        s.flush()


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(Device(home_id="nowhere", name="kitchen_motion"))
        s.flush()


def test_deleting_a_home_deletes_its_devices(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        s.add(Home(id="h1"))
        s.flush()
        s.add(Device(home_id="h1", name="kitchen_motion"))
    with sessions.begin() as s:
        s.execute(Home.__table__.delete())
    with sessions() as s:
        assert s.scalars(select(Device)).all() == []


def test_sqlite_engine_settings(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'telecare.db'}")
    try:
        with engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()
    assert (tmp_path / "sub" / "dir" / "telecare.db").exists()


@pytest.mark.parametrize("url", ["postgresql://u@db:5432/telecare", "postgres://u@db/telecare",
                                 "postgresql+psycopg://u@db/telecare"])
def test_postgresql_urls_mean_psycopg(url: str) -> None:
    assert normalise_url(url).drivername == "postgresql+psycopg"


def test_other_urls_are_kept() -> None:
    assert normalise_url("sqlite:///var/telecare.db").drivername == "sqlite"


def test_claims_migration_backfills_claims_and_alert_owners(engine: Engine, db_url: str) -> None:
    """0007: a home that had an organisation has a current claim from its first sighting, and its alerts are that
    organisation's (the only one known)."""
    command.downgrade(alembic_config(engine), "0006")
    seen = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    with engine.begin() as c:
        c.execute(text("INSERT INTO organisations (id, name, created_at) VALUES (1, 'A', :t)"), {"t": seen})
        c.execute(text("INSERT INTO homes (id, organisation_id, timezone, first_seen) "
                       "VALUES ('h1', 1, 'UTC', :t), ('h2', NULL, 'UTC', :t), ('h3', 1, 'UTC', NULL)"), {"t": seen})
        c.execute(text("INSERT INTO alerts (home_id, kind, subject, severity, state, message, details, raised_at, "
                       "updated_at, repeat_count, escalation_step) "
                       "VALUES ('h1', 'k', '', 1, 'open', 'm', '{}', :t, :t, 0, 0)"), {"t": seen})
    upgrade(db_url)
    with make_session_factory(engine)() as s:
        claims = {c.home_id: c for c in s.scalars(select(HomeClaim))}
        assert set(claims) == {"h1", "h3"}
        assert claims["h1"].claimed_at == seen and claims["h1"].released_at is None
        assert claims["h3"].claimed_at < seen
        assert s.scalar(select(Alert.organisation_id)) == 1
        assert s.scalar(select(Home.care_epoch).where(Home.id == "h1")) == 0
