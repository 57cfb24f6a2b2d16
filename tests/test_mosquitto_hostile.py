"""A hostile or broken hub against the shipped Mosquitto configuration (issue 11, findings 1 and 3).

Same broker as tests/test_mosquitto_conf.py (the shipped telecare.conf and ACL, only the machine-specific lines
rewritten), one broker for this module. A hub's credentials are assumed stolen or its firmware broken: it may
pick any client id, send any size, publish anywhere. None of that may cost the gateway its connection, its
persistent session, or other homes' messages.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import Settings
from gateway.contract import Limits
from gateway.metrics import IngestMetrics
from gateway.mqtt_input import MqttInput, MqttOptions
from tests.test_mosquitto_conf import (
    CONF,
    HOST,
    TIMEOUT,
    USERS,
    Broker,
    directives,
    mqtt_clients,
    shipped_broker,
)
from tests.test_mosquitto_conf import pytestmark as pytestmark  # the same skip when mosquitto is missing

GATEWAY_CLIENT_ID = Settings.model_fields["mqtt_client_id"].default  # "telecare-gateway"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with shipped_broker(tmp_path_factory.mktemp("mosquitto-hostile")) as running:
        yield running


@pytest.fixture
def clients(broker: Broker) -> Iterator[Any]:
    with mqtt_clients(broker) as make:
        yield make


def _settings() -> dict[str, str]:
    return {words[0]: words[1] for words in directives(CONF.read_text()) if len(words) == 2}


def _no_disconnect(client: Any, within_s: float = 0.5) -> bool:
    try:
        client.disconnects.get(timeout=within_s)
    except queue.Empty:
        return True
    return False


def _wait_for_log(broker: Broker, line: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while line not in broker.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"not in the broker's log: {line}"
        time.sleep(0.05)


def _fresh_gateway_session(clients: Any) -> None:
    """Start from no persistent session for the gateway's user: earlier tests may have left one."""
    clients("_gateway", clean_start=True, session_expiry_s=0).close()


# --- the file ---------------------------------------------------------------------------------------------

def test_every_listener_binds_client_ids_to_users() -> None:
    lines = directives(CONF.read_text())
    starts = [i for i, words in enumerate(lines) if words[0] == "listener"]
    assert len(starts) == 2
    # Before the first listener line it would configure Mosquitto's default listener: one more port, on every
    # interface, and the two real listeners would not have it.
    assert all(words[0] != "use_username_as_clientid" for words in lines[:starts[0]])
    for begin, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        assert ["use_username_as_clientid", "true"] in lines[begin:end], f"listener {lines[begin][1:]}"


def test_sizes_and_queues_are_bounded_but_hold_the_gateways_backlog() -> None:
    conf = _settings()
    packet = int(conf["max_packet_size"])
    # Above every device message the gateway accepts, and room for a hub's bridge/devices; far below MQTT's 256 MiB.
    assert Limits().max_payload_bytes * 8 <= packet <= 4 * MiB
    queued_bytes, queued_messages = int(conf["max_queued_bytes"]), int(conf["max_queued_messages"])
    assert 0 < queued_bytes <= 2**31 - 1  # Mosquitto parses it with atoi: larger values overflow
    assert queued_messages >= 1_000_000  # 1000 homes x 10 readings/min x 8 h is 4.8 million
    assert queued_bytes >= queued_messages * 300  # zigbee2mqtt's states are a few hundred bytes
    inflight_bytes = int(conf["max_inflight_bytes"])
    receive_maximum = MqttOptions(url="", client_id="", topics=()).receive_maximum
    assert inflight_bytes >= receive_maximum * 1024  # never the gateway's throttle
    assert inflight_bytes < queued_bytes


# --- client ids -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [True, False], ids=["hubs-listener", "loopback-listener"])
@pytest.mark.parametrize("stolen_id", [GATEWAY_CLIENT_ID, "_gateway"])
def test_a_hub_with_the_gateways_client_id_does_not_disconnect_it(clients: Any, tls: bool, stolen_id: str) -> None:
    _fresh_gateway_session(clients)
    gateway = clients("_gateway", client_id=GATEWAY_CLIENT_ID)
    gateway.subscribe("telecare/#")
    hub = clients("home-a", client_id=stolen_id, tls=tls, clean_start=True)
    assert not hub.refused  # let in, under the id "home-a"
    hub.publish("telecare/home-a/hallway_pir", b'{"occupancy":true}')
    assert gateway.receive().payload == b'{"occupancy":true}'
    assert _no_disconnect(gateway), "the hub took over the gateway's connection"


