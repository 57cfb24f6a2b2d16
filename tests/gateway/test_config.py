from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.mqtt_url == "mqtt://127.0.0.1:1883" and s.influx_url is None
    assert s.database_url == "sqlite:///var/telecare.db" and s.journal_path == Path("var/journal.sqlite3")


def test_environment_variables_with_the_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELECARE_MQTT_URL", "mqtts://hub:secret@broker.example:8883")
    monkeypatch.setenv("TELECARE_SPOOL_DIR", "/srv/spool")
    s = load_settings()
    assert s.mqtt_url.startswith("mqtts://") and s.journal_path == Path("/srv/spool/journal.sqlite3")


@pytest.mark.parametrize(("env", "message"), [
    ({"TELECARE_MQTT_URL": "http://broker"}, "TELECARE_MQTT_URL: must look like mqtt://"),
    ({"TELECARE_MQTT_URL": "mqtt://broker:99999"}, "TELECARE_MQTT_URL: bad port"),
    ({"TELECARE_INFLUX_URL": "influx.example:8086"}, "TELECARE_INFLUX_URL: must be an http://"),
    ({"TELECARE_INFLUX_URL": "http://influx:8086", "TELECARE_INFLUX_ORG": "council"},
     "TELECARE_INFLUX_TOKEN, TELECARE_INFLUX_BUCKET must be set too"),
    ({"TELECARE_METRICS_PORT": "nine"}, "TELECARE_METRICS_PORT:"),
    ({"TELECARE_MQTT_PROTOCOL": "4"}, "TELECARE_MQTT_PROTOCOL:"),
    ({"TELECARE_PUSHOVER_URL": "api.pushover.net"}, "TELECARE_PUSHOVER_URL: must be an http(s):// URL"),
])
def test_a_wrong_value_is_named_with_its_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                  message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert message in str(e.value)


def test_metrics_listen_on_loopback_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from gateway.metrics import IngestMetrics

    assert load_settings().metrics_host == "127.0.0.1", "metrics name homes: not on every interface by default"
    monkeypatch.setenv("TELECARE_METRICS_HOST", "0.0.0.0")
    assert load_settings().metrics_host == "0.0.0.0"
    port = IngestMetrics().serve(0)  # the default address
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port]
    assert listening == [f"0100007F:{port:04X}"], "bound to 127.0.0.1 only"
