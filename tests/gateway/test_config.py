from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.mqtt_url == "mqtt://127.0.0.1:1883" and s.influx_url is None
    assert s.database_url == "sqlite:///var/telecare.db" and s.journal_path == Path("var/journal.sqlite3")


def test_environment_variables_with_the_prefix_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TELECARE_MQTT_URL", "mqtts://hub:secret@broker.example:8883")
    monkeypatch.setenv("TELECARE_SPOOL_DIR", str(tmp_path / "spool"))
    s = load_settings()
    assert s.mqtt_url.startswith("mqtts://") and s.journal_path == tmp_path / "spool" / "journal.sqlite3"


@pytest.mark.parametrize(("env", "message"), [
    ({"TELECARE_MQTT_URL": "http://broker"}, "TELECARE_MQTT_URL: must look like mqtt://"),
    ({"TELECARE_MQTT_URL": "mqtt://broker:99999"}, "TELECARE_MQTT_URL: bad port"),
    ({"TELECARE_INFLUX_URL": "influx.example:8086"}, "TELECARE_INFLUX_URL: must be an http://"),
    ({"TELECARE_INFLUX_URL": "http://influx:8086", "TELECARE_INFLUX_ORG": "council"},
     "TELECARE_INFLUX_TOKEN, TELECARE_INFLUX_BUCKET must be set too"),
    ({"TELECARE_METRICS_PORT": "nine"}, "TELECARE_METRICS_PORT:"),
    ({"TELECARE_MQTT_PROTOCOL": "4"}, "TELECARE_MQTT_PROTOCOL:"),
    ({"TELECARE_PUSHOVER_URL": "api.pushover.net"}, "TELECARE_PUSHOVER_URL: must be an http(s):// URL"),
    ({"TELECARE_DB_URL": "mysql://u:p@db/telecare"}, "TELECARE_DB_URL: 'mysql' databases are not supported"),
    ({"TELECARE_DB_URL": "telecare.db"}, "TELECARE_DB_URL: this is not a database URL; it should look like"),
    ({"TELECARE_DB_URL": "postgresql+asyncpg://db/t"}, "TELECARE_DB_URL: the driver 'asyncpg' is not supported"),
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


def test_directories_that_cannot_be_written_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Checked when the settings load, so every command says it in one sentence (nothing is created)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TELECARE_DATA_DIR", str(blocker))
    with pytest.raises(ConfigError, match=f"TELECARE_DATA_DIR: {blocker} is not a directory; set it to a directory "
                                          "telecare can write"):
        load_settings()
    monkeypatch.setenv("TELECARE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TELECARE_SPOOL_DIR", str(blocker / "spool"))
    with pytest.raises(ConfigError, match=r"TELECARE_SPOOL_DIR: .* is not a directory, so .* cannot be created"):
        load_settings()
    assert not (tmp_path / "data").exists(), "loading settings creates nothing"


def test_the_data_dir_is_not_checked_when_nothing_lives_there(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for name, value in {"TELECARE_DATA_DIR": str(blocker), "TELECARE_DB_URL": "postgresql://u@db/telecare",
                        "TELECARE_SPOOL_DIR": str(tmp_path / "spool"), "TELECARE_INFLUX_URL": "http://influx:8086",
                        "TELECARE_INFLUX_TOKEN": "t", "TELECARE_INFLUX_ORG": "o",
                        "TELECARE_INFLUX_BUCKET": "b"}.items():
        monkeypatch.setenv(name, value)
    assert load_settings().data_dir == blocker
