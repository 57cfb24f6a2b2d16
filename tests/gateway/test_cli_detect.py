"""``telecare analyse`` and ``telecare baseline warm`` from the command line."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from gateway.db.models import DetectorCheckpoint
from gateway.db.session import make_engine, make_session_factory
from sensors_sim.generate import Simulation, start_of
from sensors_sim.incidents import Fall
from sensors_sim.recordings import write_csv
from sensors_sim.scenario import default_home, to_home_description
from telecare.cli import app
from telecare.gateway_lock import GatewayBusy, GatewayLock, gateway_holder, lock_path

runner = CliRunner()
START = start_of(date(2026, 3, 2))


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Two homes sharing one file; one falls at 10:00 on its 17th day."""
    sim = Simulation([default_home("a"), default_home("b")], START, 17, seed=4,
                     incidents=[Fall(home="a", day=16, at=10 * 60)])
    path = tmp_path_factory.mktemp("rec") / "two.csv"
    write_csv(sim.observations(), path)
    [fall] = [t for t in sim.truth if t.kind == "fall"]
    return path, fall.start_ms


def test_analyse_writes_the_alerts_as_json_lines(recording: tuple[Path, int]) -> None:
    path, fall_ms = recording
    result = runner.invoke(app, ["analyse", str(path), "--tz", "Europe/London", "--learn-days", "14"])
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert alerts and all(set(a) >= {"home", "kind", "raised_at", "cleared_at", "message"} for a in alerts)
    falls = [a for a in alerts if a["home"] == "a" and a["kind"] in ("inactivity", "not_up")
             and a["raised_at"] >= _iso(fall_ms)]
    assert falls, "the fall is alerted"
    assert falls[0]["raised_at"] <= _iso(fall_ms + 3 * 3_600_000) and falls[0]["message"].startswith("No activity")
    assert all(a["raised_at"] >= _iso(START + 14 * 86_400_000) for a in alerts), "nothing while learning"


def test_analyse_says_what_is_wrong_with_its_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,home,device,kind,value\n2024-03-01T07:02:11,h,d,motion,1\n")
    result = runner.invoke(app, ["analyse", str(bad)])
    assert result.exit_code == 2 and "line 2" in result.output and "no 'Z' or UTC offset" in result.output
    result = runner.invoke(app, ["analyse", str(bad), "--tz", "Mars/Olympus"])
    assert result.exit_code == 2 and "unknown time zone" in result.output


def test_baseline_warm_saves_each_homes_learned_state(recording: tuple[Path, int], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = recording
    monkeypatch.setenv("TELECARE_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["baseline", "warm", str(path)])
    assert result.exit_code == 1 and "telecare db upgrade" in result.output
    homes = tmp_path / "homes.yaml"
    homes.write_text(yaml.safe_dump(to_home_description(default_home("a"))))
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["homes", "import", str(homes)]).exit_code == 0
    result = runner.invoke(app, ["baseline", "warm", str(path), "--home", "a"])
    assert result.exit_code == 0, result.output
    assert "a: learned from" in result.output and "b:" not in result.output
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'data' / 'telecare.db'}"))
    with sessions() as s:
        assert s.get(DetectorCheckpoint, "a") is not None and s.get(DetectorCheckpoint, "b") is None
    result = runner.invoke(app, ["baseline", "warm", str(path), "--home", "nowhere"])
    assert result.exit_code == 2 and "no observations" in result.output


def test_analyse_sums_up_on_stderr_and_keeps_stdout_for_the_alerts(recording: tuple[Path, int]) -> None:
    path, _ = recording
    result = runner.invoke(app, ["analyse", str(path), "--learn-days", "14"])
    assert result.exit_code == 0, result.output
    alerts = len(result.stdout.splitlines())
    [summary] = result.stderr.splitlines()
    assert summary.startswith("analysed 2 homes, 17.0 days, ") and " readings in " in summary
    assert summary.endswith(f": {alerts} alert{'' if alerts == 1 else 's'}"), summary


