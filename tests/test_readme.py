"""README.md's commands, run in order as a new user runs them on a fresh clone (issue 14).

Every ```sh block of the README is read in order, and each command in it is run with ``bash -c`` in a new working
directory: a stand-in for a fresh clone holding only ``examples/`` (copied), ``bench/`` and ``.venv`` (linked: the
virtualenv running this test), with no ``.env``, no ``var/`` and no ``TELECARE_`` variable from the caller's
environment except ``TELECARE_MQTT_URL``, pointed at a Mosquitto the test starts (the README's default,
127.0.0.1:1883, is the machine's, which tests must not use). How each command is run:

* the install (``python3 -m venv .venv && .venv/bin/pip install -e .``) is skipped: this test runs in that
  virtualenv already. What follows it on the same line (``&& .venv/bin/telecare demo``) is run.
* ``bash .ci/test`` is skipped: it runs this suite, this test included.
* long-running commands (``telecare demo``, ``gateway``, ``api``, ``sim run``) are started, checked to be doing
  their job (the demo's dashboard answers and its homes are playing; the gateway is connected and its worker
  started; the API's /docs answers, and the admin the README set up logs in and sees the resident and carers it
  added; the simulator's messages reach the broker), then stopped with Ctrl-C (SIGINT to the process group), and
  must stop by themselves, cleanly, within a bound. ``--port 8000`` becomes a free port. Those of one block run
  together (the README's "in one terminal ... in another"): the gateway following the simulator's clock must store
  what ``sim run`` publishes.
* benchmarks (``bench/*.py``) are asked for ``--help``, and every option the README gives them must be in it: a
  run takes minutes, and tests/bench runs them small.
* ``export NAME=VALUE`` sets NAME for the later commands, except ``TELECARE_DATASETS``: that is this test's (the
  variable's value if set, else ``../shared/datasets`` beside the repository).
* a command that reads ``$TELECARE_DATASETS`` needs the public recordings, which are not shipped: it is run by
  :func:`test_readme_recordings` when they are present, which skips with the README's pointer to
  docs/recordings.md when they are not.
* every other command runs to completion and must exit 0.

No command's output may hold a traceback. The users' passwords are typed on standard input (no terminal: the
commands run in a session of their own, so a hidden prompt reads stdin). Each command's output is kept in
``<tmp_path>/logs/NN.log``, and a failure shows its end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.services import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DATASETS = Path(os.environ.get("TELECARE_DATASETS") or ROOT.parent / "shared" / "datasets")
PASSWORD = "readme-walkthrough-password"

INSTALL = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install -e \.(?: && (?P<rest>.+))?$")
EXPORT = re.compile(r"^export (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)")
LONG_RUNNING = re.compile(r"\btelecare (?P<what>demo|gateway|api|sim run)\b")
COMMAND_TIMEOUT_S = 300.0  # a command that ends: the slowest (sim export, analyse) take seconds
READY_TIMEOUT_S = 120.0  # the demo learns three homes' routines before it serves
STOP_TIMEOUT_S = 30.0


# --- reading the README -----------------------------------------------------------------------------------------


def readme_blocks(text: str) -> list[list[str]]:
    """The commands of each ```sh block, in order: continuation lines joined, blank and comment lines left out."""
    blocks = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        lines = (line.strip() for line in re.sub(r"\\\n\s*", " ", block).splitlines())
        blocks.append([line for line in lines if line and not line.startswith("#")])
    return blocks


def readme_commands(text: str) -> list[str]:
    return [command for block in readme_blocks(text) for command in block]


@dataclass(frozen=True)
class Step:
    kind: str  # "skip", "export", "bench", "recordings", "long" or "run"
    command: str
    why: str = ""


def plan(command: str) -> Step:
    """What to do with one README command (the module's docstring says why)."""
    install = INSTALL.match(command)
    if install:
        rest = install["rest"]
        return plan(rest) if rest else Step("skip", command, "the install: this test runs in that virtualenv")
    if command == "bash .ci/test":
        return Step("skip", command, "it runs the whole suite, this test included")
    if EXPORT.match(command):
        return Step("export", command)
    if re.search(r"(^|\s)(\.venv/bin/)?python3? bench/", command):
        return Step("bench", command)
    if "$TELECARE_DATASETS" in command or "${TELECARE_DATASETS" in command:
        return Step("recordings", command)
    if LONG_RUNNING.search(command):
        return Step("long", command)
    return Step("run", command)


def steps() -> list[Step]:
    return [plan(c) for c in readme_commands(README.read_text(encoding="utf-8"))]


def block_steps() -> list[list[Step]]:
    return [[plan(c) for c in block] for block in readme_blocks(README.read_text(encoding="utf-8"))]


def shipped(folder: str) -> list[str]:
    """The files under ``folder`` that a clone gets: those git tracks (all of them outside a git checkout)."""
    if (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--", folder], cwd=ROOT, capture_output=True, check=True)
        return [name for name in listed.stdout.decode().split("\0") if name]
    return [str(f.relative_to(ROOT)) for f in (ROOT / folder).rglob("*") if f.is_file()]


# --- a fresh clone and its commands -----------------------------------------------------------------------------


class Collector:
    """Everything published under telecare/ on the broker, as topics."""

    def __init__(self, broker: Mosquitto) -> None:
        self.topics: list[str] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = lambda _c, _u, m: self._keep(m.topic)
        self._client.connect(broker.host, broker.port)
        self._client.subscribe("telecare/#", qos=0)
        self._client.loop_start()

    def _keep(self, topic: str) -> None:
        with self._lock:
            self.topics.append(topic)

    def seen(self) -> list[str]:
        with self._lock:
            return list(self.topics)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class Running:
    """A long-running README command, started and seen working."""

    what: str  # "demo", "gateway", "api" or "sim run"
    command: str
    process: subprocess.Popen[bytes]
    log: Path
    collector: Collector | None


class Clone:
    """The working directory of a new user, and how the README's commands are run in it."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        self.dir = tmp_path / "clone"
        self.dir.mkdir()
        (self.dir / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        (self.dir / "bench").symlink_to(ROOT / "bench", target_is_directory=True)
        for name in shipped("examples"):
            (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, self.dir / name)
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.stdin = tmp_path / "typed"  # what the user types at the prompts: a password, twice
        self.stdin.write_text(f"{PASSWORD}\n{PASSWORD}\n", encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TELECARE_")}
        self.env |= {"TELECARE_MQTT_URL": broker.url, "COLUMNS": "120"}
        self.broker = broker
        self.count = 0

    def start(self, command: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.count += 1
        log = self.logs / f"{self.count:02d}.log"
        with log.open("wb") as out, self.stdin.open("rb") as typed:
            out.write(f"$ {command}\n".encode())
            out.flush()
            process = subprocess.Popen(["bash", "-c", command], cwd=self.dir, env=self.env, stdin=typed,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return process, log

    def run(self, command: str) -> str:
        process, log = self.start(command)
        try:
            process.wait(COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _stop(process)
            pytest.fail(f"`{command}` did not finish in {COMMAND_TIMEOUT_S:.0f} s\n{_tail(log)}")
        output = log.read_text(errors="replace")
        assert process.returncode == 0, f"`{command}` failed (exit {process.returncode})\n{_tail(log)}"
        assert "Traceback" not in output, f"`{command}` printed a traceback\n{_tail(log)}"
        return output

    def start_long(self, command: str) -> Running:
        """Start a command that runs until stopped, and see it doing its job."""
        what = LONG_RUNNING.search(command)
        assert what is not None
        port = free_port()
        command = command.replace("--port 8000", f"--port {port}")
        collector = Collector(self.broker) if what["what"] == "sim run" else None
        process, log = self.start(command)
        running = Running(what["what"], command, process, log, collector)
        try:
            ready = READY_CHECKS[what["what"]]
            _wait(lambda: ready(log, port, collector), process, log, command)
        except BaseException:
            self.stop_long(running, check=False)
            raise
        return running

    def stop_long(self, running: Running, *, check: bool = True) -> None:
        """Stop it as a user would (Ctrl-C): it must stop by itself, cleanly."""
        if running.collector is not None:
            running.collector.close()
        code = _stop(running.process)
        if not check:
            return
        command, log = running.command, running.log
        assert code is not None, f"`{command}` did not stop within {STOP_TIMEOUT_S:.0f} s of Ctrl-C\n{_tail(log)}"
        assert code in (0, 130, -signal.SIGINT), f"`{command}` stopped with exit {code}\n{_tail(log)}"
        assert "Traceback" not in log.read_text(errors="replace"), f"`{command}` printed a traceback\n{_tail(log)}"

    def received_from(self, home: str) -> int:
        """How many of the home's devices the gateway has heard from (its operational database, var/)."""
        database = self.dir / "var" / "telecare.db"
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            found = db.execute("SELECT count(*) FROM devices WHERE home_id = ? AND last_seen IS NOT NULL", (home,))
            return int(found.fetchone()[0])

    def bench_help(self, command: str) -> None:
        """A benchmark's --help, holding every option the README gives it."""
        words = shlex.split(command, comments=True)
        script = next(w for w in words if w.startswith("bench/"))
        output = self.run(f".venv/bin/python {script} --help")
        for option in (w for w in words if w.startswith("--")):
            assert option in output, f"{script} has no option {option}, which the README gives it"

    def export(self, command: str) -> None:
        found = EXPORT.match(command)
        assert found is not None
        name, value = found["name"], found["value"]
        self.env[name] = str(DATASETS) if name == "TELECARE_DATASETS" else os.path.expanduser(value)


def _tail(log: Path, limit: int = 4000) -> str:
    text = log.read_text(errors="replace")
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, command: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`{command}` ended (exit {process.returncode}) instead of running\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.5)
    pytest.fail(f"`{command}` was not doing its job after {READY_TIMEOUT_S:.0f} s\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> int | None:
    """Ctrl-C to the command's process group; its exit code, or None if it had to be killed."""
    if process.poll() is not None:
        return process.returncode
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def _http_status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}),
                                    timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return 0, ""  # not listening yet


# --- what "doing its job" means for each long-running command ---------------------------------------------------


def _demo_ready(log: Path, _port: int, _collector: Collector | None) -> bool:
    """The dashboard answers, and the homes are being played (a progress line: "14:10 simulated · 85 messages")."""
    text = log.read_text(errors="replace")
    found = re.search(r"dashboard\s+(http://\S+)", text)
    return (found is not None and 0 < _http_status(found[1])[0] < 500
            and re.search(r"simulated · [1-9][\d,]* messages", text) is not None)


def _gateway_ready(log: Path, _port: int, _collector: Collector | None) -> bool:
    """Connected to the broker, and its worker process started: a line of the worker's, or 15 s later. (A Ctrl-C
    while the worker is still importing shows a KeyboardInterrupt traceback from it: not what this test is about.)"""
    text = log.read_text(errors="replace")
    connected = text.find("connected to the broker at")
    if connected < 0:
        return False
    if re.search(r"^\S+ \S+ [A-Z]+ worker ", text, flags=re.MULTILINE):
        return True
    return time.time() - log.stat().st_mtime > 15  # nothing more written for 15 s: settled


def _api_ready(_log: Path, port: int, _collector: Collector | None) -> bool:
    """/docs answers, the root address leads to the login form, and the admin the README set up logs in and sees
    the resident and carers it added."""
    base = f"http://127.0.0.1:{port}"
    if _http_status(f"{base}/docs")[0] != 200:
        return False
    status, body = _http_status(f"{base}/")  # "Open http://127.0.0.1:8000/ and log in"
    assert status == 200 and "password" in body.lower(), f"the root address is not the login: {status} {body}"
    form = urllib.parse.urlencode({"username": "admin@council.example", "password": PASSWORD}).encode()
    status, body = _http_status(f"{base}/auth/token", data=form)
    assert status == 200, f"the README's admin cannot log in: {status} {body}"
    token = json.loads(body)["access_token"]
    for path, expected in (("/residents", "Mary Jones"), ("/recipients", "Bob (neighbour)")):
        status, body = _http_status(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and expected in body, f"the admin's {path} lacks {expected}: {status} {body}"
    return True


def _sim_ready(_log: Path, _port: int, collector: Collector | None) -> bool:
    assert collector is not None
    return any(topic.startswith("telecare/acacia-12/") for topic in collector.seen())


READY_CHECKS: dict[str, Callable[[Path, int, Collector | None], bool]] = {
    "demo": _demo_ready, "gateway": _gateway_ready, "api": _api_ready, "sim run": _sim_ready}


# --- the tests --------------------------------------------------------------------------------------------------


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Clone]:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield Clone(tmp_path, broker)


@pytest.mark.slow  # one to three minutes: twenty commands, the demo alone 15 s before it plays
def test_readme_commands_work_in_order_on_a_fresh_clone(clone: Clone) -> None:
    done: list[Step] = []
    for block in block_steps():
        _run_block(clone, block)
        done += block
    ran = [s.command for s in done if s.kind in ("run", "long")]
    assert any("telecare demo" in c for c in ran), "the README's first command, the demo, was not found"
    assert [s.kind for s in done[:3]] == ["long", "skip", "skip"], "the demo, the tests, the install come first"
    _check_the_analysis(clone.dir)


def _run_block(clone: Clone, block: list[Step]) -> None:
    """One ```sh block. Long-running commands in one block run together, as the README's "in one terminal ... in
    another" asks; they are stopped before a command that ends (`baseline warm` wants the gateway stopped) and at
    the block's end, the last started first."""
    running: list[Running] = []
    try:
        for step in block:
            if step.kind == "long":
                running.append(clone.start_long(step.command))
                continue
            _stop_all(clone, running)
            if step.kind == "run":
                clone.run(step.command)
            elif step.kind == "bench":
                clone.bench_help(step.command)
            elif step.kind == "export":
                clone.export(step.command)
        if {r.what for r in running} >= {"gateway", "sim run"}:
            _wait_for_readings(clone, running)
        _stop_all(clone, running)
    finally:
        for r in reversed(running):
            clone.stop_long(r, check=False)


