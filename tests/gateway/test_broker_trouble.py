"""Broker trouble is loud (issue 11, finding 6): logged at once with its reason, then once an interval while it
lasts, once when it is over; ``telecare_mqtt_connected``, the failure counter and /healthz say the same.

Against real Mosquitto: a port where nothing listens (then a broker starts there), a broker that wants a
password, a broker that stops and starts again. Intervals and back-off are shortened so the tests take seconds.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.services import Mosquitto, free_port
from gateway.config import Settings
from gateway.metrics import IngestMetrics
from gateway.mqtt_input import BrokerTrouble, MqttInput, MqttOptions, for_how_long
from telecare.processes import Gateway

LOGGER = "gateway.mqtt_input"
FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.1}  # paho's back-off, shortened


class PasswordMosquitto(Mosquitto):
    """The test broker with anonymous access off and one user, ``gateway`` / ``right``."""

    @property
    def password_path(self) -> Path:
        return self.workdir / "passwd"

    def _config(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(self.password_path), "gateway", "right"], check=True,
                       capture_output=True)
        return super()._config().replace(
            "allow_anonymous true", f"allow_anonymous false\npassword_file {self.password_path}")

    def _ready(self) -> bool:
        # The base class wants CONNACK "accepted" to an anonymous CONNECT; here any CONNACK means serving.
        connect = bytes([0x10, 12, 0, 4, *b"MQTT", 4, 0x02, 0, 60, 0, 0])
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(connect)
                return sock.recv(4)[:2] == bytes([0x20, 2])
        except OSError:
            return False


class TlsMosquitto(Mosquitto):
    """The test broker behind TLS with a self-signed certificate, which the gateway has no reason to trust."""

    def _config(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        listener = f"listener {self.port} {self.host}"
        return super()._config().replace(listener, f"{listener}\ncertfile {cert}\nkeyfile {key}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False


@pytest.fixture
def metrics() -> IngestMetrics:
    return IngestMetrics()


@pytest.fixture
def make_input(metrics: IngestMetrics) -> Iterator[Callable[..., MqttInput]]:
    started: list[MqttInput] = []

    def make(url: str, **options: object) -> MqttInput:
        mqtt_input = MqttInput(MqttOptions(url=url, client_id="telecare-gateway", topics=("telecare/#",),
                                           **{**FAST, **options}),  # type: ignore[arg-type]
                               lambda *_: None, metrics)
        mqtt_input.start()
        started.append(mqtt_input)
        return mqtt_input

    yield make
    for mqtt_input in started:
        mqtt_input.stop()


def trouble_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


def healthz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def failures(metrics: IngestMetrics, reason: str) -> float:
    return metrics.sample("telecare_mqtt_connection_failures_total", {"reason": reason}) or 0.0


def test_nobody_listening_is_logged_at_once_then_once_an_interval_and_the_return_once(
        tmp_path: Path, metrics: IngestMetrics, make_input: Callable[..., MqttInput],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    http_port = metrics.serve(0, "127.0.0.1")
    port = free_port()
    started = time.monotonic()
    make_input(f"mqtt://127.0.0.1:{port}", trouble_log_interval_s=1.0)

    wait_for(lambda: trouble_lines(caplog), timeout=3)
    assert time.monotonic() - started < 2, "the first failure is logged at once"
    first = trouble_lines(caplog)[0]
    assert f"cannot connect to the broker at 127.0.0.1:{port}" in first and "connection refused" in first
    assert metrics.sample("telecare_mqtt_connected") == 0
    status, body = healthz(http_port)
    assert status == 503 and body["status"] == "unhealthy"
    assert "connection refused" in body["problems"]["broker"]  # type: ignore[index]

    time.sleep(3.2)  # paho tries every 0.1 s: ~30 attempts, 3 or 4 more lines
    lines = trouble_lines(caplog)
    attempts = failures(metrics, "connection_refused")
    assert attempts >= 15
    assert 3 <= len(lines) <= 5, lines
    assert all("still cannot connect" in line and "failed attempts" in line for line in lines[1:])

    with Mosquitto(tmp_path / "mosquitto", port=port):
        wait_for(lambda: metrics.sample("telecare_mqtt_connected") == 1)
        back = trouble_lines(caplog)[-1]
        assert back.startswith(f"connected again to the broker at 127.0.0.1:{port} after ")
        assert "failed attempts" in back
        assert healthz(http_port) == (200, {"status": "ok", "problems": {}})
        time.sleep(0.5)
        assert len([line for line in trouble_lines(caplog) if line.startswith("connected again")]) == 1


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("credentials", ["gateway:wrong@", "nobody:right@", ""],
                         ids=["wrong password", "unknown user", "no user name"])
def test_a_refused_login_is_logged_with_the_brokers_reason(
        tmp_path: Path, metrics: IngestMetrics, make_input: Callable[..., MqttInput],
        caplog: pytest.LogCaptureFixture, protocol: str, credentials: str) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with PasswordMosquitto(tmp_path / "mosquitto") as broker:
        make_input(f"mqtt://{credentials}127.0.0.1:{broker.port}", protocol=protocol, trouble_log_interval_s=60)
        wait_for(lambda: trouble_lines(caplog), timeout=3)
        time.sleep(0.5)  # more attempts, inside the interval
        attempts = failures(metrics, "not_authorised")  # Mosquitto 2.0's answer to both, in MQTT 5 and 3.1.1
        assert attempts >= 3
        [line] = trouble_lines(caplog)
        assert line.startswith(f"cannot connect to the broker at 127.0.0.1:{broker.port}: refused by the broker: "
                               "Not authorized (check the user name and password in TELECARE_MQTT_URL"), line


def test_an_untrusted_certificate_is_logged_as_tls(
        tmp_path: Path, metrics: IngestMetrics, make_input: Callable[..., MqttInput],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with TlsMosquitto(tmp_path / "mosquitto") as broker:
        make_input(f"mqtts://127.0.0.1:{broker.port}", trouble_log_interval_s=60)
        wait_for(lambda: trouble_lines(caplog))
        assert "TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED]" in trouble_lines(caplog)[0]
        assert failures(metrics, "tls") >= 1


def test_plain_mqtt_to_a_tls_port_is_logged_as_closed_by_the_broker(
        tmp_path: Path, metrics: IngestMetrics, make_input: Callable[..., MqttInput],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with TlsMosquitto(tmp_path / "mosquitto") as broker:
        make_input(f"mqtt://127.0.0.1:{broker.port}", trouble_log_interval_s=60)
        wait_for(lambda: trouble_lines(caplog))
        assert "the broker closed the connection before answering (mqtt:// to a TLS port?" in trouble_lines(caplog)[0]
        assert failures(metrics, "closed_by_broker") >= 1


def test_an_unknown_host_name_is_logged_as_dns(
        metrics: IngestMetrics, make_input: Callable[..., MqttInput], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    make_input("mqtt://broker.invalid:1883", trouble_log_interval_s=60)  # .invalid never resolves (RFC 2606)
    wait_for(lambda: trouble_lines(caplog))
    assert "cannot resolve the host name" in trouble_lines(caplog)[0]
    assert failures(metrics, "dns") >= 1


def test_a_lost_connection_is_logged_once_and_its_return_once(
        tmp_path: Path, metrics: IngestMetrics, mosquitto: Mosquitto, make_input: Callable[..., MqttInput],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    make_input(mosquitto.url, trouble_log_interval_s=60)
    wait_for(lambda: metrics.sample("telecare_mqtt_connected") == 1)
    assert trouble_lines(caplog) == []

    mosquitto.stop()
    wait_for(lambda: trouble_lines(caplog))
    time.sleep(1.0)  # ~10 failed attempts, within the interval: no more lines
    lines = trouble_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("lost the connection to the broker"), lines
    assert failures(metrics, "connection_lost") == 1 and failures(metrics, "connection_refused") >= 5
    assert metrics.sample("telecare_mqtt_connected") == 0

    mosquitto.start()
    wait_for(lambda: metrics.sample("telecare_mqtt_connected") == 1)
    lines = trouble_lines(caplog)
    assert len(lines) == 2 and lines[1].startswith("connected again to the broker"), lines


@pytest.mark.slow
def test_the_gateway_serves_healthz_beside_metrics_and_it_follows_the_broker(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The whole gateway (ingest and worker process): the broker and journal checks are wired in."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    port = free_port()
    gateway = Gateway(Settings(mqtt_url=f"mqtt://127.0.0.1:{port}", data_dir=tmp_path / "gw",  # type: ignore[call-arg]
                               metrics_port=0))
    gateway.start()
    try:
        assert gateway.metrics_port is not None
        wait_for(lambda: trouble_lines(caplog))
        assert "connection refused" in trouble_lines(caplog)[0]
        status, body = healthz(gateway.metrics_port)
        assert status == 503 and list(body["problems"]) == ["broker"], body  # type: ignore[call-overload]
        with Mosquitto(tmp_path / "mosquitto", port=port):
            wait_for(lambda: gateway.sample("telecare_mqtt_connected") == 1, timeout=20)
            assert healthz(gateway.metrics_port) == (200, {"status": "ok", "problems": {}})
    finally:
        gateway.stop()


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_connection_that_keeps_dropping_writes_a_bounded_number_of_lines(
        metrics: IngestMetrics, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeMonotonic()
    trouble = BrokerTrouble("broker:1883", metrics, interval_s=60, now=clock)
    trouble.connected()
    for _ in range(100):  # a client-id tug of war: dropped and back every half second for 50 s
        clock.t += 0.25
        trouble.lost("session_taken_over", "Session taken over")
        clock.t += 0.25
        trouble.connected()
    lines = trouble_lines(caplog)
    assert len(lines) == 2, lines  # the first drop and its return
    clock.t += 60
    trouble.lost("session_taken_over", "Session taken over")
    assert "dropped 99 more times" in trouble_lines(caplog)[-1]
    assert failures(metrics, "session_taken_over") == 101


def test_health_names_a_full_or_unwritable_journal(tmp_path: Path, metrics: IngestMetrics) -> None:
    port = metrics.serve(0, "127.0.0.1")
    metrics.mqtt_connected.set(1)
    assert healthz(port) == (200, {"status": "ok", "problems": {}})
    metrics.journal_full.set(1)
    status, body = healthz(port)
    assert status == 503 and "journal full" in body["problems"]["journal"]  # type: ignore[index]
    metrics.journal_full.set(0)
    metrics.include(tmp_path / "gone" / "worker.prom")  # the journal's directory, which does not exist
    status, body = healthz(port)
    assert status == 503 and "cannot write" in body["problems"]["journal"]  # type: ignore[index]
    assert "broker" not in body["problems"]  # type: ignore[operator]
    # /metrics is still served beside it
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert b"telecare_mqtt_connected 1.0" in response.read()


def test_durations_read_as_people_say_them() -> None:
    assert [for_how_long(s) for s in (4, 59, 180, 3 * 3600 + 300)] == ["4 s", "59 s", "3 min", "3 h 5 min"]
