"""Cluster mode on one machine, for the failure tests and the benchmark: three NATS servers, PostgreSQL,
VictoriaMetrics (the shared readings store, written as InfluxDB v2), the local Pushover server, and ``telecare
gateway`` worker processes in cluster mode, with hubs publishing over MQTT at QoS 1::

    with Fleet.start(workdir, admin_url) as fleet:
        fleet.add_workers(3)
        fleet.add_home("h1")                              # a resident and a carer (Pushover key) for the home
        hubs = Hubs(fleet.nats.servers, ["h1", "h2"])    # one publishing thread per home, spread over the servers
        ...
        fleet.workers[0].kill()                           # kill -9; .pause()/.resume(): SIGSTOP/SIGCONT
        fleet.stored_times("h1")                          # event times of h1's readings in VictoriaMetrics

A reading's identity is its point: measurement, tags and event time (``last_seen``). VictoriaMetrics runs with
one sample per series and millisecond (``bench.services.VictoriaMetrics``), as InfluxDB overwrites a point written
again, so a redelivered reading rewritten is still one point.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import orjson
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from bench.nats_cluster import NatsCluster, NatsServer
from bench.pushover_server import PushoverServer
from bench.services import VictoriaMetrics, free_port

ROOT = Path(__file__).resolve().parents[1]
PUSHOVER_TOKEN = "a" * 30
TEMPERATURE = "reading_temperature"


def carer_key(home: str) -> str:
    """A Pushover user key of its own for each home's carer (30 characters, as Pushover's)."""
    return hashlib.sha256(home.encode()).hexdigest()[:30]


def libpq(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database (``telecare_cluster_<random>``) on the server of ``admin_url``, dropped after;
    its SQLAlchemy URL. ``ConnectionError`` (a sentence) when the server cannot be reached."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"telecare_cluster_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(libpq(admin_url), autocommit=True, connect_timeout=3)
    except psycopg.Error as e:
        raise ConnectionError(f"PostgreSQL not reachable at {admin_url}: {str(e).strip()}") from None
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name, drivername="postgresql+psycopg").render_as_string(
            hide_password=False)
    finally:
        with psycopg.connect(libpq(admin_url), autocommit=True, connect_timeout=3) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND pid <> pg_backend_pid()", (name,))
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


class WorkerProcess:
    """One ``telecare gateway`` in cluster mode, its log in ``log``, its /metrics on ``metrics_port``."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.log, self.metrics_port = name, log, free_port()
        env = {**env, "TELECARE_METRICS_PORT": str(self.metrics_port)}
        with open(log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "telecare", "gateway", "--log-level", "INFO"],
                                            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """``kill -9``: no release of leases, no acknowledgement of the batch in hand."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, as systemd stops it; SIGKILL if it has not stopped within ``timeout_s``."""
        if not self.alive:
            return
        self.process.send_signal(signal.SIGCONT)  # a paused worker cannot act on SIGTERM
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def cpu_seconds(self) -> float:
        """User and system CPU time the process used so far (``/proc/<pid>/stat``: utime, stime)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metric(self, name: str) -> float | None:
        """A metric of the worker's /metrics, summed over its labelled series; None when it does not answer or
        has no such metric."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(name + " ") or line.startswith(name + "{")]
        return sum(values) if values else None

    def holds_connection(self, local_port: int) -> bool:
        """Whether one of this process's TCP connections has the local port ``local_port``."""
        proc = Path(f"/proc/{self.pid}")
        sockets = set()
        for fd in proc.glob("fd/*"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    sockets.add(target[8:-1])
        for table in ("net/tcp", "net/tcp6"):
            with contextlib.suppress(OSError):
                for line in (proc / table).read_text().splitlines()[1:]:
                    columns = line.split()  # sl, local_address (hex ip:port), ..., inode (the 10th)
                    if int(columns[1].rsplit(":", 1)[1], 16) == local_port and columns[9] in sockets:
                        return True
        return False

    def tail(self, limit: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-limit:] if self.log.exists() else ""


@dataclass
class Fleet:
    """The services of one cluster-mode deployment on this machine, and its workers."""

    workdir: Path
    db_url: str
    nats: NatsCluster
    victoria: VictoriaMetrics
    pushover: PushoverServer
    workers: list[WorkerProcess] = field(default_factory=list)
    batch_max: int = 500
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def start(cls, workdir: Path, admin_url: str, *, batch_max: int = 500) -> Self:
        """Everything but the workers, started; ``ConnectionError`` when PostgreSQL cannot be reached."""
        from gateway.db.migrate import upgrade

        workdir.mkdir(parents=True, exist_ok=True)
        stack = contextlib.ExitStack()
        try:
            db_url = stack.enter_context(fresh_database(admin_url))
            upgrade(db_url)
            nats = stack.enter_context(NatsCluster(workdir / "nats"))
            victoria = stack.enter_context(VictoriaMetrics(workdir / "victoria"))
            pushover = PushoverServer()
            pushover.start()
            stack.callback(pushover.stop)
        except BaseException:
            stack.close()
            raise
        return cls(workdir, db_url, nats, victoria, pushover, batch_max=batch_max, _cleanup=stack)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(10)
        self._cleanup.close()

    def env(self, name: str) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if not k.startswith("TELECARE_")},
                "TELECARE_NATS_URL": self.nats.url, "TELECARE_NATS_PARTITIONS": "16",
                "TELECARE_DB_URL": self.db_url, "TELECARE_DATA_DIR": str(self.workdir / name),
                "TELECARE_INFLUX_URL": self.victoria.url, "TELECARE_INFLUX_TOKEN": "test-token",
                "TELECARE_INFLUX_ORG": "telecare", "TELECARE_INFLUX_BUCKET": "readings",
                "TELECARE_PUSHOVER_URL": self.pushover.url, "TELECARE_PUSHOVER_TOKEN": PUSHOVER_TOKEN,
                "TELECARE_BATCH_MAX": str(self.batch_max)}

    def add_worker(self) -> WorkerProcess:
        name = f"worker-{len(self.workers) + 1}"
        (self.workdir / name).mkdir(exist_ok=True)
        worker = WorkerProcess(name, self.env(name), self.workdir / f"{name}.log")
        self.workers.append(worker)
        return worker

    @property
    def live_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive]

    def wait_partitions_shared(self, timeout_s: float = 40.0) -> None:
        """Until the live workers own the 16 partitions between them, each some (their /metrics)."""
        def shared() -> bool:
            owned = [w.metric("telecare_partitions_owned") for w in self.live_workers]
            return all(o for o in owned) and sum(o or 0 for o in owned) == 16

        wait(shared, timeout_s, "the partitions shared out", self.logs)

    def add_home(self, home: str) -> None:
        """``home`` (the simulator's default flat), its resident and a one-step chain to its carer."""
        from gateway.alerting import people
        from gateway.db.session import make_engine, make_session_factory
        from gateway.homes import import_homes, parse_description
        from sensors_sim.scenario import default_home, to_home_description

        key = carer_key(home)
        self.pushover.users.add(key)
        engine = make_engine(self.db_url)
        try:
            with make_session_factory(engine)() as s:
                import_homes(s, parse_description(to_home_description(default_home(home))))
                people.add_resident(s, home, f"Resident of {home}")
                carer = people.add_recipient(s, f"Carer of {home}", key)
                people.set_chain(s, home, [(carer.id, 15)])
                s.commit()
        finally:
            engine.dispose()

    def messages_to(self, home: str) -> list[dict[str, str]]:
        """What the Pushover server received for ``home``'s carer."""
        key = carer_key(home)
        return [m for m in list(self.pushover.messages) if m.get("user") == key]

    def stored_times(self, home: str) -> list[int]:
        """Event times of ``home``'s temperature points in the readings store, one per point."""
        series = self.victoria.export(f'{{__name__="{TEMPERATURE}",home="{home}"}}')
        return sorted(t for s in series for t in s["timestamps"])

    def stored_count(self) -> int:
        return self.victoria.count(TEMPERATURE)

    def dispatcher_holder(self) -> WorkerProcess | None:
        """The worker whose database connection holds the dispatcher's advisory lock, if one does."""
        from sqlalchemy import column, select, table

        from gateway.alerting.guards import DISPATCHER_LOCK_KEY, advisory_lock_holders
        from gateway.db.session import make_engine

        activity = table("pg_stat_activity", column("pid"), column("client_port"))
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                ports = list(conn.scalars(select(activity.c.client_port).where(
                    activity.c.pid.in_(advisory_lock_holders(DISPATCHER_LOCK_KEY)))))
        finally:
            engine.dispose()
        for worker in self.live_workers:
            if any(worker.holds_connection(port) for port in ports):
                return worker
        return None

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} (pid {w.pid}, {'alive' if w.alive else 'dead'})\n{w.tail(2500)}"
                         for w in self.workers)