def _stop_all(clone: Clone, running: list[Running]) -> None:
    while running:
        clone.stop_long(running.pop())


def _wait_for_readings(clone: Clone, running: list[Running]) -> None:
    """The gateway stores what the simulator publishes: the scenario's home's devices are seen."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):  # locked by the gateway's commit: ask again
            if clone.received_from("acacia-12") > 0:
                return
        for r in running:
            if r.process.poll() is not None:
                pytest.fail(f"`{r.command}` ended (exit {r.process.returncode})\n{_tail(r.log)}")
        time.sleep(1)
    logs = "\n".join(_tail(r.log, 1500) for r in running)
    pytest.fail(f"the gateway stored nothing of acacia-12 in {READY_TIMEOUT_S:.0f} s of the simulator\n{logs}")


def _check_the_analysis(clone_dir: Path) -> None:
    """The README says `telecare analyse` finds the fall that the scenario's ground truth records."""
    truth = [json.loads(line) for line in (clone_dir / "truth.jsonl").read_text().splitlines()]
    alerts = [json.loads(line) for line in (clone_dir / "alerts.jsonl").read_text().splitlines()]
    fall = next(t for t in truth if t["kind"] == "fall")
    raised = [a["raised_at"] for a in alerts if a["home"] == fall["home"] and a["kind"] == "inactivity"]
    assert any(fall["start"][:13] <= r[:13] <= fall["end"][:13] for r in raised), (fall, alerts)
    press = next(t for t in truth if t["kind"] == "pendant")
    assert any(a["kind"] == "pendant" and a["raised_at"][:16] == press["start"][:16] for a in alerts), (press, alerts)


