"""A partition's devices' states under their homes' care epochs (``gateway.cluster.device_states``), on PostgreSQL:
a former resident's states are neither restored nor kept in memory once the home's care moves on, and a partition
loop judges the home's next reports as a new home's."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.cluster import device_states
from gateway.cluster.device_states import DeviceStates
from gateway.db.cluster import ClusterDeviceState
from gateway.db.models import Home
from tests.cluster.leasing import ON_POSTGRESQL, Connect, connect
from tests.cluster.workers import T0_MS, Cluster, cluster, nats_server, wait_for

__all__ = ["cluster", "connect", "nats_server"]  # the fixtures, used by name

pytestmark = ON_POSTGRESQL


@pytest.fixture
def sessions(connect: Connect) -> sessionmaker[Session]:
    return connect()


def _home(sessions: sessionmaker[Session], home: str, care_epoch: int) -> None:
    with sessions.begin() as session:
        session.merge(Home(id=home, care_epoch=care_epoch))


def _bump_care(sessions: sessionmaker[Session], home: str) -> None:
    with sessions.begin() as session:
        session.execute(update(Home).where(Home.id == home).values(care_epoch=Home.care_epoch + 1))


def _rows(sessions: sessionmaker[Session], home: str) -> dict[str, tuple[object, int]]:
    with sessions() as session:
        return {device: (value, epoch) for device, value, epoch in session.execute(
            select(ClusterDeviceState.device, ClusterDeviceState.value, ClusterDeviceState.care_epoch)
            .where(ClusterDeviceState.home_id == home))}


def test_states_are_saved_under_the_care_they_were_learned_in_and_restored_only_within_it(
        sessions: sessionmaker[Session]) -> None:
    _home(sessions, "h1", 3)
    states = DeviceStates(sessions)
    assert states.learn({"h1", "unregistered"}).states == {}
    assert states.epochs == {"h1": 3, "unregistered": 0}  # a home the database does not know is a new one
    with sessions.begin() as session:
        states.save(session, {("h1", "pir"): ("motion", True), ("unregistered", "plug"): ("power", 2.0)})
    assert _rows(sessions, "h1") == {"pir": (True, 3)}
    assert _rows(sessions, "unregistered") == {"plug": (2.0, 0)}

    again = DeviceStates(sessions)  # the partition's next owner
    assert again.learn({"h1"}).states == {("h1", "pir"): ("motion", True)}
    _bump_care(sessions, "h1")
    assert DeviceStates(sessions).learn({"h1"}).states == {}, "a former resident's states are not restored"


def test_a_home_whose_care_moved_on_is_forgotten_and_learned_again(sessions: sessionmaker[Session]) -> None:
    now = [0.0]
    _home(sessions, "h1", 1)
    _home(sessions, "h2", 1)
    states = DeviceStates(sessions, monotonic=lambda: now[0])
    states.learn({"h1", "h2"})
    _bump_care(sessions, "h1")
    assert states.moved_on() == set(), "looked at most every FOLLOW_EPOCHS_S"
    now[0] += device_states.FOLLOW_EPOCHS_S
    assert states.moved_on() == {"h1"}
    assert states.epochs == {"h2": 1}
    states.learn({"h1"})
    assert states.epochs == {"h2": 1, "h1": 2}
    assert states.moved_on(force=True) == set()


def _motion(home: str, occupancy: bool, at: int) -> tuple[str, bytes]:
    return f"telecare/{home}/hall_pir", orjson.dumps({"occupancy": occupancy, "last_seen": T0_MS + at})


def test_a_partition_loop_drops_an_erased_residents_states_from_memory(cluster: Cluster,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_states, "FOLLOW_EPOCHS_S", 0.2)
    worker = cluster.build("w1")  # migrates the database
    _home(cluster.sessions, "h1", 1)
    cluster.start(worker)
    cluster.publish([_motion("h1", True, 0)])
    wait_for(lambda: _rows(cluster.sessions, "h1") == {"hall_pir": (True, 1)}, what="the state committed")
    loop = next(loop for loop in worker.loops.values() if "h1" in loop.device_states.epochs)
    assert loop.admission.facts.committed_state("h1", "hall_pir") is not None

    _bump_care(cluster.sessions, "h1")  # the resident erased (api/routers/privacy.py bumps the epoch)
    wait_for(lambda: "h1" not in loop.device_states.epochs, what="the loop following the home's care")
    assert loop.admission.facts.committed_state("h1", "hall_pir") is None
    cluster.publish([_motion("h1", True, 1)])
    wait_for(lambda: _rows(cluster.sessions, "h1") == {"hall_pir": (True, 2)},
             what="the device's next report judged as the new care's first")
