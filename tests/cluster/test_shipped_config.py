"""The shipped cluster configuration (docs/nats/node-*.conf, telecare.conf, users.conf) runs as three servers,
hubs connect over TLS as their home, and each hub can publish only under its own home.

Only the lines that name the site's machines are rewritten, each checked to occur exactly once: the ports
move to free ones on 127.0.0.1, the routes to those ports, the certificate to one made here with openssl,
store_dir to the test's directory, and the users' bcrypt hashes to known plain passwords. Every permission,
the mapping and the rest are used as shipped.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from bench.nats_cluster import NatsCluster, NatsServer, partition_of
from tests.cluster.helpers import (
    HOST,
    Hub,
    create_stream,
    delete_stream,
    jetstream,
    wait_for_messages,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "nats"
GATEWAY = {"user": "_gateway", "password": "pw-_gateway"}

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")


def password(user: str) -> str:
    return f"pw-{user}"


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} exactly once in the shipped configuration"
    return text.replace(old, new)


def render_telecare_conf(server: NatsServer, cluster_ports: list[int], cert: Path, key: Path,
                         partitions: int = 16) -> str:
    text = (DOCS / "telecare.conf").read_text()
    text = _replace_once(text, "\nport: 4222\n", f"\nlisten: {HOST}:{server.port}\n")
    text = _replace_once(text, "http: 127.0.0.1:8222", f"http: {HOST}:{server.http_port}")
    text = _replace_once(text, "store_dir: /var/lib/nats/jetstream", f'store_dir: "{server.store_dir}"')
    text = _replace_once(text, "    port: 6222\n", f"    listen: {HOST}:{server.cluster_port}\n")
    for number, port in enumerate(cluster_ports, start=1):
        text = _replace_once(text, f"nats-route://nats-{number}.example.net:6222", f"nats-route://{HOST}:{port}")
    text = _replace_once(text, "    port: 8883\n", f"    listen: {HOST}:{server.mqtt_port}\n")
    text = _replace_once(text, "/etc/nats/certs/fullchain.pem", str(cert))
    text = _replace_once(text, "/etc/nats/certs/privkey.pem", str(key))
    return _replace_once(text, "{{partition(16,1)}}", f"{{{{partition({partitions},1)}}}}")


def render_users_conf() -> str:
    text = (DOCS / "users.conf").read_text()
    text, count = re.subn(r'user: (\S+)\n(\s+)password: "[^"]*"',
                          lambda m: f'user: {m[1]}\n{m[2]}password: "{password(m[1])}"', text)
    assert count == 3, "expected the gateway and two example homes in users.conf"
    return text


def shipped_cluster(workdir: Path) -> tuple[NatsCluster, Path]:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"],
                   check=True, capture_output=True)
    holder: list[NatsCluster] = []

    def render(server: NatsServer) -> str:
        cluster_ports = [member.cluster_port for member in holder[0].servers]
        (server.workdir / "telecare.conf").write_text(render_telecare_conf(server, cluster_ports, cert, key))
        (server.workdir / "users.conf").write_text(render_users_conf())
        return (DOCS / f"{server.server_name.replace('nats-', 'node-')}.conf").read_text()

    cluster = NatsCluster(workdir, config=render)
    holder.append(cluster)
    return cluster, cert


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsCluster, Path]]:
    cluster, cert = shipped_cluster(tmp_path_factory.mktemp("nats-shipped"))
    with cluster:
        yield cluster, cert


@pytest.fixture
def stream(shipped: tuple[NatsCluster, Path]) -> Iterator[list[str]]:
    """The readings stream, created by the gateway user; yields the servers' URLs."""
    urls = shipped[0].urls
    create_stream(urls, credentials=GATEWAY)
    yield urls
    delete_stream(urls, credentials=GATEWAY)


def hub(shipped: tuple[NatsCluster, Path], home: str, server: int = 0) -> Hub:
    cluster, ca_file = shipped
    return Hub(cluster.servers[server].mqtt_port, user=home, password=password(home), ca_file=ca_file,
               client_id=home)


def test_a_hub_publishes_its_own_home_over_tls_to_any_server(shipped: tuple[NatsCluster, Path],
                                                            stream: list[str]) -> None:
    for number, home in enumerate(["home-a", "home-b", "home-a"]):
        connection = hub(shipped, home, server=number)
        try:
            assert not connection.refused
            assert connection.publish(f"telecare/{home}/hallway_pir", b'{"occupancy":true}')
        finally:
            connection.close()
    assert [subject for subject, _ in wait_for_messages(stream, 3, credentials=GATEWAY)] == [
        f"telecare-part.{partition_of(home)}.telecare.{home}.hallway_pir" for home in ["home-a", "home-b", "home-a"]
    ]


