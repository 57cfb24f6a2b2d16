"""The watchdog in cluster mode: the holder of the housekeeping role tells the operators (the local Pushover server)
when the dispatcher lags, when hub messages or decided entries wait in their streams, when JetStream's storage is
full; no journal, no disk of its own. A worker standing by tells nobody."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.nats_cluster import NatsServer
from bench.pushover_server import PushoverServer
from gateway.alerting import people
from gateway.alerting.states import NotificationState
from gateway.cluster.entries import ENTRIES_STREAM, EntryStream
from gateway.cluster.housekeeping import storage_full_check, stream_lag_check
from gateway.cluster.stream import READINGS_STREAM, JetStreamLink, StreamOptions
from gateway.cluster.worker import ClusterWorker
from gateway.config import Settings
from gateway.db.models import Alert, Home, Notification
from telecare.cluster import build_cluster_worker
from tests.cluster.helpers import Hub
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import PARTITIONS, nats_server, temperatures

__all__ = ["nats_server"]  # the fixture, used by name

pytest_plugins = ["tests.conftest_pushover"]
TOKEN, OPERATORS = "a" * 30, "u" * 30
LAG = "lag:stream", "hub messages wait for the workers", "alerts may come late"


@pytest.fixture
def link(nats_server: NatsServer) -> Iterator[JetStreamLink]:
    """A worker's link: ``$MQTT_msgs`` and a placeholder consumer for every partition made (so what hubs publish is
    kept, and nobody takes it), and the entries stream."""
    started = JetStreamLink([nats_server.url], StreamOptions(partitions=PARTITIONS))
    started.start()
    EntryStream(started).ensure()
    yield started
    started.close()


def test_hub_messages_waiting_in_the_stream_are_a_problem_by_count_or_by_age(nats_server: NatsServer,
                                                                            link: JetStreamLink) -> None:
    from gateway.watchdog import WatchdogBounds

    wall_ms = lambda: int(time.time() * 1000)  # noqa: E731
    few = WatchdogBounds(journal_lag_entries=3, journal_lag_s=300)
    assert stream_lag_check(link, READINGS_STREAM, *LAG, few, wall_ms)() is None, "nothing waits"
    hub = Hub(nats_server.mqtt_port)
    try:
        for topic, payload in temperatures("h1", 3):  # no worker runs: they wait
            assert hub.publish(topic, payload)
    finally:
        hub.close()

    problem = stream_lag_check(link, READINGS_STREAM, *LAG, few, wall_ms)()
    assert problem is not None and problem.name == "lag:stream"
    assert problem.message.startswith("3 hub messages wait for the workers, the oldest received "), problem
    many = WatchdogBounds(journal_lag_entries=1000, journal_lag_s=300)
    assert stream_lag_check(link, READINGS_STREAM, *LAG, many, wall_ms)() is None, "3 of 1,000, just stored"
    later = lambda: wall_ms() + 10 * 60_000 + 20_000  # noqa: E731  # ten minutes on (and the test's seconds)
    problem = stream_lag_check(link, READINGS_STREAM, *LAG, many, later)()
    assert problem is not None and "the oldest received 10 min ago" in problem.message, problem
    assert stream_lag_check(link, ENTRIES_STREAM, "lag:entries", "readings wait for the readings store", "",
                            few, later)() is None, "no entry waits for the store"


def test_jetstream_storage_nearly_full_is_a_problem(link: JetStreamLink) -> None:
    assert storage_full_check(lambda: 0.995, 0.99)() is not None
    assert storage_full_check(lambda: 0.5, 0.99)() is None
    assert storage_full_check(lambda: None, 0.99)() is None, "no account limit: the servers' /jsz tells"
    assert storage_full_check(link.storage_share, 0.99)() is None  # the test server's account has none


@ON_POSTGRESQL
def test_the_housekeeping_workers_watchdog_tells_operators_that_the_dispatcher_lags(
        tmp_path: Path, nats_server: NatsServer, db_url: str, pushover: PushoverServer) -> None:
    settings = Settings(db_url=db_url, data_dir=tmp_path / "gw", nats_url=nats_server.url,  # type: ignore[call-arg]
                        nats_partitions=PARTITIONS, pushover_url=pushover.url, pushover_token=TOKEN,
                        operator_pushover_user=OPERATORS)
    workers = [build_cluster_worker(settings, worker_id=name) for name in ("w1", "w2")]
    try:
        for worker in workers:  # what run() does first: the NATS link, with every stream
            worker.context.link.start()
            worker.context.entries.ensure()
        _notification_waiting(workers[0], minutes=12)  # the dispatcher (not running here) has not sent it
        first, second = (w.housekeeping for w in workers)
        assert first is not None and second is not None
        assert first.try_take() and not second.try_take()
        assert "watchdog" in first.run_due() and second.run_due() == []

        [told] = pushover.messages
        assert told["user"] == OPERATORS and "1 problem" in told["title"], told
        assert "a carers' notification has waited 12 min to be sent" in told["message"], told
        assert "failed" not in told["message"], "the stream checks ran: the watchdog's own checks are well"
    finally:
        for worker in workers:
            assert worker.housekeeping is not None
            worker.housekeeping.release()
            worker.context.link.close()
            worker.context.store.close()


def _notification_waiting(worker: ClusterWorker, minutes: int) -> None:
    now = datetime.now(UTC)
    with worker.context.sessions.begin() as s:
        s.add(Home(id="h1"))
        s.flush()
        resident = people.add_resident(s, "h1", "Mrs Jones")
        recipient = people.add_recipient(s, "Anne (daughter)", "r" * 30)
        alert = Alert(home_id="h1", resident_id=resident.id, kind="inactivity", subject="", severity=3,
                      state="raised", message="No activity since 13:00", raised_at=now - timedelta(hours=1),
                      updated_at=now - timedelta(hours=1), details={})
        s.add(alert)
        s.flush()
        s.add(Notification(alert_id=alert.id, recipient_id=recipient.id, step=1, purpose="alert", priority=1,
                           title="t", message="m", state=NotificationState.PENDING, attempts=3,
                           next_attempt_at=now - timedelta(minutes=minutes),
                           created_at=now - timedelta(minutes=minutes)))