def test_analyse_refuses_a_recording_shorter_than_the_learning_period(tmp_path: Path) -> None:
    """Nothing can be alerted in the learning days: an empty answer and exit code 0 would read as "all was well"."""
    short = tmp_path / "short.csv"
    write_csv(Simulation([default_home("s")], START, 3, seed=1).observations(), short)
    result = runner.invoke(app, ["analyse", str(short)])
    assert result.exit_code == 2 and result.stdout == ""
    said = result.stderr.strip()
    assert "too short to analyse" in said and "s has 3.0 days" in said and "first 14 days" in said, said
    assert "--learn-days" in said and "\n" not in said
    result = runner.invoke(app, ["analyse", str(short), "--learn-days", "1"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("analysed 1 home, 3.0 days, ")


def test_analyse_warns_of_the_homes_too_short_and_analyses_the_others(recording: tuple[Path, int],
                                                                      tmp_path: Path) -> None:
    path, _ = recording
    short = tmp_path / "c.csv"
    write_csv(Simulation([default_home("c")], START, 2, seed=1).observations(), short)
    both = tmp_path / "both.csv"
    both.write_text(path.read_text() + "".join(short.read_text().splitlines(keepends=True)[1:]))
    result = runner.invoke(app, ["analyse", str(both)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == ("home c: 2.0 days of readings, all within the 14-day learning period "
                                             "(--learn-days): no alerts could be raised for it")
    assert "analysed 3 homes, 17.0 days" in result.stderr
    assert result.stdout and not any('"home":"c"' in line for line in result.stdout.splitlines())


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_analyse_refuses_a_learning_period_that_is_not_one(recording: tuple[Path, int], value: str) -> None:
    result = runner.invoke(app, ["analyse", str(recording[0]), "--learn-days", value])
    assert result.exit_code == 2 and result.stderr.strip() == f"--learn-days {value}: give 0 or more days"


def test_analyse_of_a_file_without_rows_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("time,home,device,kind,value\n")
    result = runner.invoke(app, ["analyse", str(empty)])
    assert result.exit_code == 2 and "no readings in the file" in result.stderr


def _warmable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("TELECARE_DATA_DIR", str(data))
    homes = tmp_path / "homes.yaml"
    homes.write_text(yaml.safe_dump(to_home_description(default_home("a"))))
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["homes", "import", str(homes)]).exit_code == 0
    return data / "journal.sqlite3"


def test_baseline_warm_is_refused_while_the_gateway_holds_its_lock(recording: tuple[Path, int], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = recording
    journal = _warmable(tmp_path, monkeypatch)
    with GatewayLock(lock_path(journal)):
        result = runner.invoke(app, ["baseline", "warm", str(path), "--home", "a"])
        assert result.exit_code == 1, result.output
        said = result.stderr.strip()
        assert said.startswith("the gateway is running (pid ") and "stop it first" in said, said
        assert str(lock_path(journal)) in said
        with pytest.raises(GatewayBusy, match="a gateway is already running"):
            GatewayLock(lock_path(journal)).acquire()  # nor a second gateway on the same journal
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'data' / 'telecare.db'}"))
    with sessions() as s:
        assert s.get(DetectorCheckpoint, "a") is None, "nothing was written while refused"
    result = runner.invoke(app, ["baseline", "warm", str(path), "--home", "a"])
    assert result.exit_code == 0, result.output  # stopped: the lock file stays, nobody holds it
    assert "warmed the baselines of 1 home from " in result.stderr


def test_the_lock_of_another_process_is_seen_and_gone_when_it_dies(tmp_path: Path) -> None:
    """flock: held by a process, released by the kernel however it ends, so never stale."""
    journal = tmp_path / "spool" / "journal.sqlite3"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from telecare.gateway_lock import GatewayLock; "
                               f"lock = GatewayLock(Path({str(lock_path(journal))!r})); lock.acquire(); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert (gateway_holder(journal) or "").startswith(f"pid {holder.pid}, since ")
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 5
    while gateway_holder(journal) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert gateway_holder(tmp_path / "never" / "journal.sqlite3") is None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def test_a_gateway_holds_its_lock_from_start_to_stop(tmp_path: Path) -> None:
    from bench.services import free_port
    from gateway.config import load_settings
    from telecare.processes import Gateway

    settings = load_settings(data_dir=tmp_path / "data", mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    gw = Gateway(settings)  # not started: nothing connects, but it owns the journal
    try:
        assert gateway_holder(settings.journal_path) is not None
    finally:
        gw.stop()
    assert gateway_holder(settings.journal_path) is None


def test_a_second_gateway_on_the_same_journal_is_refused_with_a_sentence(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.services import free_port
    from gateway.config import load_settings
    from telecare.processes import Gateway

    data = tmp_path / "data"
    first = Gateway(load_settings(data_dir=data, mqtt_url=f"mqtt://127.0.0.1:{free_port()}"))
    try:
        monkeypatch.setenv("TELECARE_DATA_DIR", str(data))
        result = runner.invoke(app, ["gateway"])
    finally:
        first.stop()
    assert result.exit_code != 0
    assert "a gateway is already running" in result.output and "stop it first" in result.output
    assert "Traceback" not in result.output
