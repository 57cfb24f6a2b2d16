"""Progress for long work (issue 14): a bar on standard error when it is a terminal, nothing but the summary
line when it is not (a pipe, a log, a test), for ``sim export``, ``sim run``, ``analyse`` and ``baseline warm``.

The terminal is a real pseudo-terminal: the command runs as a person would run it."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from bench.services import Mosquitto
from sensors_sim.generate import Simulation, start_of
from sensors_sim.recordings import write_csv
from sensors_sim.scenario import default_home, to_home_description
from telecare.progress import Bar, plural, progress_bar

ROOT = Path(__file__).resolve().parents[2]
BAR = "━"  # rich's bar; its escape sequences come with it
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def lines(err: str) -> list[str]:
    """What a person reads at the end: escape sequences and carriage-return redraws taken out."""
    return [line.strip() for line in ESCAPE.sub("\n", err.replace("\r", "\n")).splitlines() if line.strip()]


def telecare(*args: str, terminal: bool, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``telecare`` with standard error on a pseudo-terminal (or a pipe): exit code, stdout, stderr."""
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})}
    full_env.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "telecare", *args]
    if not terminal:
        done = subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    return proc.wait(timeout=300), out, seen.decode(errors="replace")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.csv"
    write_csv(Simulation([default_home("p1"), default_home("p2")], start_of(date(2026, 3, 2)), 4, seed=2)
              .observations(), path)
    return path


def test_the_bar_passes_items_through_and_counts_them() -> None:
    with progress_bar("x", 10, show=False) as bar:
        assert list(bar.tap(range(5))) == [0, 1, 2, 3, 4] and bar.count == 5 and not bar.shown
    with progress_bar("x", 10, show=True) as bar:  # drawn (to pytest's captured stderr), same items
        assert list(bar.tap(range(2000), lambda i: i / 200)) == list(range(2000)) and bar.shown
    assert isinstance(bar, Bar)


def test_plurals() -> None:
    assert plural(1, "home") == "1 home" and plural(3, "home") == "3 homes" and plural(41200, "reading") == \
        "41,200 readings" and plural(0, "alert") == "0 alerts"


@pytest.mark.parametrize("terminal", [True, False])
def test_sim_export_shows_a_bar_only_on_a_terminal(terminal: bool, tmp_path: Path) -> None:
    code, out, err = telecare("sim", "export", "--out", str(tmp_path / "x.csv"), "--days", "3", "--homes", "2",
                              terminal=terminal)
    assert code == 0, err
    assert "observations of 2 homes over 3 days written to" in out
    if terminal:
        # The count of rows written so far: "1 row" when the export ended before the bar's next redraw (0.2 s).
        assert BAR in err and "exporting to x.csv" in err and re.search(r"\d row", err), err[-500:]
    else:
        assert err == "", "a pipe gets nothing but what the command always says"


@pytest.mark.parametrize("terminal", [True, False])
def test_analyse_shows_a_bar_on_a_terminal_and_always_sums_up(terminal: bool, history: Path) -> None:
    code, out, err = telecare("analyse", str(history), "--learn-days", "2", terminal=terminal)
    assert code == 0, err
    summary = [line for line in lines(err) if line.startswith("analysed ")]
    assert len(summary) == 1 and summary[0].startswith("analysed 2 homes, 4.0 days, ") and " readings in " in \
        summary[0] and summary[0].endswith(("alert", "alerts")), err[-500:]
    assert (BAR in err) is terminal and ("\x1b[" in err) is terminal, err[-500:]
    assert all(line.startswith("{") for line in out.splitlines()), "stdout is the alerts only"


@pytest.mark.parametrize("terminal", [True, False])
def test_baseline_warm_shows_a_bar_on_a_terminal_and_always_sums_up(terminal: bool, history: Path,
                                                                    tmp_path: Path) -> None:
    env = {"TELECARE_DATA_DIR": str(tmp_path / "data")}
    homes = tmp_path / "homes.yaml"
    homes.write_text(yaml.safe_dump({"version": 1, "homes": [to_home_description(default_home(h))["homes"][0]
                                                             for h in ("p1", "p2")]}))
    assert telecare("db", "upgrade", terminal=False, env=env)[0] == 0
    assert telecare("homes", "import", str(homes), terminal=False, env=env)[0] == 0
    code, out, err = telecare("baseline", "warm", str(history), terminal=terminal, env=env)
    assert code == 0, err
    assert "p1: learned from " in out and "over 4.0 days" in out
    assert "warmed the baselines of 2 homes from " in err and " readings in " in err, err[-500:]
    assert (BAR in err) is terminal, err[-500:]


def test_sim_run_shows_simulated_time_on_a_terminal(mosquitto: Mosquitto) -> None:
    code, out, err = telecare("sim", "run", "--homes", "1", "--days", "2", "--start", "2026-01-05", "--speed", "0",
                              terminal=True, env={"TELECARE_MQTT_URL": mosquitto.url})
    assert code == 0, err
    # How many messages the bar has counted depends on when it last drew (a loaded machine draws less often).
    assert "publishing 1 home over 2 simulated days" in err and BAR in err and re.search(r"\d message", err), \
        err[-500:]
    assert "published " in out