def test_a_hub_cannot_publish_another_homes_topic(shipped: tuple[NatsCluster, Path], stream: list[str]) -> None:
    connection = hub(shipped, "home-a", server=1)
    try:
        # nats-server refuses the message (permissions are checked on the mapped subject) but still sends the
        # PUBACK: a refused publish is not visible to the hub. Then the hub's own message: once it is in the
        # stream, the refused one, published before it on the same connection, would have been too.
        assert connection.publish("telecare/home-b/pendant", b'{"action":"single"}')
        assert connection.publish("telecare-part/3/telecare/home-b/pendant", b'{"action":"single"}')
        assert connection.publish("telecare/home-a", b"{}")  # not under telecare/home-a/: not the hub's
        assert connection.publish("telecare/home-a/pendant", b'{"action":"single"}')
    finally:
        connection.close()
    assert wait_for_messages(stream, 1, credentials=GATEWAY) == [
        (f"telecare-part.{partition_of('home-a')}.telecare.home-a.pendant", b'{"action":"single"}')
    ]


def test_a_hub_cannot_reach_the_jetstream_api(shipped: tuple[NatsCluster, Path], stream: list[str]) -> None:
    # An MQTT topic starting with $ becomes a $-subject like any other: only the permissions keep a hub away
    # from JetStream's API ($JS.API.STREAM.DELETE.READINGS) and the system account's subjects.
    connection = hub(shipped, "home-a")
    try:
        assert connection.publish("$JS/API/STREAM/PURGE/READINGS", b"")
        assert connection.publish("$JS/API/STREAM/DELETE/READINGS", b"")
        assert connection.publish("telecare/home-a/pendant", b"{}")
    finally:
        connection.close()
    assert len(wait_for_messages(stream, 1, credentials=GATEWAY)) == 1


def test_a_hub_subscribes_to_its_own_home_only_at_qos_0(shipped: tuple[NatsCluster, Path]) -> None:
    # zigbee2mqtt subscribes to <base_topic>/# at QoS 0 (lib/mqtt.ts: client.subscribe(topic), MQTT.js's
    # default). A QoS 1 subscription needs a JetStream consumer delivering on $MQTT.sub.<id>, which the hub's
    # subscribe permissions do not allow (nor should they: $MQTT.sub.> is every MQTT client's deliveries).
    connection = hub(shipped, "home-b", server=2)
    try:
        assert connection.subscribe("telecare/home-b/#", qos=0)
        assert not connection.subscribe("telecare/home-a/#", qos=0)
        assert not connection.subscribe("telecare/#", qos=0)
        assert not connection.subscribe("$MQTT/sub/#", qos=0)
        assert not connection.subscribe("telecare/home-b/#", qos=1)
    finally:
        connection.close()


def test_who_may_connect_where(shipped: tuple[NatsCluster, Path]) -> None:
    cluster, ca_file = shipped
    server = cluster.servers[0]
    wrong = Hub(server.mqtt_port, user="home-a", password="not-the-password", ca_file=ca_file)
    gateway_on_mqtt = Hub(server.mqtt_port, user="_gateway", password=password("_gateway"), ca_file=ca_file)
    try:
        assert wrong.refused
        assert gateway_on_mqtt.refused
    finally:
        wrong.close()
        gateway_on_mqtt.close()
    # The hubs' listener speaks TLS only.
    with pytest.raises(AssertionError, match="no CONNACK"):
        Hub(server.mqtt_port, user="home-a", password=password("home-a"), connect_timeout=1.0)
    # A hub's password opens no NATS connection (allowed_connection_types), nor does no password at all.
    for credentials in ({"user": "home-a", "password": password("home-a")}, {}):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            asyncio.run(_connect_once(server.url, credentials))


async def _connect_once(url: str, credentials: dict[str, str]) -> None:
    # allow_reconnect=False: nats-py otherwise retries a refused first connect, for longer than a test waits.
    client = await nats.connect(servers=[url], allow_reconnect=False, connect_timeout=2, **credentials)
    await client.close()


def test_the_gateway_cannot_forge_a_hub_message(shipped: tuple[NatsCluster, Path], stream: list[str]) -> None:
    async def publish(js: JetStreamContext) -> None:
        await js._nc.publish("telecare.home-a.pendant", b'{"action":"single"}')
        await js._nc.publish(f"telecare-part.{partition_of('home-a')}.telecare.home-a.pendant", b"{}")
        await js._nc.flush()

    jetstream(stream, publish, GATEWAY)
    connection = hub(shipped, "home-a")
    try:
        assert connection.publish("telecare/home-a/hallway_pir", b"{}")
    finally:
        connection.close()
    assert [subject for subject, _ in wait_for_messages(stream, 1, credentials=GATEWAY)] == [
        f"telecare-part.{partition_of('home-a')}.telecare.home-a.hallway_pir"
    ]


def test_a_hubs_last_will_lands_on_its_partition(shipped: tuple[NatsCluster, Path], stream: list[str]) -> None:
    # zigbee2mqtt's will: bridge/state "offline", QoS 1, retained. The server publishes it when the connection
    # dies without a DISCONNECT, through the mapping and the hub's permissions like any of its messages.
    cluster, ca_file = shipped
    topic = "telecare/home-b/bridge/state"
    connection = Hub(cluster.servers[1].mqtt_port, user="home-b", password=password("home-b"), ca_file=ca_file,
                     client_id="home-b", will_topic=topic)
    connection.drop()
    assert wait_for_messages(stream, 1, credentials=GATEWAY) == [
        (f"telecare-part.{partition_of('home-b')}.telecare.home-b.bridge.state", b"offline")
    ]
