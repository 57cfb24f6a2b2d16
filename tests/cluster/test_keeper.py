"""LeaseKeeper on a real PostgreSQL: workers (each its own engine) share 16 partitions, fail over and fence.

Short TTLs keep the tests fast; the proportions are the production ones' (a tick well inside the TTL).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gateway.cluster import LeaseKeeper, LeaseLost, Ownership, still_owner
from gateway.cluster.errors import ClusterConfigError
from tests.cluster.leasing import ON_POSTGRESQL, Connect, connect, lease_rows

__all__ = ["connect"]  # the fixture, imported to be used here

pytestmark = ON_POSTGRESQL

TTL = 1.5  # for the tests of expiry
STEADY_TTL = 60.0  # for the others: a loaded machine's pause between two ticks must not expire a keeper's row
TICK = 0.3
PARTITIONS = 16


def _keeper(connect: Connect, name: str, ttl: float = STEADY_TTL, **kwargs: object) -> LeaseKeeper:
    return LeaseKeeper(connect(), worker_id=name, partitions=PARTITIONS, ttl=ttl, tick_interval=TICK,
                       **kwargs)  # type: ignore[arg-type]


def _settle(*keepers: LeaseKeeper, rounds: int = 3) -> None:
    for _ in range(rounds):
        for keeper in keepers:
            keeper.tick()


def _assert_disjoint_and_as_recorded(sessions: sessionmaker[Session], *keepers: LeaseKeeper) -> None:
    rows = lease_rows(sessions)
    seen: set[int] = set()
    for keeper in keepers:
        assert seen.isdisjoint(keeper.owned)
        seen |= set(keeper.owned)
        for partition, epoch in keeper.owned.items():
            assert rows[partition] == (keeper.worker_id, epoch)


def test_a_lone_keeper_takes_every_partition(connect: Connect) -> None:
    a = _keeper(connect, "a")
    first = a.tick()
    assert set(first.owned) == set(range(PARTITIONS)) == first.gained
    assert set(first.owned.values()) == {1} and first.lost == frozenset()
    again = a.tick()
    assert again == Ownership(owned=first.owned) and not again.changed


def test_two_keepers_share_16_evenly(connect: Connect) -> None:
    a, b = _keeper(connect, "a"), _keeper(connect, "b")
    a.tick()
    assert b.tick().owned == {}  # a holds everything until its next tick gives up half
    given_up = a.tick()
    assert given_up.lost == frozenset(range(8, 16)) and set(given_up.owned) == set(range(8))
    taken = b.tick()
    assert taken.gained == frozenset(range(8, 16))
    assert set(taken.owned.values()) == {2}  # the second owner of each
    _assert_disjoint_and_as_recorded(connect(), a, b)


def test_three_keepers_share_16_as_6_5_5(connect: Connect) -> None:
    keepers = [_keeper(connect, name) for name in "abc"]
    _settle(*keepers)
    assert sorted(len(k.owned) for k in keepers) == [5, 5, 6]
    assert set().union(*(k.owned for k in keepers)) == set(range(PARTITIONS))
    _assert_disjoint_and_as_recorded(connect(), *keepers)
    assert not any(k.tick().changed for k in keepers)  # balanced: nothing moves any more


def test_a_dead_keepers_partitions_move_to_the_survivors_after_the_ttl(connect: Connect) -> None:
    a, b, c = (_keeper(connect, name, TTL) for name in "abc")
    _settle(a, b, c)
    orphans = set(c.owned)
    died = time.monotonic()  # c never ticks again
    while len(a.owned) + len(b.owned) < PARTITIONS:
        assert time.monotonic() - died < TTL + 3 * TICK, "the dead worker's partitions did not move in time"
        time.sleep(TICK)
        for keeper in (a, b):
            keeper.tick()
    assert time.monotonic() - died >= TTL - TICK  # not before its lease could have expired
    assert orphans <= set(a.owned) | set(b.owned)
    assert sorted([len(a.owned), len(b.owned)]) == [8, 8]
    rows = lease_rows(connect())
    assert all(rows[p][1] >= 2 for p in orphans)
    _assert_disjoint_and_as_recorded(connect(), a, b)


def test_a_dead_process_s_partitions_move_at_the_next_tick_not_after_the_ttl(connect: Connect) -> None:
    """A worker process that dies loses its liveness lock with its connection: the survivors take its partitions
    at their next tick, long before its row expires."""
    a, b = (_keeper(connect, name) for name in "ab")
    _settle(a, b)
    assert len(a.owned) == len(b.owned) == 8
    held_by_a = frozenset(a.owned)
    assert a._liveness is not None
    a._liveness.release()  # its lock gone, as when its process dies (PostgreSQL drops it with the connection)
    taken = b.tick()
    assert set(taken.owned) == set(range(PARTITIONS)) and taken.gained == held_by_a
    assert a.tick().lost == held_by_a, "a, back, learns it lost them (its fencing check would fail too)"
    _settle(a, b)
    assert sorted([len(a.owned), len(b.owned)]) == [8, 8]


def test_a_paused_keeper_fails_the_fencing_check_and_learns_it_lost_its_partitions(connect: Connect) -> None:
    """SIGSTOP long enough for the lease to expire, then SIGCONT: the old work cannot commit, the next tick says
    what was lost, and the worker gets a share back under new epochs."""
    a, b = _keeper(connect, "a", TTL), _keeper(connect, "b", TTL)
    _settle(a, b)
    before = dict(a.owned)
    assert len(before) == 8
    paused_at = time.monotonic()
    while time.monotonic() - paused_at < TTL + TICK:  # a is paused; b goes on ticking
        time.sleep(TICK)
        b.tick()
    assert set(b.owned) == set(range(PARTITIONS))
    partition, epoch = next(iter(before.items()))
    with pytest.raises(LeaseLost, match=f"worker a lost partition {partition}"), connect().begin() as session:
        still_owner(session, partition, "a", epoch)
    resumed = a.tick()
    assert resumed.lost == frozenset(before) and resumed.owned == {}
    _settle(b, a)
    assert len(a.owned) == 8
    assert all(a.owned[p] > before[p] for p in set(a.owned) & set(before))
    _assert_disjoint_and_as_recorded(connect(), a, b)


def test_a_clean_stop_hands_over_at_once(connect: Connect) -> None:
    a, b = _keeper(connect, "a", TTL), _keeper(connect, "b", TTL)
    _settle(a, b)
    held = frozenset(a.owned)
    stopped = a.stop()
    assert stopped.lost == held and stopped.owned == {}
    started = time.monotonic()
    b.tick()
    assert set(b.owned) == set(range(PARTITIONS))
    assert time.monotonic() - started < TTL
    with connect()() as session:
        assert session.scalar(text("SELECT count(*) FROM cluster_workers WHERE worker_id = 'a'")) == 0


def test_epochs_increase_as_partitions_move(connect: Connect) -> None:
    sessions = connect()
    a, b = _keeper(connect, "a"), _keeper(connect, "b")
    a.tick()
    history = [lease_rows(sessions)]
    _settle(b, a)
    a.stop()
    b.tick()
    history.append(lease_rows(sessions))
    a2 = _keeper(connect, "a2")
    _settle(a2, b)
    history.append(lease_rows(sessions))
    for partition in range(PARTITIONS):
        epochs = [rows[partition][1] for rows in history]
        assert epochs == sorted(epochs) and epochs[0] == 1
        owners = [rows[partition][0] for rows in history]
        for (owner_before, epoch_before), (owner_after, epoch_after) in zip(
                [r[partition] for r in history], [r[partition] for r in history[1:]], strict=False):
            assert (owner_before == owner_after) == (epoch_before == epoch_after), owners


def test_keepers_with_another_partition_count_are_refused(connect: Connect) -> None:
    _keeper(connect, "a").tick()
    other = LeaseKeeper(connect(), worker_id="b", partitions=32, ttl=TTL, tick_interval=TICK)
    with pytest.raises(ClusterConfigError, match="configured with 32 partitions but worker a runs with 16"):
        other.tick()


@pytest.mark.parametrize(("ttl", "tick"), [(1.0, 1.0), (1.0, 0.0), (1.0, 2.0)])
def test_the_tick_must_fall_inside_the_ttl(connect: Connect, ttl: float, tick: float) -> None:
    with pytest.raises(ValueError, match="shorter than the lease TTL"):
        LeaseKeeper(connect(), ttl=ttl, tick_interval=tick)


def test_a_keeper_generates_its_worker_id(connect: Connect) -> None:
    assert LeaseKeeper(connect()).worker_id != LeaseKeeper(connect()).worker_id


@contextmanager
def _database_refusing_connections(db_url: str) -> Iterator[None]:
    """The worker's database unreachable: connections refused and the existing ones ended."""
    url = make_url(db_url)
    name = url.database
    assert name is not None  # the db_url fixture always names its fresh database
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))


