"""Real servers for tests: Mosquitto and VictoriaMetrics, each on a free port in its own directory.

Both classes share one lifecycle::

    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()        # writes its config, starts the binary, waits until it serves
    broker.restart()      # SIGTERM, wait, start again on the SAME port with the SAME data directory
    broker.kill()         # SIGKILL: no shutdown work at all (a crash)
    broker.stop()         # SIGTERM and wait: Mosquitto saves its persistence file, VM flushes its data

or as context managers (``with Mosquitto(path) as broker: ...``). The pytest fixtures ``mosquitto`` and
``victoria`` in ``tests/conftest.py`` wrap them. ``bench/nats_cluster.py`` adds nats-server
(``NatsServer``, and ``NatsCluster``: three of them as one JetStream cluster) on the same lifecycle.

The binaries come from Debian packages (``mosquitto``, ``victoria-metrics``); ``bash .ci/test`` installs them
when they are missing. Only the standard library is used here, so this module imports in any environment.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0

# Every started service, so that a test run that dies half-way does not leave servers behind.
_running: set[_Service] = set()


@atexit.register
def _kill_leftovers() -> None:
    for service in list(_running):
        with contextlib.suppress(Exception):
            service.kill()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:] if text.strip() else "(empty log)"


class _Service:
    """Lifecycle shared by the servers: a subprocess, a port, a working directory."""

    name = "service"
    default_binary = ""
    debian_package = ""

    def __init__(self, workdir: Path, port: int | None = None, *, binary: str | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.binary = binary or self.default_binary
        self.process: subprocess.Popen[bytes] | None = None
        # stdout/stderr of the process: start-up errors (bad config, port taken) land here.
        self.output_path = self.workdir / f"{self.name}.out"

    # --- what each server defines -------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _logs(self) -> str:
        return f"--- {self.output_path}\n{_tail(self.output_path)}"

    # --- lifecycle ----------------------------------------------------------------------------
    def _resolve_binary(self) -> str:
        if Path(self.binary).is_file() and os.access(self.binary, os.X_OK):
            return self.binary
        found = shutil.which(Path(self.binary).name)
        if found:
            return found
        raise RuntimeError(
            f"{self.name}: binary {self.binary} not found. Install the Debian package "
            f"'{self.debian_package}' (apt-get install {self.debian_package}), or run `bash .ci/test`, "
            f"which installs it."
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Self:
        if self.running:
            raise RuntimeError(f"{self.name} is already running on port {self.port}")
        binary = self._resolve_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [binary, *self._command()]
        with open(self.output_path, "ab") as out:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        _running.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = self.process.poll()
            if code is not None:
                _running.discard(self)
                raise RuntimeError(
                    f"{self.name} exited with code {code} during start-up "
                    f"(port {self.port}, command {' '.join(command)})\n{self._logs()}"
                )
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} did not become ready on {self.host}:{self.port} within "
                    f"{START_TIMEOUT:.0f} s (command {' '.join(command)})\n{self._logs()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM and wait for the process to exit, so that it saves its state to disk."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                _running.discard(self)
                self.process = None
                raise RuntimeError(
                    f"{self.name} did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM; killed\n{self._logs()}"
                ) from None
        _running.discard(self)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to save anything (simulates a crash or power cut)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _running.discard(self)
        self.process = None

    def restart(self) -> Self:
        """Stop (gracefully) and start again on the same port with the same data directory."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} in {self.workdir}>"


class Mosquitto(_Service):
    """A Mosquitto 2.x broker with persistence and without Mosquitto's default queue limits.

    ``max_queued_messages 0`` and ``max_inflight_messages 0`` mean "no maximum" in Mosquitto 2.0
    (``man mosquitto.conf``); the defaults (1,000 queued, 20 in flight) throttle a subscriber and silently
    drop QoS 1 messages past the queue. ``max_queued_bytes 0`` is also "no maximum" (and the default).
    Persistence is saved every second and on SIGTERM (``stop()``); ``kill()`` loses what was not yet saved.
    """

    name = "mosquitto"
    default_binary = "/usr/sbin/mosquitto"
    debian_package = "mosquitto"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _config(self) -> str:
        # Run as root, Mosquitto drops to the "mosquitto" user, which cannot write pytest's tmp_path (0700):
        # keep the current user.
        user = pwd.getpwuid(os.getuid()).pw_name
        return "\n".join(
            [
                f"listener {self.port} {self.host}",
                "allow_anonymous true",
                f"user {user}",
                "persistence true",
                f"persistence_location {self.workdir}/",
                "autosave_interval 1",
                "max_queued_messages 0",
                "max_inflight_messages 0",
                "max_queued_bytes 0",
                f"log_dest file {self.log_path}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "",
            ]
        )

    def _command(self) -> list[str]:
        self.config_path.write_text(self._config())
        return ["-c", str(self.config_path)]

    def _ready(self) -> bool:
        # An MQTT CONNECT answered by a CONNACK, not just an open port: a port taken by someone else would
        # otherwise look ready while our broker dies on "address already in use".
        connect = bytes([0x10, 12, 0, 4, *b"MQTT", 4, 0x02, 0, 60, 0, 0])  # MQTT 3.1.1, clean, empty id
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(connect)
                connack = sock.recv(4)
                sock.sendall(bytes([0xE0, 0]))  # DISCONNECT
        except OSError:
            return False
        return connack[:2] == bytes([0x20, 2]) and connack[3:4] == b"\x00"

    def _logs(self) -> str:
        return f"{super()._logs()}\n--- {self.log_path}\n{_tail(self.log_path)}"


