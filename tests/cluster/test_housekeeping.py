"""Cluster mode's housekeeping (the retention purge, the forgetting of device states, the dead-letter retention, the
watchdog): one worker at a time holds its role, another takes it when the holder's connection ends, and an erased
resident's device states (``cluster_device_states``) are deleted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerting.guards import advisory_lock_holders
from gateway.cluster.housekeeping import (
    HOUSEKEEPING_LOCK_KEY,
    Chore,
    Housekeeping,
    forget_past_care_states,
    housekeeping_lock,
)
from gateway.db.cluster import ClusterDeviceState
from gateway.db.migrate import upgrade
from gateway.db.models import Home
from gateway.db.session import make_engine, make_session_factory
from tests.api.conftest import Clock, app_for
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import Cluster, cluster, nats_server, wait_for
from tests.council import API_NOW, seed_council

__all__ = ["cluster", "nats_server"]  # the fixtures, used by name

CHORES = ["forgetting device states", "watchdog", "dead-letter retention", "retention purge"]


# --- The role -------------------------------------------------------------------------------------------------


class Worker:
    """A worker's housekeeping on an engine of its own (as another process would have), its chores recorded."""

    def __init__(self, db_url: str) -> None:
        self.engine: Engine = make_engine(db_url)
        self.done: list[str] = []
        self.housekeeping = Housekeeping(
            housekeeping_lock(make_session_factory(self.engine)),
            [Chore(name, lambda name=name: self.done.append(name), every_s=3600.0) for name in CHORES])  # type: ignore[misc]

    def close(self) -> None:
        self.housekeeping.release()
        self.engine.dispose()


@pytest.fixture
def workers(db_url: str) -> Iterator[tuple[Worker, Worker]]:
    upgrade(db_url)
    pair = Worker(db_url), Worker(db_url)
    yield pair
    for worker in pair:
        worker.close()


def kill_connection_of_holder(engine: Engine) -> int:
    """End the session holding the housekeeping lock, as PostgreSQL does when its worker's process dies."""
    with engine.connect() as conn:
        pids = list(conn.scalars(advisory_lock_holders(HOUSEKEEPING_LOCK_KEY)))  # in this test's database only
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    return len(pids)


@ON_POSTGRESQL
def test_one_worker_at_a_time_does_the_housekeeping_and_another_takes_it_when_the_holder_dies(
        workers: tuple[Worker, Worker]) -> None:
    first, second = workers
    assert first.housekeeping.try_take() and not second.housekeeping.try_take()
    assert first.housekeeping.run_due() == CHORES and second.housekeeping.run_due() == []
    assert first.housekeeping.run_due() == [], "each chore again only after its interval"
    assert first.housekeeping.try_take() and not second.housekeeping.try_take(), "held while its connection lives"
    assert second.done == []

    assert kill_connection_of_holder(first.engine) == 1  # the first worker's process dies
    assert second.housekeeping.try_take(), "the lock went with the connection: the next try takes it"
    assert second.housekeeping.run_due() == CHORES, "the new holder does every chore at once"
    assert not first.housekeeping.try_take(), "the first learns its connection is gone, and the role taken"
    assert first.housekeeping.run_due() == []
    assert second.housekeeping.holding and not first.housekeeping.holding

    second.housekeeping.release()  # a clean stop lets it go at once
    assert first.housekeeping.try_take() and first.housekeeping.run_due() == CHORES
    assert first.done == CHORES * 2 and second.done == CHORES


@ON_POSTGRESQL
def test_the_dispatchers_lock_and_the_housekeepings_are_held_apart(workers: tuple[Worker, Worker]) -> None:
    from gateway.alerting.guards import DispatcherLock

    first, second = workers
    dispatcher = DispatcherLock(second.engine)
    try:
        assert dispatcher.held() and first.housekeeping.try_take(), "one worker may send while another housekeeps"
        assert not second.housekeeping.try_take()
    finally:
        dispatcher.release()


