"""Cluster mode under faults, with everything real: three nats-server, three ``telecare gateway`` worker processes,
PostgreSQL, VictoriaMetrics as the shared readings store and the local Pushover server (``bench.cluster_fleet``).

Hubs publish readings (each its own event time) and pendant presses at QoS 1, spread over the three servers'
MQTT ports, reconnecting to another server when theirs drops them. Mid-stream, one fault each: a NATS server
killed, a worker killed, the dispatcher's holder killed, a worker paused past its lease. Throughout:

* every PUBACKed reading is stored, once (a point is its measurement, tags and event time; VictoriaMetrics keeps
  one sample per point, as InfluxDB does), and nothing is stored that was not sent;
* every press reaches the home's carer at Pushover, and exactly once, except across the death of the dispatcher
  holding the lock: a message it had sent but not yet recorded as sent is sent again by the next holder (the
  at-least-once window of docs/alerting.md), so there a carer may get it twice, never more.

The deployment is shared by the module (starting it takes most of a test's time); each test uses homes of its
own, and puts back what it broke (a server restarted, a worker replaced).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.cluster_fleet import Fleet, Hub, start_hubs, wait
from bench.nats_cluster import NatsServer
from gateway.cluster.stream import READINGS_STREAM, partition_of
from tests.cluster.helpers import stream_leader, wait_for
from tests.conftest import DEFAULT_PG_ADMIN_URL, PG_URL_ENV

pytestmark = pytest.mark.slow

HOMES_PER_TEST = 6
RATE = 8.0  # readings a second per hub
PARTITIONS = 16  # bench.cluster_fleet's workers and servers
LEASE_EXPIRY_S = 12.0  # a dead worker's partitions are taken within this (docs/scale-out.md, "Ownership")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    admin_url = os.environ.get(PG_URL_ENV) or DEFAULT_PG_ADMIN_URL
    try:
        running = Fleet.start(tmp_path_factory.mktemp("fleet"), admin_url)
    except ConnectionError as e:
        pytest.skip(f"{e}; start PostgreSQL, or set {PG_URL_ENV} to an admin URL")
    with running:
        for _ in range(3):
            running.add_worker()
        running.wait_partitions_shared()
        yield running


@pytest.fixture
def healed(fleet: Fleet) -> Iterator[Fleet]:
    """The fleet, put back after the test: every NATS server running and healthy, three live workers."""
    yield fleet
    for server in fleet.nats.servers:
        if not server.running:
            server.start()
    # Not /healthz: after a kill -9, the restarted server's health check waits on its own old $MQTT_rmsgs consumer
    # (retained messages), which stays "not current" for minutes; what the workers use is these streams.
    wait(lambda: _streams_current(fleet), 30, "the restarted NATS server caught up", fleet.logs)
    for worker in fleet.workers:
        if worker.alive:
            worker.resume()
    while len(fleet.live_workers) < 3:
        fleet.add_worker()
    fleet.wait_partitions_shared()


def _streams_current(fleet: Fleet) -> bool:
    """Whether the streams the workers use have a leader and every replica current."""
    from gateway.cluster.entries import ENTRIES_STREAM
    from gateway.cluster.stream import MQTT_STREAM
    from tests.cluster.helpers import jetstream

    async def current(js) -> bool:  # type: ignore[no-untyped-def]
        for name in (MQTT_STREAM, ENTRIES_STREAM):
            cluster = (await js.stream_info(name)).cluster
            if not cluster.leader or len(cluster.replicas or []) != 2 or not all(
                    r.current and not r.offline for r in cluster.replicas or []):
                return False
        return True

    try:
        return jetstream(fleet.nats.urls, current)
    except Exception:  # no leader yet: the request times out
        return False


def _homes(name: str, fleet: Fleet, *, every_partition: bool = False) -> list[str]:
    """``HOMES_PER_TEST`` new homes, or (``every_partition``) one on each of the 16 partitions."""
    if every_partition:
        by_partition: dict[int, str] = {}
        for i in itertools.count():
            by_partition.setdefault(partition_of(f"{name}-{i}", PARTITIONS), f"{name}-{i}")
            if len(by_partition) == PARTITIONS:
                break
        homes = [by_partition[p] for p in range(PARTITIONS)]
    else:
        homes = [f"{name}-{i}" for i in range(HOMES_PER_TEST)]
    for home in homes:
        fleet.add_home(home)
    return homes


def _run(fleet: Fleet, name: str, fault: Callable[[], None], *, after_s: float = 4.0,
         every_partition: bool = False) -> list[Hub]:
    """Hubs publishing; half of them press before the fault, the others after it; then every hub stops once its
    messages are acknowledged. The hubs, for the checks."""
    homes = _homes(name, fleet, every_partition=every_partition)
    hubs = start_hubs(homes, fleet.nats.servers, rate=RATE)
    time.sleep(3)
    for hub in hubs[: len(hubs) // 2]:
        hub.press()
    time.sleep(1)
    fault()
    for hub in hubs[len(hubs) // 2:]:
        hub.press()
    time.sleep(after_s)
    for hub in hubs:
        hub.finish()
    return hubs


def _check(fleet: Fleet, hubs: list[Hub], *, sends_per_press: int = 1, timeout_s: float = 40.0) -> None:
    for hub in hubs:
        assert not hub.errors, f"{hub.home}: {hub.errors}"
        assert not hub.is_alive(), f"{hub.home}'s hub did not finish"
        assert len(hub.pressed_at) == 1 and hub.acked, f"{hub.home}: the hub published nothing"

    def every_acked_reading_stored() -> bool:
        return all(hub.acked <= set(fleet.stored_times(hub.home)) for hub in hubs)

    wait(every_acked_reading_stored, timeout_s, "every PUBACKed reading stored", lambda: _lost(fleet, hubs))
    wait(lambda: all(fleet.messages_to(hub.home) for hub in hubs), 20, "every press at Pushover",
         lambda: f"{[(h.home, len(fleet.messages_to(h.home))) for h in hubs]}\n{fleet.logs()}")
    time.sleep(2)  # a duplicate would come now
    for hub in hubs:
        stored = fleet.stored_times(hub.home)
        assert len(stored) == len(set(stored)), f"{hub.home}: a point stored twice"
        assert set(stored) <= hub.sent, f"{hub.home}: points stored that no hub sent"
        sent = fleet.messages_to(hub.home)
        assert 1 <= len(sent) <= sends_per_press, f"{hub.home}'s carer got {len(sent)} messages: {sent}"


def _lost(fleet: Fleet, hubs: list[Hub]) -> str:
    lines = []
    for hub in hubs:
        missing = sorted(hub.acked - set(fleet.stored_times(hub.home)))
        lines.append(f"{hub.home}: {len(hub.acked)} PUBACKed, {len(missing)} not stored "
                     f"(event times {missing[:5]}...), {hub.reconnects} reconnects")
    return "\n".join(lines) + "\n" + fleet.logs()


def _readings_leader(fleet: Fleet) -> NatsServer:
    """The NATS server leading the readings stream, ``$MQTT_msgs`` (the stream a hub's PUBACK waits for, which the
    workers read): its death is a leader election in the middle of the hand-off."""
    name = wait_for(lambda: stream_leader(fleet.nats.urls, READINGS_STREAM), 15, "a leader of the readings stream")
    return next(server for server in fleet.nats.servers if server.server_name == name)


def test_a_killed_worker_loses_nothing(healed: Fleet) -> None:
    fleet = healed
    victim = next(w for w in fleet.live_workers if w is not fleet.dispatcher_holder())
    hubs = _run(fleet, "worker", victim.kill, after_s=4)
    _check(fleet, hubs, timeout_s=LEASE_EXPIRY_S + 30)


def test_the_dispatchers_holder_killed_hands_alerting_over(healed: Fleet) -> None:
    fleet = healed
    holder = fleet.dispatcher_holder()
    assert holder is not None, "no worker holds the dispatcher's lock"
    hubs = _run(fleet, "dispatcher", holder.kill, after_s=4)
    _check(fleet, hubs, sends_per_press=2, timeout_s=LEASE_EXPIRY_S + 30)
    assert fleet.dispatcher_holder() not in (None, holder), "another worker took the dispatcher's lock"


def test_a_worker_paused_past_its_lease_processes_nothing_twice(healed: Fleet) -> None:
    fleet = healed
    paused = next(w for w in fleet.live_workers if w is not fleet.dispatcher_holder())

    def pause_past_the_lease() -> None:
        paused.pause()
        time.sleep(LEASE_EXPIRY_S + 2)
        paused.resume()

    hubs = _run(fleet, "paused", pause_past_the_lease, after_s=4)
    _check(fleet, hubs, timeout_s=30)
    assert paused.alive, f"the resumed worker died:\n{paused.tail()}"


# Last in the module: a NATS server killed and restarted leaves the cluster the slowest to settle.
def test_a_killed_nats_server_loses_no_acknowledged_reading(healed: Fleet, tmp_path: Path) -> None:
    fleet = healed
    # The server leading the readings stream: its death is the election that gap is about.
    victim = _readings_leader(fleet)
    hubs = _run(fleet, "nats", victim.kill, after_s=10)
    _check(fleet, hubs)
    # And every partition goes on flowing with the server still down: a home on each, its readings stored and its
    # press sent as promptly as before the fault (a partition left stalled, or moving back and forth between
    # workers, would hold its home's up).
    after = _run(fleet, "after-nats", lambda: None, after_s=2, every_partition=True)
    _check(fleet, after, timeout_s=LEASE_EXPIRY_S)
    assert not victim.running
