"""nats-server for tests and benchmarks: one server (``NatsServer``) or a three-server JetStream cluster
(``NatsCluster``), each server on free ports (client, cluster routes, MQTT, monitoring) in its own directory,
with the lifecycle of ``bench/services.py``::

    with NatsCluster(tmp_path / "nats") as cluster:   # starts three servers, waits until all are healthy
        cluster.servers[0].kill()                      # SIGKILL one: a crash
        cluster.servers[0].start()                     # same ports, same JetStream store: it rejoins
        cluster.servers[0].wait_healthy()              # ... and has caught up

The binary comes from the Debian package ``nats-server`` (2.9.10 on Debian 12). Only the standard library is
used here. The telecare partition mapping (``docs/nats/telecare.conf``) is on by default; ``partition_of``
computes the partition nats-server gives a home.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from bench.services import _Service, free_port


class NatsServer(_Service):
    """One nats-server with JetStream and an MQTT listener, on free ports: client (``port``), cluster routes,
    MQTT and monitoring (HTTP), its JetStream store in ``workdir/jetstream``.

    ``restart()``, and ``start()`` after ``kill()``, keep the ports and the store: a restarted server rejoins
    its cluster as the same member. Ready means the monitoring endpoint answers and the MQTT port accepts; a
    member of a cluster is only *healthy* (``/healthz``: JetStream meta leader known, this server's streams and
    consumers current) once a quorum of its peers runs, see ``wait_healthy()`` and ``NatsCluster``.

    The configuration is written by ``config`` (a function of this server) when given, else by ``_config()``:
    no authentication, and the telecare partition mapping with ``partitions`` partitions (``None``: no mapping).
    Never the machine's own NATS on 4222: every port here is picked free.
    """

    name = "nats-server"
    default_binary = "/usr/sbin/nats-server"
    debian_package = "nats-server"

    def __init__(
        self,
        workdir: Path,
        *,
        server_name: str = "nats-1",
        ports: tuple[int, int, int, int] | None = None,
        routes: list[int] | None = None,
        partitions: int | None = 16,
        config: Callable[[NatsServer], str] | None = None,
        binary: str | None = None,
    ) -> None:
        client, cluster, mqtt, http = ports or _distinct_free_ports(4)
        super().__init__(workdir, client, binary=binary)
        self.server_name = server_name
        self.cluster_port, self.mqtt_port, self.http_port = cluster, mqtt, http
        # The cluster ports of every member (this one included: nats-server ignores a route to itself).
        self.routes = routes if routes is not None else []
        self.partitions = partitions
        self._render = config

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "nats-server.conf"

    @property
    def store_dir(self) -> Path:
        return self.workdir / "jetstream"

    def _config(self) -> str:
        lines = [
            f"server_name: {self.server_name}",
            f"listen: {self.host}:{self.port}",
            f"http: {self.host}:{self.http_port}",
            f"jetstream {{ store_dir: {json.dumps(str(self.store_dir))} }}",
            f"mqtt {{ listen: {self.host}:{self.mqtt_port} }}",
        ]
        if self.routes:
            routes = ", ".join(f"nats-route://{self.host}:{port}" for port in self.routes)
            lines.append(f"cluster {{ name: telecare, listen: {self.host}:{self.cluster_port}, routes: [{routes}] }}")
        if self.partitions is not None:
            lines.append(f"mappings: {{ {json.dumps(partition_mapping_source())}: "
                         f"{json.dumps(partition_mapping(self.partitions))} }}")
        return "\n".join(lines) + "\n"

    def _command(self) -> list[str]:
        self.config_path.write_text(self._render(self) if self._render else self._config())
        return ["-c", str(self.config_path)]

    def _ready(self) -> bool:
        if self._monitor("/varz") is None:
            return False
        try:
            with socket.create_connection((self.host, self.mqtt_port), timeout=0.5):
                return True
        except OSError:
            return False

    def _monitor(self, path: str) -> dict[str, Any] | None:
        """The JSON of a monitoring endpoint, or None when the server does not answer (or answers an error)."""
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}{path}", timeout=1.0) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        """``/healthz`` says ok: a JetStream meta leader is known and this server's replicas are current."""
        health = self._monitor("/healthz")
        return health is not None and health.get("status") == "ok"

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if not self.running:
                raise RuntimeError(f"{self.name} {self.server_name} is not running\n{self._logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} {self.server_name} not healthy within {timeout:.0f} s: "
                    f"{self._monitor('/healthz')}\n{self._logs()}"
                )
            time.sleep(0.1)


class NatsCluster:
    """Three (``size``) ``NatsServer`` routed to each other as the JetStream cluster ``telecare``, each with an
    MQTT listener, in ``workdir/nats-<i>``. ``start()`` returns once every server is healthy.

    ``config``, when given, renders each server's configuration (see ``NatsServer``); the servers' ports and
    routes are chosen here either way.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        size: int = 3,
        partitions: int | None = 16,
        config: Callable[[NatsServer], str] | None = None,
        binary: str | None = None,
    ) -> None:
        ports = _distinct_free_ports(4 * size)
        routes = [ports[4 * i + 1] for i in range(size)]
        self.servers = [
            NatsServer(
                Path(workdir) / f"nats-{i + 1}",
                server_name=f"nats-{i + 1}",
                ports=(ports[4 * i], ports[4 * i + 1], ports[4 * i + 2], ports[4 * i + 3]),
                routes=routes,
                partitions=partitions,
                config=config,
                binary=binary,
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every server's client URL, comma-separated (the form of ``TELECARE_NATS_URL``)."""
        return ",".join(server.url for server in self.servers)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self, timeout: float = 30.0) -> Self:
        try:
            for server in self.servers:
                server.start()
            self.wait_healthy(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running server is healthy (after a start, or a restart that has to catch up)."""
        for server in self.servers:
            if server.running:
                server.wait_healthy(timeout)

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(RuntimeError):
                server.stop()

    def kill(self) -> None:
        for server in self.servers:
            server.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def partition_mapping_source() -> str:
    """The subjects the partition mapping rewrites: every hub message, ``telecare.<home>.<rest>``."""
    return "telecare.*.>"


def partition_mapping(partitions: int = 16) -> str:
    """The destination of the partition mapping, as in ``docs/nats/telecare.conf``."""
    return f"telecare-part.{{{{partition({partitions},1)}}}}.telecare.{{{{wildcard(1)}}}}.>"


def partition_of(home_id: str, partitions: int = 16) -> int:
    """The partition nats-server's mapping gives a home, as the workers compute it (16 unless told)."""
    from gateway.cluster.stream import partition_of as workers_partition_of

    return workers_partition_of(home_id, partitions)


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
