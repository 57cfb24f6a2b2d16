"""Console noise (issue 14): each carer message from the log notifier appears once on the console, whatever the
log level and format, and a requested stop of the MQTT input is logged at INFO, never as broker trouble."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import orjson
import pytest

from bench.services import Mosquitto, free_port
from gateway import logs
from gateway.alerting.notifiers import LogNotifier, Outgoing
from gateway.metrics import IngestMetrics
from gateway.mqtt_input import MqttInput, MqttOptions

MESSAGE = Outgoing(recipient="Anne", user_key="u" * 30, device=None, title="URGENT: inactivity",
                   message="Mrs Jones (h1): no activity since 14:02\nplease call", priority=2)
LINE = "[telecare alert p+2] to Anne: URGENT: inactivity — Mrs Jones (h1): no activity since 14:02 | please call"
FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.1}


@pytest.fixture
def configured() -> Iterator[None]:
    yield
    logs.unconfigure()


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR"])
def test_a_carer_message_is_on_the_console_once_at_any_log_level(level: str, configured: None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(level, json=False)  # the gateway's console: stderr
    LogNotifier().send(MESSAGE)
    err = capsys.readouterr().err
    assert err.count(LINE) == 1, err
    logged = logging.getLevelName(level) <= logging.INFO
    assert ("INFO gateway.alerting.notifiers:" in err) is logged, "the log line is the console line when shown"


def test_in_json_logs_the_message_is_one_json_line(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", json=True)
    LogNotifier().send(MESSAGE)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and orjson.loads(lines[0])["event"] == LINE, lines


def test_without_any_logging_set_up_the_message_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    LogNotifier().send(MESSAGE)  # the root logger at WARNING, no handler: only the last resort
    assert capsys.readouterr().err.count(LINE) == 1


def test_a_stream_given_gets_the_line_as_well_as_the_log(caplog: pytest.LogCaptureFixture) -> None:
    import io

    console = io.StringIO()
    with caplog.at_level(logging.INFO, logger="gateway.alerting.notifiers"):
        LogNotifier(console).send(MESSAGE)
    assert console.getvalue() == LINE + "\n"
    assert [r.getMessage() for r in caplog.records] == [LINE]


def _input(url: str) -> MqttInput:
    # Every failed attempt logged (no once-a-minute throttle): an attempt failing after stop() would show.
    return MqttInput(MqttOptions(url=url, client_id=f"noise-{time.monotonic_ns()}", topics=("telecare/#",),
                                 trouble_log_interval_s=0, **FAST), lambda *_: None, IngestMetrics())


def _wait(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_clean_stop_is_info_not_a_warning(mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    mqtt = _input(mosquitto.url)
    with caplog.at_level(logging.DEBUG, logger="gateway.mqtt_input"):
        mqtt.start()
        _wait(lambda: mqtt.metrics.sample("telecare_mqtt_connected") == 1)
        mqtt.stop()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "gateway.mqtt_input"]
    assert (logging.INFO, f"disconnected from the broker at 127.0.0.1:{mosquitto.port}") in lines, lines
    assert all(level < logging.WARNING for level, _ in lines), lines


def test_stopping_while_the_broker_is_away_says_nothing_alarming(caplog: pytest.LogCaptureFixture) -> None:
    mqtt = _input(f"mqtt://127.0.0.1:{free_port()}")  # nothing listens: paho keeps trying
    with caplog.at_level(logging.DEBUG, logger="gateway.mqtt_input"):
        mqtt.start()
        _wait(lambda: any(r.levelno == logging.ERROR for r in caplog.records))  # the outage, said once
        stop_at = len(caplog.records)
        mqtt.stop()
        time.sleep(0.3)  # paho's back-off is 0.1 s here: an attempt would have failed by now
    after = [r for r in caplog.records[stop_at:] if r.name == "gateway.mqtt_input"]
    assert all(r.levelno < logging.WARNING for r in after), [r.getMessage() for r in after]


def test_a_broker_stopped_by_the_same_ctrl_c_is_not_trouble(tmp_path: object, caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    """Ctrl-C in a terminal that also runs the broker stops both; the broker often goes first. Reproduced with
    `mosquitto & telecare gateway` and SIGINT to the process group: "lost the connection ... reconnecting"."""
    import threading
    from pathlib import Path

    stop = threading.Event()
    with Mosquitto(Path(str(tmp_path)) / "mosquitto") as broker:
        mqtt = MqttInput(MqttOptions(url=broker.url, client_id="noise-ctrl-c", topics=("telecare/#",),
                                     trouble_log_interval_s=0, **FAST), lambda *_: None, IngestMetrics(),
                         stopping=stop)
        with caplog.at_level(logging.DEBUG, logger="gateway.mqtt_input"):
            mqtt.start()
            _wait(lambda: mqtt.metrics.sample("telecare_mqtt_connected") == 1)
            stop.set()  # the signal handler sets the gateway's stop event ...
            broker.stop()  # ... as the broker quits on the same signal
            _wait(lambda: mqtt.metrics.sample("telecare_mqtt_connected") == 0)
            time.sleep(0.3)  # reconnection attempts fail meanwhile (0.1 s back-off)
            mqtt.stop()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "gateway.mqtt_input"]
    assert all(level < logging.WARNING for level, _ in lines), lines
    assert any("closed the connection as the gateway was stopping" in m for _, m in lines), lines
