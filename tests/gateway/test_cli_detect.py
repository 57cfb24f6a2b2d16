"""``telecare analyse`` and ``telecare baseline warm`` from the command line."""

from __future__ import annotations

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


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