def wait(condition: Callable[[], object], timeout_s: float, what: str,
         context: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s" + (f"\n{context()}" if context else ""))
        time.sleep(0.2)


class HubConnection:
    """A hub's MQTT connection (paho 2.x, MQTT 3.1.1, QoS 1) that reports each PUBACK."""

    def __init__(self, port: int, client_id: str, timeout_s: float) -> None:
        self.acked: set[int] = set()
        self.lost = threading.Event()
        self._changed = threading.Condition()
        connected = threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311)
        self.client.max_inflight_messages_set(1000)

        def on_connect(_client: Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
                       ) -> None:
            if not reason.is_failure:
                connected.set()

        self.client.on_connect = on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda *_args: self._lose()
        self.client.reconnect_delay_set(60, 60)  # the hub picks another server itself (``Hub``)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not connected.wait(timeout_s):
            self.close()
            raise ConnectionError(f"no CONNACK from port {port}")

    def _on_publish(self, _client: Client, _userdata: object, mid: int, _reason: object, _props: object) -> None:
        with self._changed:
            self.acked.add(mid)
            self._changed.notify_all()

    def _lose(self) -> None:
        with self._changed:
            self.lost.set()
            self._changed.notify_all()

    def publish(self, topic: str, payload: bytes) -> int:
        return int(self.client.publish(topic, payload, qos=1).mid)

    def wait_acked(self, mids: list[int], timeout_s: float) -> set[int]:
        """The mids acknowledged once all were, the connection dropped, or ``timeout_s`` passed."""
        with self._changed:
            self._changed.wait_for(lambda: self.lost.is_set() or all(m in self.acked for m in mids), timeout_s)
            return {m for m in mids if m in self.acked}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


