"""``telecare gateway`` with TELECARE_NATS_URL set is a cluster worker: killed with SIGKILL mid-backlog, the next
worker takes its partitions once their leases expire and stores every reading exactly once; SIGTERM stops it
cleanly, its leases released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import PARTITIONS, Cluster, cluster, nats_server, temperatures, wait_for

__all__ = ["cluster", "nats_server"]  # the fixtures, used by name

ROOT = Path(__file__).resolve().parents[2]
HOMES = ["h1", "home-a", "care-home-17", "h4"]  # one on each of the four partitions
EACH = 250


def _worker(cluster: Cluster, log: Path) -> subprocess.Popen[bytes]:
    s = cluster.settings
    env = {**os.environ, "TELECARE_NATS_URL": s.nats_url or "", "TELECARE_NATS_PARTITIONS": str(PARTITIONS),
           "TELECARE_DB_URL": s.db_url or "", "TELECARE_DATA_DIR": str(s.data_dir), "TELECARE_BATCH_MAX": "50"}
    return subprocess.Popen([sys.executable, "-m", "telecare", "gateway", "--log-level", "INFO"], env=env, cwd=ROOT,
                            stderr=open(log, "ab"))


def _stored(cluster: Cluster) -> int:
    return sum(len(cluster.points(home)) for home in HOMES)


@ON_POSTGRESQL
def test_a_killed_worker_loses_nothing_and_a_stopped_one_releases_its_partitions(cluster: Cluster, tmp_path: Path
                                                                                 ) -> None:
    cluster.create_stream()
    for home in HOMES:
        cluster.publish(temperatures(home, EACH))
    log = tmp_path / "workers.log"
    first = _worker(cluster, log)
    try:
        wait_for(lambda: _stored(cluster) >= 100, 20, "the backlog flowing")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = _stored(cluster)
    finally:
        first.kill()
    second = _worker(cluster, log)
    try:
        # The killed worker's leases expire (9 s) before the second may take its partitions.
        wait_for(lambda: _stored(cluster) == len(HOMES) * EACH, 30, "every reading stored")
        wait_for(lambda: cluster.stream_messages() == 0, 10, "every message acknowledged")
        for home in HOMES:
            assert cluster.points(home) == [15 + i / 100 for i in range(EACH)]
        assert killed_at < len(HOMES) * EACH, "the first worker was killed before the backlog ended"
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()[-3000:]
    finally:
        second.kill()
    with cluster.sessions() as session:
        owners = session.execute(text("SELECT DISTINCT owner FROM partition_leases")).scalars().all()
    assert owners == [None], "a clean stop releases every lease"