def test_the_files_the_readme_uses_are_shipped() -> None:
    """A file a README command names under examples/ is in the repository (the issue: `my-scenario.yaml` was not)."""
    named = {m for c in readme_commands(README.read_text(encoding="utf-8")) for m in re.findall(r"examples/\S+", c)}
    assert named, "the README's walk-through uses no example"
    assert sorted(named - set(shipped("examples"))) == []


@pytest.mark.slow  # a month of a real home through Mosquitto: 15 to 30 s
def test_readme_recordings(clone: Clone) -> None:
    """The replay of a public recording, in the README's words, when the recordings are here."""
    needed = [s for s in steps() if s.kind == "recordings"]
    assert needed, "the README no longer replays a recording: drop this test, or the README lost its example"
    if not DATASETS.is_dir():
        pytest.skip(f"the public recordings are not at {DATASETS} (set TELECARE_DATASETS): {_readme_pointer()}")
    for step in steps():
        if step.kind == "export":
            clone.export(step.command)
    for step in needed:
        output = clone.run(step.command)
        assert "replaying" in output, output


def test_readme_recordings_absent_is_a_sentence(clone: Clone, tmp_path: Path) -> None:
    """Without the recordings, the README's replay says which file is missing, in a sentence: no traceback."""
    empty = tmp_path / "no-datasets"
    empty.mkdir()
    clone.env["TELECARE_DATASETS"] = str(empty)
    for step in (s for s in steps() if s.kind == "recordings"):
        process, log = clone.start(step.command)
        assert process.wait(COMMAND_TIMEOUT_S) == 2, _tail(log)
        output = log.read_text(errors="replace")
        assert str(empty) in output and "no such file" in output.lower(), output
        assert "Traceback" not in output, output