def test_a_hub_cannot_erase_the_gateways_queued_pendant_presses(broker: Broker, clients: Any) -> None:
    """The gateway itself (MqttInput, persistent session) is away; another home's five pendant presses wait for
    it. A hub connecting with the gateway's client id and a clean start would, without the binding, take that
    session over and erase it."""
    _fresh_gateway_session(clients)
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    options = MqttOptions(url=f"mqtt://_gateway:{USERS['_gateway']}@{HOST}:{broker.plain_port}",
                          client_id=GATEWAY_CLIENT_ID, topics=("telecare/#",))

    def run_gateway() -> MqttInput:
        metrics = IngestMetrics()
        gateway: MqttInput

        def on_message(mid: int, qos: int, topic: str, payload: bytes) -> None:
            received.put((topic, payload))
            gateway.ack(mid, qos)

        gateway = MqttInput(options, on_message, metrics)
        gateway.start()
        deadline = time.monotonic() + TIMEOUT
        while metrics.sample("telecare_mqtt_connected") != 1:
            assert time.monotonic() < deadline, "the gateway did not connect and subscribe"
            time.sleep(0.05)
        return gateway

    run_gateway().stop()  # its session (and subscription) stays in the broker
    presses = [f'{{"action":"single","seq":{i}}}'.encode() for i in range(5)]
    other_home = clients("home-b", tls=True)
    for press in presses:
        assert not other_home.publish("telecare/home-b/pendant", press).is_failure
    for stolen_id in (GATEWAY_CLIENT_ID, "_gateway"):
        clients("home-a", client_id=stolen_id, tls=True, clean_start=True).close()
    gateway = run_gateway()
    try:
        got = [received.get(timeout=TIMEOUT) for _ in presses]
        assert got == [("telecare/home-b/pendant", press) for press in presses]
    finally:
        gateway.stop()
        _fresh_gateway_session(clients)


def test_one_connection_per_user(clients: Any) -> None:
    """The price of the binding: a second connection with the same username takes over the first. Run one
    gateway process per broker user (docs/production.md)."""
    first = clients("home-a", client_id="first")
    clients("home-a", client_id="second")
    assert first.disconnects.get(timeout=TIMEOUT) is not None
    first.close()  # paho would reconnect and take over in turn


# --- sizes ------------------------------------------------------------------------------------------------

def test_a_one_megabyte_publish_disconnects_that_hub_only(broker: Broker, clients: Any) -> None:
    gateway = clients("_gateway")
    gateway.subscribe("telecare/#")
    flooder = clients("home-a", tls=True)
    flooder.client.publish("telecare/home-a/hallway_pir", b"x" * MiB, qos=1)
    flooder.disconnects.get(timeout=TIMEOUT)  # paho sees "Packet too large", or the closed socket first
    flooder.close()  # paho would reconnect and send it again
    _wait_for_log(broker, "Client home-a disconnected due to oversize packet.")
    other_home = clients("home-b", tls=True)
    # A large but legitimate message: the bridge/devices of a home with many devices.
    big_devices = b"[" + b" " * (900 * 1024) + b"]"
    assert not other_home.publish("telecare/home-b/bridge/devices", big_devices).is_failure
    other_home.publish("telecare/home-b/pendant", b'{"action":"single"}')
    assert gateway.received_until(b'{"action":"single"}') == [("telecare/home-b/bridge/devices", big_devices),
                                                              ("telecare/home-b/pendant", b'{"action":"single"}')]
    assert _no_disconnect(gateway, within_s=0.1)


def test_a_backlog_larger_than_the_inflight_byte_bound_reaches_the_gateway_whole(clients: Any) -> None:
    """max_inflight_bytes (32 MiB) must not stall or drop a backlog bigger than itself: 48 messages of 900 KiB
    queued while the gateway is away, then the gateway returns."""
    conf = _settings()
    size = 900 * 1024
    count = int(conf["max_inflight_bytes"]) // size + 10
    _fresh_gateway_session(clients)
    gateway = clients("_gateway", client_id=GATEWAY_CLIENT_ID, clean_start=True, session_expiry_s=600)
    gateway.subscribe("telecare/#")
    gateway.close()
    hub = clients("home-a")
    sent = [str(i).encode().ljust(size, b".") for i in range(count)]
    for payload in sent:
        assert not hub.publish("telecare/home-a/bridge/devices", payload).is_failure
    back = clients("_gateway", client_id=GATEWAY_CLIENT_ID, clean_start=False, session_expiry_s=0)
    assert [back.receive().payload for _ in sent] == sent


# --- the ACL, at QoS 0 (zigbee2mqtt's default, no PUBACK to tell a refusal) ---------------------------------

def test_a_hub_cannot_write_another_home_nor_the_clock_at_qos0(clients: Any) -> None:
    gateway = clients("_gateway")
    gateway.subscribe("telecare/#")
    gateway.subscribe("telecare-sim/clock")
    hub = clients("home-a", tls=True)
    hub.publish("telecare/home-b/pendant", b'{"action":"single"}', qos=0)
    hub.publish("telecare/home-b/bridge/state", b'{"state":"offline"}', qos=0)
    hub.publish("telecare-sim/clock", b'{"now":"2030-01-01T00:00:00Z"}', qos=0)
    hub.publish("telecare/home-a/hallway_pir", b"sentinel", qos=0)
    # One connection, so the broker handles its publishes in order: a forged one would arrive before this.
    assert gateway.received_until(b"sentinel") == [("telecare/home-a/hallway_pir", b"sentinel")]
