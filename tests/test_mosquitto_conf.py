"""The shipped Mosquitto configuration (docs/mosquitto/telecare.conf and docs/mosquitto/acl) runs, and its ACL
keeps each home's hub inside its own namespace.

Mosquitto has no "check this configuration" flag, so the test starts the real broker on the shipped file. The
only lines rewritten are the ones that name this machine: the listeners move to free ports on 127.0.0.1, the
TLS certificate becomes a self-signed one made here, the password file is generated with mosquitto_passwd,
persistence and logs go to the test's directory, and the broker keeps the current user. Every other line,
the ACL file included, is used as shipped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.services import free_port
from gateway.metrics import IngestMetrics
from gateway.mqtt_input import MqttInput, MqttOptions

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "docs" / "mosquitto" / "telecare.conf"
ACL = ROOT / "docs" / "mosquitto" / "acl"
MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
TIMEOUT = 5.0

USERS = {"home-a": "pw-a", "home-b": "pw-b", "_gateway": "pw-gw", "_simulator": "pw-sim"}
TLS_LINES = {"certfile", "keyfile", "cafile", "capath", "tls_version", "require_certificate", "ciphers"}

pytestmark = pytest.mark.skipif(
    not (Path(MOSQUITTO).exists() and shutil.which("mosquitto_passwd") and shutil.which("openssl")),
    reason="needs the Debian packages mosquitto (broker and mosquitto_passwd) and openssl",
)


def directives(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@dataclass
class Broker:
    plain_port: int
    tls_port: int
    ca_file: Path
    log: Path
    process: subprocess.Popen[bytes]


def _test_config(workdir: Path, plain_port: int, tls_port: int, cert: Path, key: Path, passwd: Path,
                 acl: Path) -> str:
    """telecare.conf with the machine-specific lines rewritten; everything else as shipped."""
    out = []
    listeners = 0
    for words in directives(CONF.read_text()):
        key_word = words[0]
        if key_word == "listener":
            # First listener: the TLS one for hubs (8883). Second: the gateway's loopback one (1883).
            listeners += 1
            out.append(f"listener {tls_port if words[1] == '8883' else plain_port} {HOST}")
        elif key_word == "certfile":
            out.append(f"certfile {cert}")
        elif key_word == "keyfile":
            out.append(f"keyfile {key}")
        elif key_word in ("cafile", "capath"):
            continue
        elif key_word == "password_file":
            out.append(f"password_file {passwd}")
        elif key_word == "acl_file":
            out.append(f"acl_file {acl}")
        elif key_word == "persistence_location":
            out.append(f"persistence_location {workdir}/")
        elif key_word in ("log_dest", "user"):
            continue
        else:
            out.append(" ".join(words))
    assert listeners == 2, "expected the TLS listener for hubs and the loopback listener for the gateway"
    out.append(f"user {pwd.getpwuid(os.getuid()).pw_name}")  # as root, do not drop to the mosquitto user
    out.append(f"log_dest file {workdir / 'mosquitto.log'}")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with shipped_broker(tmp_path_factory.mktemp("mosquitto-conf")) as running:
        yield running


@contextlib.contextmanager
def shipped_broker(workdir: Path) -> Iterator[Broker]:
    """Mosquitto on the shipped configuration in ``workdir``; tests/test_mosquitto_hostile.py starts its own."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"],
                   check=True, capture_output=True)
    passwd = workdir / "telecare.passwd"
    for i, (user, password) in enumerate(USERS.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(passwd), user, password], check=True,
                       capture_output=True)
    acl = workdir / "telecare.acl"
    shutil.copyfile(ACL, acl)
    plain_port, tls_port = free_port(), free_port()
    while tls_port == plain_port:
        tls_port = free_port()
    config = workdir / "telecare.conf"
    config.write_text(_test_config(workdir, plain_port, tls_port, cert, key, passwd, acl))
    log = workdir / "mosquitto.log"
    with open(workdir / "mosquitto.out", "wb") as out:
        process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=workdir)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output = (workdir / "mosquitto.out").read_text(errors="replace")
                logs = log.read_text(errors="replace") if log.exists() else ""
                pytest.fail(f"mosquitto refused the configuration (exit {process.returncode}):\n{output}\n"
                            f"{logs}\n--- config\n{config.read_text()}")
            try:
                with socket.create_connection((HOST, plain_port), timeout=0.2), \
                        socket.create_connection((HOST, tls_port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mosquitto did not open its ports within 10 s")
                time.sleep(0.05)
        yield Broker(plain_port, tls_port, cert, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Mqtt:
    """A paho-mqtt 2.x client (callback API 2, MQTT 5) with received messages in a queue."""

    def __init__(self, broker: Broker, user: str | None, *, client_id: str | None = None, tls: bool = False,
                 clean_start: bool = True, session_expiry_s: int = 0, password: str | None = None) -> None:
        self.messages: queue.Queue[MQTTMessage] = queue.Queue()
        self.connack: Any = None
        self.pubacks: dict[int, Any] = {}
        self.disconnects: queue.Queue[Any] = queue.Queue()  # reason codes, one per lost connection
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._acked = threading.Condition()
        client_id = client_id or f"test-{user}-{time.time_ns()}"
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password if password is not None else USERS[user])
        if tls:
            self.client.tls_set(ca_certs=str(broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda _c, _u, _flags, reason, _props: self.disconnects.put(reason)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        self.client.connect(HOST, broker.tls_port if tls else broker.plain_port, keepalive=30,
                            clean_start=clean_start, properties=props)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), "no CONNACK"

    def _on_connect(self, _c: Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connack = reason
        self._connected.set()

    def _on_publish(self, _c: Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        with self._acked:
            self.pubacks[mid] = reason
            self._acked.notify_all()

    @property
    def refused(self) -> bool:
        return bool(self.connack.is_failure)

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(TIMEOUT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> Any:
        """Publish and wait until the broker has it; the PUBACK reason code for QoS 1."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(TIMEOUT)
        if qos == 0:
            return None
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self.pubacks, TIMEOUT), "no PUBACK"
            return self.pubacks[info.mid]

    def receive(self, timeout: float = TIMEOUT) -> MQTTMessage:
        return self.messages.get(timeout=timeout)

    def received_until(self, sentinel: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including the message whose payload is ``sentinel``."""
        got = []
        while True:
            msg = self.receive()
            got.append((msg.topic, msg.payload))
            if msg.payload == sentinel:
                return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator[Any]:
    with mqtt_clients(broker) as make:
        yield make


@contextlib.contextmanager
def mqtt_clients(broker: Broker) -> Iterator[Any]:
    """A factory of connected clients (same arguments as ``Mqtt`` after the broker), all closed at the end."""
    made: list[Mqtt] = []

    def make(user: str | None, **kw: Any) -> Mqtt:
        client = Mqtt(broker, user, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --- the file itself ----------------------------------------------------------------------------------------

def test_config_has_the_production_settings() -> None:
    conf = {words[0]: words[1:] for words in directives(CONF.read_text()) if words[0] != "listener"}
    listeners = [words[1:] for words in directives(CONF.read_text()) if words[0] == "listener"]
    assert conf["allow_anonymous"] == ["false"]
    assert conf["per_listener_settings"] == ["false"]
    assert "password_file" in conf and "acl_file" in conf
    assert conf["persistence"] == ["true"] and int(conf["autosave_interval"][0]) <= 300
    assert "persistent_client_expiration" in conf
    # Raised above Mosquitto's defaults (20 in flight, 1000 queued), 0 meaning "no maximum".
    inflight, queued = int(conf["max_inflight_messages"][0]), int(conf["max_queued_messages"][0])
    assert inflight == 0 or inflight > 20
    assert queued == 0 or queued > 1000
    assert conf["upgrade_outgoing_qos"] == ["true"]
    assert ["8883"] in listeners and ["1883", "127.0.0.1"] in listeners
    assert "certfile" in conf and "keyfile" in conf


def test_acl_file_rules() -> None:
    rules = directives(ACL.read_text())
    assert ["pattern", "readwrite", "telecare/%u/#"] in rules
    gateway = rules[rules.index(["user", "_gateway"]) + 1:rules.index(["user", "_simulator"])]
    assert gateway == [["topic", "read", "telecare/#"], ["topic", "read", "telecare-sim/clock"]]
    writers_of_clock = [r for r in rules if r[-1] == "telecare-sim/clock" and r[-2] in ("write", "readwrite")]
    assert writers_of_clock == [["topic", "write", "telecare-sim/clock"]]
    assert rules.index(["user", "_simulator"]) < rules.index(writers_of_clock[0])


# --- the running broker -------------------------------------------------------------------------------------

def test_hub_publishes_to_its_own_home_only(clients: Any) -> None:
    gateway = clients("_gateway")
    gateway.subscribe("telecare/#")
    hub = clients("home-a")
    assert hub.publish("telecare/home-a/x", b"mine").is_failure is False
    assert gateway.receive().payload == b"mine"
    denied = hub.publish("telecare/home-b/x", b"not mine")
    assert denied.is_failure and denied.getName() == "Not authorized"
    hub.publish("telecare/home-a/x", b"sentinel")
    # Same publisher, same connection: had the forged message been delivered, it would come before this one.
    assert gateway.received_until(b"sentinel") == [("telecare/home-a/x", b"sentinel")]


def test_hub_last_will_and_bridge_topics_are_allowed(clients: Any) -> None:
    gateway = clients("_gateway")
    gateway.subscribe("telecare/#")
    hub = clients("home-a")
    hub.publish("telecare/home-a/bridge/state", b'{"state":"online"}')
    hub.publish("telecare/home-a/kitchen/fridge_door/availability", b'{"state":"online"}')
    assert gateway.received_until(b'{"state":"online"}') == [("telecare/home-a/bridge/state",
                                                              b'{"state":"online"}')]
    assert gateway.receive().topic == "telecare/home-a/kitchen/fridge_door/availability"


def test_hub_cannot_read_another_home(clients: Any) -> None:
    gateway = clients("_gateway")
    gateway.subscribe("telecare/#")
    nosy = clients("home-b")
    nosy.subscribe("telecare/#")
    clients("home-a").publish("telecare/home-a/front_door", b"private")
    assert gateway.receive().payload == b"private"  # routed by the broker before the sentinel is sent
    nosy.publish("telecare/home-b/pir", b"sentinel-b")
    assert nosy.received_until(b"sentinel-b") == [("telecare/home-b/pir", b"sentinel-b")]


def test_only_the_simulator_writes_the_clock(clients: Any) -> None:
    gateway = clients("_gateway")
    gateway.subscribe("telecare-sim/clock")
    assert clients("home-a").publish("telecare-sim/clock", b"forged").is_failure
    # The same gateway connection: a second one with the same user would take it over (one client id per user).
    assert gateway.publish("telecare-sim/clock", b"forged too").is_failure
    assert clients("_simulator").publish("telecare-sim/clock", b"tick").is_failure is False
    assert gateway.received_until(b"tick") == [("telecare-sim/clock", b"tick")]


def test_gateway_cannot_publish_into_a_home(clients: Any) -> None:
    assert clients("_gateway").publish("telecare/home-a/kettle_plug/set", b'{"state":"OFF"}').is_failure


def test_anonymous_and_wrong_passwords_are_refused(clients: Any) -> None:
    assert clients(None).refused
    assert clients("home-a", password="wrong").refused
    assert not clients("home-a").refused


def test_hub_over_tls(clients: Any) -> None:
    gateway = clients("_gateway")
    gateway.subscribe("telecare/#")
    hub = clients("home-a", tls=True)
    assert not hub.refused
    hub.publish("telecare/home-a/hallway_pir", b'{"occupancy":true}')
    assert gateway.receive().payload == b'{"occupancy":true}'


def test_qos0_reading_waits_in_the_broker_for_the_gateway(clients: Any) -> None:
    """zigbee2mqtt publishes at QoS 0 by default; with upgrade_outgoing_qos the broker still queues the
    message for the gateway's persistent session (subscribed at QoS 1) while the gateway is away."""
    client_id = f"telecare-gateway-{time.time_ns()}"
    # The broker names the session "_gateway" (use_username_as_clientid): start it afresh, then resume it.
    gateway = clients("_gateway", client_id=client_id, clean_start=True, session_expiry_s=3600)
    gateway.subscribe("telecare/#")
    gateway.close()
    hub = clients("home-a")
    hub.publish("telecare/home-a/hallway_pir", b'{"occupancy":true,"seq":1}', qos=0)
    hub.publish("telecare/home-a/hallway_pir", b'{"occupancy":false,"seq":2}', qos=0)
    back = clients("_gateway", client_id=client_id, clean_start=False, session_expiry_s=0)
    first, second = back.receive(), back.receive()
    assert (first.payload, second.payload) == (b'{"occupancy":true,"seq":1}', b'{"occupancy":false,"seq":2}')
    assert first.qos == 1


def test_the_gateway_input_connects_over_tls_with_its_own_ca_file(broker: Broker, clients: Any) -> None:
    clients("_gateway", clean_start=True).close()  # no session left by another test: it would be resumed
    received: list[tuple[str, bytes]] = []
    metrics = IngestMetrics()
    options = MqttOptions(url=f"mqtts://_gateway:{USERS['_gateway']}@{HOST}:{broker.tls_port}",
                          client_id=f"gw-tls-{time.time_ns()}", topics=("telecare/#",), ca_file=str(broker.ca_file))
    gateway = MqttInput(options, lambda _mid, _qos, topic, payload: received.append((topic, payload)), metrics)
    gateway.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while metrics.sample("telecare_mqtt_connected") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metrics.sample("telecare_mqtt_connected") == 1, "the gateway did not connect over TLS"
        clients("home-a", tls=True).publish("telecare/home-a/hallway_pir", b'{"occupancy":true}')
        while not received and time.monotonic() < deadline + TIMEOUT:
            time.sleep(0.05)
        assert received == [("telecare/home-a/hallway_pir", b'{"occupancy":true}')]
    finally:
        gateway.stop()
