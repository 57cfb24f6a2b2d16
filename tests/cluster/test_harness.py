"""bench/nats_cluster.py's NatsServer keeps its ports and its JetStream store across restart() and a kill -9."""

from __future__ import annotations

from pathlib import Path

from nats.js import JetStreamContext

from bench.nats_cluster import NatsServer
from tests.cluster.helpers import create_stream, jetstream, stream_messages


def _publish(url: str, payload: bytes) -> None:
    async def work(js: JetStreamContext) -> None:
        await js.publish("telecare-part.2.telecare.h1.pendant", payload)  # returns once the stream stored it

    jetstream([url], work)


def test_restart_and_kill_keep_ports_and_store(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    with server:
        ports = (server.port, server.cluster_port, server.mqtt_port, server.http_port)
        assert server.healthy()
        create_stream([server.url], num_replicas=1)
        _publish(server.url, b"before restart")
        server.restart()
        _publish(server.url, b"before kill")
        server.kill()
        assert not server.running
        server.start()
        server.wait_healthy()
        assert (server.port, server.cluster_port, server.mqtt_port, server.http_port) == ports
        assert [payload for _, payload in stream_messages([server.url])] == [b"before restart", b"before kill"]
    assert not server.running
