"""``telecare sim`` from the command line (issue 14): every bad option is one sentence and exit code 2, a broker
that is down is one sentence naming it and exit code 1, never a traceback; ``sim run`` says what it is doing at
once and ends with its summary, Ctrl-C included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.services import Mosquitto, free_port
from sensors_sim.events import Observation
from sensors_sim.recordings import read_csv, write_csv
from telecare.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
T = 1_767_571_200_000


def _refused(args: list[str], *words: str, code: int = 2) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    said = result.stderr.strip()
    assert said.count("\n") == 0, f"one sentence, not {said!r}"
    for word in words:
        assert word in said, (word, said)
    return said


@pytest.fixture
def down() -> str:
    return f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--speed", "-5", ("--speed -5", "0 means as fast as possible")),
    ("--speed", "nan", ("--speed nan",)),
    ("--speed", "inf", ("--speed inf",)),
    ("--homes", "0", ("--homes 0", "1 or more homes")),
    ("--homes", "-3", ("--homes -3",)),
    ("--days", "0", ("--days 0", "1 or more simulated days")),
    ("--seed", "-1", ("--seed -1", "0 or more")),
    ("--start", "2026-13-01", ("--start 2026-13-01", "month must be in 1..12", "YYYY-MM-DD")),
    ("--start", "next week", ("--start next week", "not a date", "YYYY-MM-DD")),
])
def test_sim_run_refuses_bad_options_with_a_sentence(option: str, value: str, words: tuple[str, ...],
                                                     down: str) -> None:
    # Checked before the broker is tried: the broker being down is not what the person needs to hear.
    _refused(["sim", "run", option, value, "--mqtt-url", down], *words)


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--homes", "0", ("--homes 0",)), ("--days", "0", ("--days 0",)), ("--days", "-1", ("--days -1",)),
    ("--seed", "-2", ("--seed -2",)), ("--start", "2026-02-30", ("--start 2026-02-30", "YYYY-MM-DD")),
])
def test_sim_export_refuses_bad_options(option: str, value: str, words: tuple[str, ...], tmp_path: Path) -> None:
    _refused(["sim", "export", "--out", str(tmp_path / "x.csv"), option, value], *words)
    assert not (tmp_path / "x.csv").exists()


def test_sim_export_to_a_directory_that_does_not_exist_is_a_sentence(tmp_path: Path) -> None:
    _refused(["sim", "export", "--out", str(tmp_path / "nowhere" / "x.csv"), "--days", "1"], "cannot write",
             "No such file or directory")


@pytest.mark.parametrize(("option", "value"), [("--speed", "-1"), ("--seed", "-1")])
def test_sim_replay_refuses_bad_options(option: str, value: str, tmp_path: Path, down: str) -> None:
    write_csv([Observation(T, "h", "hall_pir", "motion", True, "hall", "room")], tmp_path / "r.csv")
    _refused(["sim", "replay", "--format", "csv", str(tmp_path / "r.csv"), option, value, "--mqtt-url", down],
             f"{option} {value}")


def test_sim_replay_of_an_empty_recording_says_so(tmp_path: Path, down: str) -> None:
    (tmp_path / "empty.csv").write_text("time,home,device,kind,value\n")
    _refused(["sim", "replay", "--format", "csv", str(tmp_path / "empty.csv"), "--mqtt-url", down],
             "no observations to replay")


@pytest.mark.parametrize("command", ["run", "replay"])
def test_a_broker_that_is_down_is_named_with_what_to_check(command: str, down: str, tmp_path: Path) -> None:
    write_csv([Observation(T, "h", "hall_pir", "motion", True, "hall", "room")], tmp_path / "r.csv")
    args = (["sim", "run", "--days", "1", "--homes-out", str(tmp_path / "homes.yaml")] if command == "run"
            else ["sim", "replay", "--format", "csv", str(tmp_path / "r.csv")])
    said = _refused([*args, "--mqtt-url", down], f"cannot reach the MQTT broker at {down}", "connection refused",
                    "Is the broker running", "TELECARE_MQTT_URL", code=1)
    assert said.endswith("?")
    assert not (tmp_path / "homes.yaml").exists(), "nothing written before the broker was reached"


def test_the_broker_from_the_environment_is_named_too(down: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELECARE_MQTT_URL", down)
    _refused(["sim", "run", "--days", "1"], down, code=1)


def test_a_host_that_does_not_resolve_is_said_as_such() -> None:
    _refused(["sim", "run", "--days", "1", "--mqtt-url", "mqtt://no-such-broker.invalid:1883"],
             "no-such-broker.invalid", "cannot resolve the host name", code=1)


def test_sim_run_publishes_and_sums_up(mosquitto: Mosquitto, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", "run", "--homes", "2", "--days", "1", "--start", "2026-01-05", "--speed", "0",
                                 "--mqtt-url", mosquitto.url, "--homes-out", str(tmp_path / "homes.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"publishing 2 homes over 1 simulated day from Mon 05 Jan 00:00 as fast as "
                                    f"possible to {mosquitto.url}"), result.stderr
    assert "published " in result.stdout and " messages from 2 homes" in result.stdout
    assert "\x1b[" not in result.stderr and "━" not in result.stderr, "no bar without a terminal"


def test_sim_run_speaks_at_once_and_sums_up_on_ctrl_c(mosquitto: Mosquitto) -> None:
    """Not silent for its first minute: the first line comes before the first day of the homes is made, and
    Ctrl-C ends with the summary of what was sent (exit code 0)."""
    env = {**os.environ, "TELECARE_MQTT_URL": mosquitto.url}
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "telecare", "sim", "run", "--homes", "3", "--days", "30",
                             "--start", "2026-01-05", "--speed", "3600"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("publishing 3 homes over 30 simulated days from Mon 05 Jan 00:00 at 3600x"), first
        assert time.monotonic() - began < 30, "the first line comes within seconds (the interpreter's start)"
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "published " in out and "Traceback" not in err


def test_sim_export_sums_up_with_its_time(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", "export", "--out", str(tmp_path / "x.csv"), "--days", "1", "--homes", "1"])
    assert result.exit_code == 0, result.output
    rows = len(list(read_csv(tmp_path / "x.csv")))
    assert f"{rows:,} observations of 1 home over 1 day written to {tmp_path / 'x.csv'} in " in result.stdout
    assert result.stderr == "", "no bar, nothing else, without a terminal"


def test_a_broker_that_will_not_accept_us_is_said_in_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from tests.gateway.test_broker_trouble import PasswordMosquitto

    monkeypatch.setattr("telecare.cli_sim.CONNECT_WAIT_S", 1.0)
    with PasswordMosquitto(tmp_path / "mosquitto") as broker:
        _refused(["sim", "run", "--days", "1", "--mqtt-url", broker.url], "did not accept the connection within 1 s",
                 "user name and password", code=1)


def test_a_broker_that_goes_away_during_a_run_is_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from sensors_sim.publish import MqttPublisher

    flush = MqttPublisher.flush
    monkeypatch.setattr(MqttPublisher, "flush", lambda self, timeout_s=2.0: flush(self, timeout_s))
    with Mosquitto(tmp_path / "mosquitto") as broker:
        threading.Timer(3.0, broker.kill).start()  # once publishing has begun (the interpreter is warm here)
        result = runner.invoke(app, ["sim", "run", "--homes", "20", "--days", "30", "--speed", "0", "--mqtt-url",
                                     broker.url])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    started, said = result.stderr.strip().splitlines()
    assert started.startswith("publishing 20 homes")
    assert said == (f"the MQTT broker at {broker.url} stopped acknowledging messages: the last ones sent may not "
                    "have arrived (is it still running?)")