def test_without_the_database_leases_are_kept_until_they_could_have_expired(connect: Connect, db_url: str,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    a = _keeper(connect, "a", TTL, clock=lambda: now[0])
    held = dict(a.tick().owned)
    with _database_refusing_connections(db_url):
        now[0] += TTL / 2
        kept = a.tick()
        assert kept.owned == held and not kept.changed
        assert "cannot renew its leases" in caplog.text and "retrying at the next tick" in caplog.text
        now[0] += TTL / 2
        lost = a.tick()
        assert lost.lost == frozenset(held) and lost.owned == {}
        assert "giving up partitions" in caplog.text
    back = a.tick()  # nobody took them meanwhile: renewed under the same epochs
    assert back.owned == held and back.gained == frozenset(held)


def test_many_keepers_ticking_at_once_never_let_two_commit_one_partition(connect: Connect) -> None:
    """Four workers tick and commit in threads, with jitter; one dies mid-way, one stops cleanly, one is paused
    past its TTL and, resumed, commits what it believes it owns before its next tick. Every commit passes the
    fencing check in its own transaction and is logged: per partition, each epoch's commits come from one worker,
    and no commit under an older epoch lands after one under a newer."""
    sessions = connect()
    with sessions.begin() as session:
        session.execute(text("CREATE TABLE processed (id bigserial PRIMARY KEY, partition int, epoch bigint, "
                             "worker text)"))
    keepers = [_keeper(connect, f"w{i}", TTL) for i in range(4)]
    ends = {"w0": 2.0, "w1": 3.0}  # w0 dies (stops ticking), w1 stops cleanly; w2 and w3 run to the end
    run_for = 4.5
    fenced = []
    errors: list[BaseException] = []

    def work(keeper: LeaseKeeper) -> None:
        rnd = random.Random(keeper.worker_id)
        commit_sessions = connect()
        started = time.monotonic()
        paused = False
        try:
            while time.monotonic() - started < ends.get(keeper.worker_id, run_for):
                keeper.tick()
                if keeper.worker_id == "w3" and not paused and time.monotonic() - started > 1.0:
                    paused = True
                    time.sleep(TTL + 2 * TICK)  # SIGSTOP ... SIGCONT: its view of what it owns is stale
                for partition, epoch in keeper.owned.items():
                    try:
                        with commit_sessions.begin() as session:
                            session.execute(text("INSERT INTO processed (partition, epoch, worker) "
                                                 "VALUES (:p, :e, :w)"), {"p": partition, "e": epoch,
                                                                           "w": keeper.worker_id})
                            still_owner(session, partition, keeper.worker_id, epoch)
                    except LeaseLost:
                        fenced.append(keeper.worker_id)
                time.sleep(rnd.uniform(0, TICK))
            if keeper.worker_id == "w1":
                keeper.stop()
        except BaseException as e:  # reported by the test, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(keeper,)) for keeper in keepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors

    with sessions() as session:
        commits = session.execute(text("SELECT partition, epoch, worker FROM processed ORDER BY id")).all()
    assert commits
    committers: dict[tuple[int, int], set[str]] = {}
    newest: dict[int, int] = {}
    for partition, epoch, worker in commits:
        committers.setdefault((partition, epoch), set()).add(worker)
        assert epoch >= newest.get(partition, 0), f"partition {partition}: epoch {epoch} committed after a newer"
        newest[partition] = epoch
    assert all(len(workers) == 1 for workers in committers.values())
    assert "w3" in fenced  # the paused worker's stale commits were refused
    survivors = keepers[2:]
    _settle(*survivors)
    assert sorted(len(k.owned) for k in survivors) == [8, 8]
    _assert_disjoint_and_as_recorded(sessions, *survivors)