class VictoriaMetrics(_Service):
    """A single-node VictoriaMetrics that accepts InfluxDB line protocol (``/write``, ``/api/v2/write``).

    It stands in for InfluxDB on the write path only. What it does with line protocol (checked against the
    Debian package, VictoriaMetrics 1.79):

    * ``reading,home=h1,device=d1 occupancy=true,temp=21.5 1700000000000`` written to
      ``/api/v2/write?org=o&bucket=b&precision=ms`` becomes one series per field, named
      ``<measurement>_<field>``: ``reading_occupancy{home="h1",device="d1"}`` and ``reading_temp{...}``.
      Tags become labels. The ``bucket`` (and ``org``) of ``/api/v2/write`` are NOT added as a label; only the
      v1 endpoint ``/write?db=x`` adds ``db="x"``.
    * Booleans become numbers: ``true`` -> 1, ``false`` -> 0. Integers (``3i``) become their value.
    * String fields (``name="hello"``) are not rejected; they are stored as the value 0, so a string field is
      visible only as "a sample existed". Check strings against InfluxDB, not here.
    * Timestamps are kept in milliseconds (``precision=ms`` is honoured).

    ``-dedup.minScrapeInterval=1ms`` makes VM keep one sample per series and millisecond, which emulates
    InfluxDB's rule that a point written again with the same measurement, tags and timestamp overwrites the
    first instead of adding a second one: tests can count samples to prove a redelivery did not duplicate a
    point. Caveat: VM 1.79 does not promise that the sample kept is the LAST one written (InfluxDB does); when
    the duplicates' values differ, the survivor is arbitrary. Count with it, do not test "last write wins".
    ``-search.latencyOffset=0s`` makes just-written samples visible to queries at once (after ``flush()``).
    """

    name = "victoria-metrics"
    default_binary = "/usr/bin/victoria-metrics"
    debian_package = "victoria-metrics"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def data_path(self) -> Path:
        return self.workdir / "vm"

    def _command(self) -> list[str]:
        return [
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.data_path}",
            "-retentionPeriod=100y",
            # One sample per series and timestamp, like InfluxDB's overwrite of an identical point.
            "-dedup.minScrapeInterval=1ms",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as response:
                return response.status == 200 and response.read().strip() == b"OK"
        except (OSError, urllib.error.URLError):
            return False

    # --- HTTP helpers (stdlib only) -------------------------------------------------------------
    def _request(self, path: str, data: bytes | None = None, timeout: float = 10.0) -> bytes:
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise RuntimeError(f"VictoriaMetrics {request.method} {path}: HTTP {exc.code}: {body}") from exc

    def write(
        self, lines: str | list[str], *, org: str = "o", bucket: str = "b", precision: str = "ms"
    ) -> None:
        """POST InfluxDB line protocol to ``/api/v2/write``, as an InfluxDB 2.x client would."""
        body = lines if isinstance(lines, str) else "\n".join(lines)
        query = urllib.parse.urlencode({"org": org, "bucket": bucket, "precision": precision})
        self._request(f"/api/v2/write?{query}", data=body.encode())

    def flush(self) -> None:
        """Make samples written so far searchable (``/internal/force_flush``)."""
        self._request("/internal/force_flush")

    def export(self, match: str) -> list[dict[str, Any]]:
        """All samples of the series matching ``match`` (a series selector such as ``reading_occupancy`` or
        ``{__name__=~"reading_.*",home="h1"}``), over all time, after a flush.

        One dict per series: ``metric`` (labels, including ``__name__``), ``values`` and ``timestamps``
        (milliseconds), in VM's JSON line format. Deduplication applies: a point written twice is one sample.
        """
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        body = self._request(f"/api/v1/export?{query}")
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]

    def count(self, match: str) -> int:
        """Total number of samples across the series matching ``match``."""
        return sum(len(series["values"]) for series in self.export(match))