def _readme_pointer() -> str:
    """What the README tells a user about getting the recordings: its sentence that names docs/recordings.md."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    sentences = re.split(r"(?<=\.)\s+", text)
    return next((s for s in sentences if "docs/recordings.md" in s and "download" in s),
                "docs/recordings.md says where to download them")


def test_the_plan_recognises_each_kind_of_command() -> None:
    """The classifier itself, so that a README edit cannot quietly turn a command into a skipped one."""
    assert plan("python3 -m venv .venv && .venv/bin/pip install -e .").kind == "skip"
    demo = plan("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/telecare demo")
    assert (demo.kind, demo.command) == ("long", ".venv/bin/telecare demo")
    assert plan("bash .ci/test").kind == "skip"
    assert plan(".venv/bin/telecare api --port 8000      # migrations").kind == "long"
    assert plan("TELECARE_CLOCK=simulated .venv/bin/telecare gateway").kind == "long"
    assert plan(".venv/bin/telecare sim run --scenario examples/scenario.yaml").kind == "long"
    assert plan(".venv/bin/telecare sim export --out history.csv").kind == "run"
    assert plan(".venv/bin/python bench/api.py").kind == "bench"
    assert plan('.venv/bin/telecare sim replay --format kasteren "$TELECARE_DATASETS/x.txt"').kind == "recordings"
    assert plan("export TELECARE_DATASETS=~/datasets").kind == "export"
    assert plan("bash .ci/test -x").kind == "run"  # only the exact command is skipped
    assert readme_commands("```sh\na \\\n  b   # c\n# d\n\n```\n```text\ne\n```\n") == ["a  b   # c"]
