"""Partition leases and membership on a real PostgreSQL, each worker on its own connections."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import gateway.db.cluster  # noqa: F401  (registers the cluster tables on Base.metadata)
from gateway.alerting.guards import AdvisoryLock
from gateway.cluster import LeaseKeeper, leases, membership
from gateway.cluster.database import require_postgresql
from gateway.cluster.errors import ClusterConfigError, LeaseLost
from gateway.db.base import Base
from gateway.db.cluster import WORKER_ID_LEN, ClusterWorker
from gateway.db.migrate import alembic_config, upgrade
from gateway.db.session import make_engine, make_session_factory
from tests.cluster.leasing import ON_POSTGRESQL, Connect, connect, lease_rows

__all__ = ["connect"]  # the fixture, imported to be used here

TTL = 1.0  # for the tests of expiry
STEADY_TTL = 60.0  # for the others: a loaded machine's pause between two transactions must not expire a worker
CLUSTER_TABLES = {"cluster_workers", "partition_leases"}


# --- The schema (both backends: the schema is one) ---------------------------------------------------------------

def _cluster_diffs(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        diffs = compare_metadata(context, Base.metadata)
    return [diff for diff in diffs if any(table in repr(diff) for table in CLUSTER_TABLES)]


def test_the_migration_creates_what_the_models_describe(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= CLUSTER_TABLES
    assert _cluster_diffs(engine) == []


def test_the_migration_goes_down_and_up(engine: Engine, db_url: str) -> None:
    command.downgrade(alembic_config(engine), "0009")
    assert not CLUSTER_TABLES & set(inspect(engine).get_table_names())
    upgrade(db_url)
    assert _cluster_diffs(engine) == []


# --- Cluster mode needs PostgreSQL --------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["sqlite:///var/telecare.db", "sqlite://", "mysql://u@h/telecare"])
def test_a_cluster_worker_refuses_another_database_with_a_sentence(url: str) -> None:
    with pytest.raises(ClusterConfigError, match=r"^cluster mode \(TELECARE_NATS_URL\) needs PostgreSQL as the "
                                                 r"operational database, .*set it to postgresql://"):
        require_postgresql(url)


def test_the_sqlite_default_is_named() -> None:
    with pytest.raises(ClusterConfigError, match="TELECARE_DB_URL is a SQLite file"):
        require_postgresql("sqlite:///var/telecare.db")


def test_a_malformed_url_is_a_sentence_that_does_not_repeat_it() -> None:
    with pytest.raises(ClusterConfigError, match="not a database URL") as caught:
        require_postgresql("::secret-password::")
    assert "secret-password" not in str(caught.value)


def test_a_lease_keeper_on_sqlite_is_refused_with_a_sentence(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'telecare.db'}")
    try:
        with pytest.raises(ClusterConfigError, match=r"needs PostgreSQL.*TELECARE_DB_URL is a SQLite file"):
            LeaseKeeper(make_session_factory(engine))
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["postgresql://u@h/telecare", "postgres://u@h/t", "postgresql+psycopg://u@h/t"])
def test_postgresql_is_accepted(url: str) -> None:
    require_postgresql(url)


# --- Leases ---------------------------------------------------------------------------------------------------------

def _alive(session: Session, *workers: str, ttl: float = STEADY_TTL) -> None:
    """The workers joined (their leases stand for ``ttl`` seconds unless renewed)."""
    for worker in workers:
        membership.join(session, worker, 16, ttl)


@ON_POSTGRESQL
def test_free_partitions_are_taken_once_with_epoch_one(connect: Connect) -> None:
    a, b = connect(), connect()
    with a.begin() as session:
        _alive(session, "a", "b")
        leases.ensure_partitions(session, 4)
        assert leases.acquire(session, "a", [0, 1]) == {0: 1, 1: 1}
    with b.begin() as session:
        assert leases.acquire(session, "b", [0, 1, 2]) == {2: 1}
        assert leases.owners(session) == {0: "a", 1: "a", 2: "b"}


@ON_POSTGRESQL
def test_ensuring_partitions_again_keeps_the_leases(connect: Connect) -> None:
    a = connect()
    with a.begin() as session:
        _alive(session, "a")
        leases.ensure_partitions(session, 2)
        leases.acquire(session, "a", [0])
    with a.begin() as session:
        leases.ensure_partitions(session, 2)
    assert lease_rows(a) == {0: ("a", 1), 1: (None, 0)}


@ON_POSTGRESQL
def test_a_dead_workers_lease_is_taken_over_under_a_new_epoch(connect: Connect) -> None:
    a, b = connect(), connect()
    with a.begin() as session:
        _alive(session, "a", ttl=TTL)
        _alive(session, "b")
        leases.ensure_partitions(session, 2)
        leases.acquire(session, "a", [0, 1])
    time.sleep(TTL + 0.2)  # a stops renewing: its leases lapse with it
    with b.begin() as session:
        assert leases.owners(session) == {}
        assert leases.acquire(session, "b", [0]) == {0: 2}
    with a.begin() as session:
        # a, back: it still holds what nobody took (same epoch) and no longer has what b took.
        membership.renew(session, "a", 16, TTL)
        assert leases.held(session, "a") == {1: 1}
        assert leases.owners(session) == {0: "b", 1: "a"}


@ON_POSTGRESQL
def test_renewing_membership_keeps_every_lease_past_the_ttl(connect: Connect) -> None:
    a, b = connect(), connect()
    with a.begin() as session:
        _alive(session, "a", ttl=TTL)
        leases.ensure_partitions(session, 2)
        leases.acquire(session, "a", [0, 1])
    for _ in range(3):
        time.sleep(TTL / 2)
        with a.begin() as session:
            membership.renew(session, "a", 16, TTL)
    with b.begin() as session:
        _alive(session, "b")
        assert leases.acquire(session, "b", [0, 1]) == {}
        assert leases.held(session, "a") == {0: 1, 1: 1}


@ON_POSTGRESQL
def test_the_heartbeat_does_not_wait_for_a_fenced_lease(connect: Connect) -> None:
    """A commit of the partition's work holds its lease row locked; renewing the worker's membership (which keeps
    that lease) does not touch the row, so it does not wait for that commit."""
    a = connect()
    with a.begin() as session:
        _alive(session, "a")
        leases.ensure_partitions(session, 1)
        epoch = leases.acquire(session, "a", [0])[0]
    committing = a()
    committing.begin()
    leases.still_owner(committing, 0, "a", epoch)
    try:
        with a.begin() as session:
            session.execute(text("SET LOCAL lock_timeout = '200ms'"))
            membership.renew(session, "a", 16, TTL)
            assert leases.held(session, "a") == {0: epoch}
    finally:
        committing.rollback()
        committing.close()


@ON_POSTGRESQL
def test_liveness_is_judged_by_the_databases_clock(connect: Connect) -> None:
    a = connect()
    with a.begin() as session:
        _alive(session, "a", ttl=9.0)
    with a() as session:
        lasts = session.scalar(text("SELECT expires_at - now() FROM cluster_workers WHERE worker_id = 'a'"))
    assert timedelta(seconds=8) < lasts <= timedelta(seconds=9)


@ON_POSTGRESQL
def test_a_release_hands_over_at_once_and_only_the_owner_releases(connect: Connect) -> None:
    a, b = connect(), connect()
    with a.begin() as session:
        _alive(session, "a", "b")
        leases.ensure_partitions(session, 3)
        leases.acquire(session, "a", [0, 1, 2])
    with b.begin() as session:
        assert leases.release(session, "b", [0, 1]) == frozenset()
    with a.begin() as session:
        assert leases.release(session, "a", [0, 1]) == {0, 1}
        assert leases.release(session, "a", []) == frozenset()
    with b.begin() as session:
        assert leases.acquire(session, "b", [0, 1]) == {0: 2, 1: 2}
    with a.begin() as session:
        assert leases.release(session, "a") == {2}
    assert lease_rows(a) == {0: ("b", 2), 1: ("b", 2), 2: (None, 1)}


@ON_POSTGRESQL
def test_epochs_increase_at_every_change_of_owner(connect: Connect) -> None:
    sessions = connect()
    with sessions.begin() as session:
        leases.ensure_partitions(session, 1)
    epochs = []
    for worker in ["a", "b", "a", "c"]:
        with sessions.begin() as session:
            epochs.append(leases.acquire(session, worker, [0])[0])
            leases.release(session, worker)
    assert epochs == [1, 2, 3, 4]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        membership.expiry(0)


# --- The fencing check ---------------------------------------------------------------------------------------------

@ON_POSTGRESQL
def test_the_owner_passes_the_fencing_check(connect: Connect) -> None:
    a = connect()
    with a.begin() as session:
        leases.ensure_partitions(session, 1)
        epoch = leases.acquire(session, "a", [0])[0]
    with a.begin() as session:
        leases.still_owner(session, 0, "a", epoch)


@ON_POSTGRESQL
def test_a_worker_taken_over_cannot_commit(connect: Connect) -> None:
    """The paused worker: its lease lapsed, another took the partition; its next commit fails the check."""
    a, b = connect(), connect()
    with a.begin() as session:
        _alive(session, "a", ttl=TTL)
        leases.ensure_partitions(session, 1)
        old_epoch = leases.acquire(session, "a", [0])[0]
    time.sleep(TTL + 0.2)
    with b.begin() as session:
        new_epoch = leases.acquire(session, "b", [0])[0]
    with pytest.raises(LeaseLost) as caught, a.begin() as session:
        session.execute(text("INSERT INTO cluster_workers VALUES ('work of a', 1, now(), now())"))
        leases.still_owner(session, 0, "a", old_epoch)
    lost = caught.value
    assert (lost.partition, lost.worker_id, lost.epoch, lost.owner, lost.current_epoch) == (0, "a", 1, "b", 2)
    assert str(lost) == ("worker a lost partition 0 (it held it under epoch 1; it is owned by worker b under epoch 2): "
                         "roll back and do not acknowledge")
    with a() as session:  # what a did in that transaction was rolled back
        assert session.scalar(select(ClusterWorker.worker_id).where(ClusterWorker.worker_id == "work of a")) is None
    with b.begin() as session:
        leases.still_owner(session, 0, "b", new_epoch)


@ON_POSTGRESQL
def test_an_old_epoch_fails_even_for_the_same_worker(connect: Connect) -> None:
    """Released and taken back: work begun under the old epoch must not commit (its state may predate another's)."""
    a = connect()
    with a.begin() as session:
        leases.ensure_partitions(session, 1)
        leases.acquire(session, "a", [0])
        leases.release(session, "a")
    with a.begin() as session:
        with pytest.raises(LeaseLost, match="it is free"):
            leases.still_owner(session, 0, "a", 1)
        assert leases.acquire(session, "a", [0]) == {0: 2}
    with pytest.raises(LeaseLost, match="owned by worker a under epoch 2"), a.begin() as session:
        leases.still_owner(session, 0, "a", 1)


@ON_POSTGRESQL
def test_a_partition_without_a_row_fails_the_check(connect: Connect) -> None:
    with pytest.raises(LeaseLost, match="has no lease row"), connect().begin() as session:
        leases.still_owner(session, 7, "a", 1)


@ON_POSTGRESQL
def test_no_takeover_between_the_check_and_the_commit(connect: Connect) -> None:
    """The check locks the row: an acquirer skips it (never waits), and takes it only after the commit."""
    a, b = connect(), connect()
    with a.begin() as session:
        _alive(session, "a", ttl=TTL)
        leases.ensure_partitions(session, 1)
        epoch = leases.acquire(session, "a", [0])[0]
    committing = a()
    committing.begin()
    leases.still_owner(committing, 0, "a", epoch)
    time.sleep(TTL + 0.2)  # a's lease lapses while it is between its check and its commit
    started = time.monotonic()
    with b.begin() as session:
        assert leases.acquire(session, "b", [0]) == {}
    assert time.monotonic() - started < 0.5
    committing.commit()
    committing.close()
    with b.begin() as session:
        assert leases.acquire(session, "b", [0]) == {0: epoch + 1}


@ON_POSTGRESQL
def test_a_worker_stopped_between_check_and_commit_is_cut_off(connect: Connect,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGSTOP after the check: PostgreSQL ends the idle transaction, its commit fails, the partition moves."""
    monkeypatch.setattr(leases, "FENCE_HOLD_LIMIT_S", 0.5)
    a, b = connect(), connect()
    with a.begin() as session:
        _alive(session, "a", ttl=TTL)
        leases.ensure_partitions(session, 1)
        epoch = leases.acquire(session, "a", [0])[0]
    stopped: Session = a()
    stopped.begin()
    leases.still_owner(stopped, 0, "a", epoch)
    time.sleep(TTL + 0.2)
    with b.begin() as session:
        assert leases.acquire(session, "b", [0]) == {0: epoch + 1}
    with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
        stopped.execute(text("SELECT 1"))
        stopped.commit()
    stopped.close()


# --- Membership ------------------------------------------------------------------------------------------------------

@ON_POSTGRESQL
def test_live_workers_are_those_not_expired(connect: Connect) -> None:
    sessions = connect()
    with sessions.begin() as session:
        membership.join(session, "a", 16, TTL)
        membership.join(session, "b", 16, STEADY_TTL)
    with sessions.begin() as session:
        assert membership.live_workers(session) == {"a", "b"}
    time.sleep(TTL + 0.2)
    with sessions.begin() as session:
        assert membership.live_workers(session) == {"b"}
        membership.renew(session, "a", 16, TTL)
    with sessions.begin() as session:
        assert membership.live_workers(session) == {"a", "b"}
        membership.leave(session, "a")
    with sessions.begin() as session:
        assert membership.live_workers(session) == {"b"}


@ON_POSTGRESQL
def test_a_worker_with_a_liveness_key_is_alive_only_while_it_holds_the_lock(connect: Connect) -> None:
    sessions = connect()
    key = membership.new_liveness_key()
    lock = AdvisoryLock(sessions.kw["bind"], key, "worker liveness", "test")
    with sessions.begin() as session:
        membership.join(session, "a", 16, STEADY_TTL, key)
        membership.join(session, "b", 16, STEADY_TTL)  # no key: judged by its row's expiry alone
        assert membership.live_workers(session) == {"b"}, "a holds no lock yet"
    assert lock.held()
    with sessions.begin() as session:
        assert membership.live_workers(session) == {"a", "b"}
    lock.release()  # the lock gone, as with a's process when it dies
    with sessions.begin() as session:
        assert membership.live_workers(session) == {"b"}


@ON_POSTGRESQL
def test_a_released_advisory_lock_is_free_at_once_for_the_one_standing_by(connect: Connect,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    engine = connect().kw["bind"]
    ending: list[Connection] = []

    def drop_slowly(lock: AdvisoryLock) -> None:  # the server has not yet seen the dropped connection end
        if lock._conn is not None:
            ending.append(lock._conn)
        lock._conn = None

    monkeypatch.setattr(AdvisoryLock, "_drop", drop_slowly)
    key = membership.new_liveness_key()
    holder, standing_by = (AdvisoryLock(engine, key, "dispatcher", "test") for _ in range(2))
    try:
        assert holder.held() and not standing_by.held()
        holder.release()  # a graceful stop
        assert standing_by.held(), "the released lock still taken until its connection's end"
    finally:
        standing_by.release()
        for conn in ending:
            conn.close()


@ON_POSTGRESQL
def test_a_worker_with_another_partition_count_is_refused(connect: Connect) -> None:
    sessions = connect()
    with sessions.begin() as session:
        membership.join(session, "a", 16, STEADY_TTL)
    with pytest.raises(ClusterConfigError, match="configured with 32 partitions but worker a runs with 16"), \
            sessions.begin() as session:
        membership.join(session, "b", 32, STEADY_TTL)
    with sessions.begin() as session:
        assert membership.live_workers(session) == {"a"}
        membership.join(session, "c", 16, STEADY_TTL)  # the same count is welcome


@ON_POSTGRESQL
def test_long_dead_workers_are_forgotten(connect: Connect) -> None:
    sessions = connect()
    with sessions.begin() as session:
        membership.join(session, "old", 16, STEADY_TTL)
        membership.join(session, "recent", 16, STEADY_TTL)
        session.execute(text("UPDATE cluster_workers SET expires_at = now() - interval '2 hours' "
                             "WHERE worker_id = 'old'"))
        session.execute(text("UPDATE cluster_workers SET expires_at = now() - interval '10 minutes' "
                             "WHERE worker_id = 'recent'"))
        membership.forget_dead(session)
    with sessions() as session:
        assert set(session.scalars(select(ClusterWorker.worker_id))) == {"recent"}


def test_worker_ids_are_unique_and_fit() -> None:
    ids = {membership.new_worker_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(worker_id) <= WORKER_ID_LEN for worker_id in ids)