class Hub(threading.Thread):
    """One home's hub: publishes temperature readings (each its own event time) at ``rate`` per second, and a
    pendant press when ``press()`` is called, over one server's MQTT port; when the server drops it or does not
    acknowledge, it connects to the next server and sends the unacknowledged messages again (as a hub does:
    at least once). ``acked``: the event times of the readings PUBACKed; ``pressed_at``: when each press was
    published (wall clock)."""

    def __init__(self, home: str, servers: list[NatsServer], first: int, *, rate: float, start_ms: int) -> None:
        super().__init__(name=f"hub-{home}", daemon=True)
        self.home, self.servers, self.server_index, self.rate = home, servers, first, rate
        self.next_time = start_ms
        self.acked: set[int] = set()
        self.sent: set[int] = set()
        self.pressed_at: list[float] = []
        self.reconnects = 0
        self.errors: list[str] = []
        self._press = threading.Event()
        self._finishing = threading.Event()

    def press(self) -> None:
        self._press.set()

    def finish(self, timeout_s: float = 60.0) -> None:
        self._finishing.set()
        self.join(timeout_s)

    def _connect(self, deadline: float) -> HubConnection:
        while True:
            server = self.servers[self.server_index % len(self.servers)]
            try:
                return HubConnection(server.mqtt_port, f"hub-{self.home}", 5.0)
            except (ConnectionError, OSError) as e:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"hub {self.home}: no server accepts it: {e}") from None
                self.server_index += 1
                self.reconnects += 1
                time.sleep(0.5)

    def _next_reading(self) -> tuple[int | None, str, bytes]:
        """(event time, topic, payload) of the next reading."""
        self.next_time += 1
        return (self.next_time, f"telecare/{self.home}/thermo",
                orjson.dumps({"temperature": 20 + (self.next_time % 100) / 10, "last_seen": self.next_time}))

    def _take_press(self) -> list[tuple[int | None, str, bytes]]:
        """The press asked for since the last call, if any (event time None). Taken even while earlier messages
        wait for their PUBACK, as a hub queues a pendant's action behind them: a press held back until they were
        acknowledged was never sent when a failover outlasted the test's window."""
        if not self._press.is_set():
            return []
        self._press.clear()
        self.pressed_at.append(time.time())
        return [(None, f"telecare/{self.home}/pendant",
                 orjson.dumps({"action": "single", "last_seen": int(time.time() * 1000)}))]

    def run(self) -> None:
        try:
            self._publish_until_stopped()
        except Exception as e:  # reported by the test, never silently
            self.errors.append(f"{type(e).__name__}: {e}")

    def _publish_until_stopped(self) -> None:
        connection = self._connect(time.monotonic() + 30)
        pending: list[tuple[int | None, str, bytes]] = []
        try:
            while not self._finishing.is_set() or pending or self._press.is_set():
                pending += self._take_press()
                if not pending:
                    pending = [self._next_reading()]
                mids = [connection.publish(topic, payload) for _t, topic, payload in pending]
                for event_time, _topic, _payload in pending:
                    if event_time is not None:
                        self.sent.add(event_time)
                acked = connection.wait_acked(mids, 6.0)
                done = [m for m, mid in zip(pending, mids, strict=True) if mid in acked]
                self.acked |= {t for t, _topic, _payload in done if t is not None}
                pending = [m for m, mid in zip(pending, mids, strict=True) if mid not in acked]
                if pending:  # dropped or unanswered: another server, the same messages again
                    connection.close()
                    self.server_index += 1
                    self.reconnects += 1
                    connection = self._connect(time.monotonic() + 30)
                    continue
                self._finishing.wait(1 / self.rate)
        finally:
            connection.close()


def start_hubs(homes: list[str], servers: list[NatsServer], *, rate: float) -> list[Hub]:
    """One hub per home, spread over the servers, publishing from now on (event times from the wall clock)."""
    start_ms = int(time.time() * 1000) - 3_600_000  # an hour ago: points in the past, each home its own
    hubs = [Hub(home, servers, i, rate=rate, start_ms=start_ms) for i, home in enumerate(homes)]
    for hub in hubs:
        hub.start()
    return hubs
