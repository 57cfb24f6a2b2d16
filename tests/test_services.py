"""The test helpers themselves: real Mosquitto, VictoriaMetrics and the database fixture work."""

from __future__ import annotations

import socket
import threading
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import create_engine, text

from bench.services import Mosquitto, VictoriaMetrics, free_port


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize("cls, package", [(Mosquitto, "mosquitto"), (VictoriaMetrics, "victoria-metrics")])
def test_missing_binary_names_the_debian_package(tmp_path: Path, cls: type, package: str) -> None:
    service = cls(tmp_path, binary="/nonexistent/telecare-no-such-binary")
    with pytest.raises(RuntimeError, match=f"Debian package '{package}'"):
        service.start()


# --- Mosquitto ---------------------------------------------------------------------------------------------


class Subscriber:
    """A paho 2.x MQTT v5 client that records what it receives."""

    def __init__(self, broker: Mosquitto, client_id: str, *, clean_start: bool, expiry: int = 0) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.messages: list[mqtt.MQTTMessage] = []
        self.received = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present: bool | None = None
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = expiry
        self.client.connect(broker.host, broker.port, clean_start=clean_start, properties=properties)
        self.client.loop_start()
        assert self.connected.wait(5), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.session_present = flags.session_present
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        self.messages.append(message)
        self.received.set()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), "no SUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: Mosquitto, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub", protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_mosquitto_config_lifts_queue_limits(mosquitto: Mosquitto) -> None:
    config = mosquitto.config_path.read_text()
    for line in ("max_queued_messages 0", "max_inflight_messages 0", "persistence true"):
        assert line in config
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


def test_mosquitto_retained_message_reaches_a_later_subscriber(mosquitto: Mosquitto) -> None:
    publish(mosquitto, "telecare/h1/hall_pir", b'{"occupancy":true}', retain=True)
    sub = Subscriber(mosquitto, "reader", clean_start=True)
    try:
        sub.subscribe("telecare/h1/#")
        assert sub.received.wait(5)
        assert sub.messages[0].topic == "telecare/h1/hall_pir"
        assert sub.messages[0].payload == b'{"occupancy":true}'
        assert sub.messages[0].retain
    finally:
        sub.close()


def test_mosquitto_keeps_queued_qos1_for_offline_session_across_restart(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    sub = Subscriber(mosquitto, "gateway", clean_start=False, expiry=3600)
    sub.subscribe("telecare/#")
    sub.close()

    publish(mosquitto, "telecare/h1/door", b'{"contact":false}')
    mosquitto.restart()
    assert mosquitto.port == port

    sub = Subscriber(mosquitto, "gateway", clean_start=False, expiry=3600)
    try:
        assert sub.session_present is True
        assert sub.received.wait(5), "queued QoS 1 message lost across restart"
        assert sub.messages[0].payload == b'{"contact":false}'
        assert sub.messages[0].qos == 1
    finally:
        sub.close()


# --- VictoriaMetrics ---------------------------------------------------------------------------------------


def post_line(vm: VictoriaMetrics, line: str) -> None:
    request = urllib.request.Request(
        f"{vm.url}/api/v2/write?org=o&bucket=b&precision=ms", data=line.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 204


def test_victoria_export_finds_a_line_protocol_write(victoria: VictoriaMetrics) -> None:
    post_line(victoria, "reading,home=h1,device=d1 occupancy=true 1700000000000")
    series = victoria.export("reading_occupancy")
    assert len(series) == 1
    assert series[0]["metric"]["__name__"] == "reading_occupancy"
    assert series[0]["metric"]["home"] == "h1"
    assert series[0]["metric"]["device"] == "d1"
    assert series[0]["values"] == [1]
    assert series[0]["timestamps"] == [1700000000000]
    assert victoria.url == f"http://127.0.0.1:{victoria.port}"


def test_victoria_maps_field_types(victoria: VictoriaMetrics) -> None:
    victoria.write('reading,home=h1 off=false,n=3i,t=21.5,name="hello" 1700000000000')
    values = {s["metric"]["__name__"]: s["values"] for s in victoria.export('{__name__=~"reading_.*"}')}
    assert values == {"reading_off": [0], "reading_n": [3], "reading_t": [21.5], "reading_name": [0]}


def test_victoria_dedup_counts_a_rewritten_point_once(victoria: VictoriaMetrics) -> None:
    line = "reading,home=h1,device=d1 occupancy=true 1700000000000"
    post_line(victoria, line)
    victoria.flush()
    post_line(victoria, line)
    post_line(victoria, "reading,home=h1,device=d1 occupancy=true 1700000001000")
    assert victoria.count("reading_occupancy") == 2
    victoria.restart()
    assert victoria.count("reading_occupancy") == 2


# --- Operational database ----------------------------------------------------------------------------------


def test_db_url_is_a_usable_empty_database(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'x')"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT v FROM t")).scalar_one() == "x"
        if engine.dialect.name == "postgresql":
            assert engine.url.database.startswith("telecare_test_")
    finally:
        engine.dispose()