@ON_POSTGRESQL
def test_a_long_purge_never_holds_up_the_forgetting(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    purging, forgotten = threading.Event(), []
    housekeeping = Housekeeping(housekeeping_lock(make_session_factory(engine)), [
        Chore("retention purge", lambda: purging.wait(30), every_s=3600.0),  # an hour's purge, in hand
        Chore("forgetting device states", lambda: forgotten.append(1), every_s=0.0),
    ], try_every_s=0.05, poll_s=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=housekeeping.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(forgotten) >= 3, 20, "the forgetting goes on while the purge runs")
        assert not purging.is_set()
    finally:
        purging.set()
        stop.set()
        thread.join(30)
        engine.dispose()
    assert not thread.is_alive() and not housekeeping.holding


# --- Forgetting an erased resident's device states --------------------------------------------------------------


@dataclass
class Council:
    """h1 (Mrs Jones) and h2 (Mr Smith), cared for by one council whose admin (Ada) is signed in."""

    sessions: sessionmaker[Session]
    residents: dict[str, int]
    admin: dict[str, str]

    def epoch(self, home: str) -> int:
        with self.sessions() as s:
            return s.get_one(Home, home).care_epoch

    def write_states(self, home: str, epoch: int, *devices: str) -> None:
        """Device states as a partition loop commits them, learned under ``epoch``."""
        with self.sessions.begin() as s:
            s.execute(insert(ClusterDeviceState), [
                {"home_id": home, "device": d, "kind": "contact", "value": True, "care_epoch": epoch} for d in devices])

    def states(self) -> list[tuple[str, str]]:
        with self.sessions() as s:
            return [(h, d) for h, d in s.execute(select(ClusterDeviceState.home_id, ClusterDeviceState.device)
                                                 .order_by(ClusterDeviceState.home_id, ClusterDeviceState.device))]


@pytest.fixture
def council(db_url: str) -> Iterator[Council]:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    residents, admin = seed_council(sessions)
    yield Council(sessions, residents, admin)
    engine.dispose()


@ON_POSTGRESQL
def test_an_erased_residents_device_states_are_deleted_and_late_writes_of_them_too(tmp_path: Path,
                                                                                 council: Council) -> None:
    jones, smith = council.epoch("h1"), council.epoch("h2")
    council.write_states("h1", jones, "front_door", "kitchen_pir")
    council.write_states("h2", smith, "front_door")
    council.write_states("h7", 0, "front_door")  # h7: discovered over MQTT, not in the database
    assert forget_past_care_states(council.sessions) == [], "every state is its home's current person's"

    with TestClient(app_for(tmp_path, council.sessions, Clock(API_NOW))) as client:  # as an admin erases
        r = client.post(f"/residents/{council.residents['Mrs Jones']}/erase", json={"confirm": "Mrs Jones"},
                        headers=council.admin)
        assert r.status_code == 200, r.text
    assert council.epoch("h1") == jones + 1

    assert forget_past_care_states(council.sessions) == ["h1"]
    assert council.states() == [("h2", "front_door"), ("h7", "front_door")]
    assert forget_past_care_states(council.sessions) == []

    # A partition loop that had Mrs Jones's states in memory commits one more under her epoch, and one learned
    # afresh under the new one: the next pass deletes hers only.
    council.write_states("h1", jones, "front_door")
    council.write_states("h1", jones + 1, "kitchen_pir")
    assert forget_past_care_states(council.sessions) == ["h1"]
    assert council.states() == [("h1", "kitchen_pir"), ("h2", "front_door"), ("h7", "front_door")]


@ON_POSTGRESQL
def test_forgetting_goes_through_many_homes_a_batch_at_a_time(council: Council) -> None:
    homes = [f"home-{i:03}" for i in range(7)]
    with council.sessions.begin() as s:
        s.add_all(Home(id=home) for home in homes)
    for home in homes:
        council.write_states(home, 0, "front_door", "hall_pir")
    with council.sessions.begin() as s:  # as a claim does to each home
        s.execute(update(Home).where(Home.id.in_(homes)).values(care_epoch=Home.care_epoch + 1))
    assert forget_past_care_states(council.sessions, batch_homes=3) == homes
    assert council.states() == []


# --- In the workers ----------------------------------------------------------------------------------------------


@ON_POSTGRESQL
def test_of_two_workers_one_does_the_housekeeping_and_the_other_takes_over_when_it_stops(cluster: Cluster) -> None:
    built = [cluster.build(name) for name in ("w1", "w2")]  # the database migrated
    with cluster.sessions.begin() as s:
        s.add(Home(id="h1", care_epoch=2))
        s.execute(insert(ClusterDeviceState), [{"home_id": "h1", "device": "front_door", "kind": "contact",
                                                "value": True, "care_epoch": 1}])
    running = []
    for worker in built:
        assert worker.housekeeping is not None
        worker.housekeeping.try_every_s = 0.2  # the tries come quickly: the test waits for them, not a clock
        for chore in worker.housekeeping.chores:
            if chore.name == "forgetting device states":
                chore.every_s = 0.5  # and so does the forgetting (every 30 s in production)
        running.append(cluster.start(worker))

    def holders() -> list[str]:
        return [r.worker.worker_id for r in running if r.worker.housekeeping and r.worker.housekeeping.holding]

    wait_for(lambda: len(holders()) == 1, 20, "one worker holds the housekeeping role")
    wait_for(lambda: _states(cluster.sessions) == [], 20, "the holder forgets h1's states of a former care")
    [holder] = [r for r in running if r.worker.worker_id == holders()[0]]
    [other] = [r for r in running if r is not holder]
    assert holders() == [holder.worker.worker_id], "still one holder, never two"
    wait_for(lambda: holder.worker.cluster_metrics.housekeeping._value.get() == 1, 20, "the holder's gauge says so")
    assert other.worker.cluster_metrics.housekeeping._value.get() == 0

    holder.halt()  # a clean stop lets the role go; a dead one's connection ends (the test above)
    wait_for(lambda: holders() == [other.worker.worker_id], 20, "the other worker takes the role")
    with cluster.sessions.begin() as s:  # and does the chores: a new erasure's states go
        s.execute(update(Home).where(Home.id == "h1").values(care_epoch=3))
        s.execute(insert(ClusterDeviceState), [{"home_id": "h1", "device": "hall_pir", "kind": "motion",
                                                "value": False, "care_epoch": 2}])
    wait_for(lambda: _states(cluster.sessions) == [], 20, "the new holder forgets h1's states")


def _states(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as s:
        return [(h, d) for h, d in s.execute(select(ClusterDeviceState.home_id, ClusterDeviceState.device))]
