"""Ingest benchmark: readings stored per second by one gateway, next to the broker's raw ceiling.

    python bench/ingest.py [--readings 100000] [--homes 1000] [--publishers 4] [--latency-rate 5000]

Starts its own Mosquitto and VictoriaMetrics on free ports (InfluxDB v2 writes), then measures, in one run:

1. ceilings: ``mosquitto_sub`` (the broker's raw rate) and a single-process paho-mqtt client that does nothing
   but acknowledge (what any Python gateway could reach), each draining a backlog of N QoS 1 messages queued
   for its persistent session;
2. gateway: one gateway (its ingest process and its worker: store writer, registry, detectors, alert
   dispatcher) draining the same backlog into the readings store, timed from start until the writer's journal
   position passes the last reading;
3. latency: publish-to-stored latency (p50, p99) with publishers pacing at ``--latency-rate`` messages/s,
   each message stamped with its publish time as ``last_seen``; meanwhile ``--presses`` pendant presses, one
   home each (a resident with a one-step chain), are timed from publish to the request reaching a local
   Pushover server (``bench.pushover_server``).

``--profile DIR`` samples the ingest process and the worker with py-spy (``pip install py-spy``) during the
drain and the latency phases: collapsed stacks (``DIR/<phase>-<process>.txt``) and their summary, printed.

Backlogs are queued first (DESIGN.md: one paho publisher tops out near 5,000/s), by several publisher processes.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pushover_server import PushoverServer
from bench.services import Mosquitto, VictoriaMetrics
from gateway.alerting import people
from gateway.config import Settings
from gateway.db.migrate import upgrade
from gateway.db.models import Alert, AlertLog
from gateway.db.session import make_engine, make_session_factory
from gateway.homes import import_homes, parse_description
from sensors_sim.scenario import default_home, to_home_description
from telecare.processes import Gateway

BACKLOG_AGE_MS = 3_600_000


def payloads(worker: int, workers: int, count: int, homes: int, stamp_now: bool) -> list[tuple[str, bytes]]:
    """Workers interleave: together they send readings n = 0, 1, 2 ..., each device's times rising as at home.

    A backlog is an hour old, one reading per ms: the latency phase's readings (stamped at publish) follow it
    as at home. (Readings from a fixed day a year back had every home's detectors close 370 days at the first
    tick of "now", minutes of work that belong to no real gateway.)"""
    t0_ms = time.time_ns() // 1_000_000 - BACKLOG_AGE_MS
    out = []
    for i in range(count):
        n = i * workers + worker
        home = f"home{n % homes:05d}"
        body = {"occupancy": bool(n & 1), "battery": 90, "linkquality": 110,
                "last_seen": t0_ms + n if not stamp_now else 0}
        out.append((f"telecare/{home}/pir{n % 7}", orjson.dumps(body)))
    return out


def publisher(host: str, port: int, worker: int, workers: int, count: int, homes: int, rate: float | None
              ) -> None:
    """One publisher process: QoS 1, ``count`` messages, paced at ``rate``/s when given."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{worker}-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    messages = payloads(worker, workers, count, homes, stamp_now=rate is not None)
    started = time.perf_counter()
    infos = []
    for i, (topic, body) in enumerate(messages):
        if rate is not None:
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = body.replace(b'"last_seen":0', b'"last_seen":%d' % (time.time_ns() // 1_000_000))
        infos.append(client.publish(topic, body, qos=1))
        if len(infos) >= 20_000:
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def publish_all(broker: Mosquitto, total: int, homes: int, processes: int, rate: float | None = None) -> float:
    share = total // processes
    ctx = mp.get_context("spawn")  # never fork a process with the gateway's threads running
    procs = [ctx.Process(target=publisher, args=(broker.host, broker.port, w, processes, share, homes,
                                                rate / processes if rate else None)) for w in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"publisher failed with exit code {p.exitcode}")
    return time.perf_counter() - started


SUB = ["mosquitto_sub", "-q", "1", "-t", "telecare/#", "-V", "mqttv5"]
PAHO_CEILING_ID = "bench-paho-ceiling"


def sub_args(broker: Mosquitto) -> list[str]:
    return [SUB[0], "-h", broker.host, "-p", str(broker.port), *SUB[1:]]


def paho_session(broker: Mosquitto, *, keep: bool) -> mqtt.Client:
    """Connect the paho ceiling client: ``keep`` resumes (or makes) its hour-long session, else ends it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=PAHO_CEILING_ID, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600 if keep else 0
    client.connect(broker.host, broker.port, clean_start=not keep, properties=props)
    return client


def paho_register(broker: Mosquitto) -> None:
    client = paho_session(broker, keep=True)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.loop_start()
    client.subscribe("telecare/#", qos=1)
    if not subscribed.wait(10):  # the SUBACK: from here the session holds the subscription
        raise SystemExit("the paho ceiling client's subscription was not acknowledged")
    client.disconnect()
    client.loop_stop()


def paho_drain(broker: Mosquitto, total: int) -> float:
    """One paho client, MQTT 5, draining its session's backlog and doing nothing but acknowledging (paho sends
    the PUBACK when on_message returns): the most a single Python process can take in."""
    client = paho_session(broker, keep=True)
    received = 0
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= total:
            done.set()

    client.on_message = on_message
    started = time.perf_counter()
    client.loop_start()
    if not done.wait(600):
        raise SystemExit(f"paho received {received:,} of {total:,} messages")
    rate = total / (time.perf_counter() - started)
    client.disconnect()
    client.loop_stop()
    end = paho_session(broker, keep=False)  # a clean start ends the session: no queueing for it from now on
    end.disconnect()
    return rate


def ceilings(broker: Mosquitto, total: int, homes: int, processes: int) -> tuple[float, float]:
    """mosquitto_sub, then the paho client, each draining the same backlog queued for its persistent session."""
    sub = [*sub_args(broker), "-c", "-i", "bench-ceiling", "-x", "3600"]
    subprocess.run([*sub, "-E"], check=True)  # register the session, then leave
    paho_register(broker)
    publish_all(broker, total, homes, processes)
    started = time.perf_counter()
    subprocess.run([*sub, "-C", str(total)], check=True, stdout=subprocess.DEVNULL)
    sub_rate = total / (time.perf_counter() - started)
    # A clean start ends the session, so the broker stops queueing for it during the gateway's phases.
    subprocess.run([*sub_args(broker), "-i", "bench-ceiling", "-E"], check=True)
    return sub_rate, paho_drain(broker, total)


# --- Pendant presses: publish to the Pushover request, while other homes' readings stream in


class StampedMessages(list):  # type: ignore[type-arg]
    """The Pushover server's message list, each message's arrival time kept beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}  # user key -> first message's wall time

    def append(self, form: dict[str, str]) -> None:  # type: ignore[override]
        self.arrived.setdefault(form.get("user", ""), time.time())
        super().append(form)


def press_home(i: int) -> str:
    return f"press{i:02d}"


def press_key(i: int) -> str:
    return f"carer{i:02d}".ljust(30, "0")


def add_press_homes(settings: Settings, presses: int) -> None:
    """Homes whose pendant is pressed: each with a resident and a one-step chain to its own carer's key."""
    upgrade(settings.database_url)
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as s:
        for i in range(presses):
            home = press_home(i)
            import_homes(s, parse_description(to_home_description(default_home(home))))
            people.add_resident(s, home, f"Resident {i}")
            carer = people.add_recipient(s, f"Carer {i}", press_key(i))
            people.set_chain(s, home, [(carer.id, 15)])
        s.commit()


def press_pendants(broker: Mosquitto, presses: int, over_s: float, pressed: dict[int, float]) -> None:
    """Press each home's pendant once, spread over ``over_s`` seconds; their publish times into ``pressed``."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pendants", protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    for i in range(presses):
        time.sleep(over_s / presses)
        now = time.time()
        pressed[i] = now
        body = {"action": "single", "battery": 80, "last_seen": int(now * 1000)}
        client.publish(f"telecare/{press_home(i)}/pendant", orjson.dumps(body), qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def press_latencies(server: PushoverServer, pressed: dict[int, float], timeout_s: float) -> list[float]:
    messages = server.messages
    assert isinstance(messages, StampedMessages)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(messages.arrived) < len(pressed):
        time.sleep(0.05)
    missing = [press_home(i) for i in pressed if press_key(i) not in messages.arrived]
    if missing:
        raise SystemExit(f"no Pushover request within {timeout_s:.0f} s for the pendant in {', '.join(missing)}")
    return sorted(messages.arrived[press_key(i)] - t for i, t in pressed.items())


def raised_latencies(settings: Settings, pressed: dict[int, float]) -> list[float]:
    """Publish to the pendant alert recorded (its "raised" timeline entry, at the gateway's clock): the ingest and
    detector part of a press's latency; the rest is the dispatcher's."""
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as s:
        rows = s.execute(select(Alert.home_id, func.min(AlertLog.at)).join(AlertLog, AlertLog.alert_id == Alert.id)
                         .where(Alert.kind == "pendant", AlertLog.what == "raised").group_by(Alert.home_id))
        raised = {home: at.replace(tzinfo=at.tzinfo or UTC).timestamp() for home, at in rows}
    return sorted(raised[press_home(i)] - t for i, t in pressed.items() if press_home(i) in raised)


def nearest_rank(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


# --- Profiling with py-spy


class Profiler:
    """py-spy sampling the given processes until stopped; collapsed stacks, one file per process."""

    def __init__(self, outdir: Path | None) -> None:
        self.outdir = outdir
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, phase: str, pids: dict[str, int]) -> None:
        if self.outdir is None:
            return
        self.outdir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            out = self.outdir / f"{phase}-{name}.txt"
            cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw",
                   "--rate", "100", "--threads", "--nonblocking", "-o", str(out)]
            self.running.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))

    def stop(self) -> None:
        for proc, out in self.running:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            proc.wait(30)
            print(summarise(out))
        self.running.clear()


def summarise(path: Path, top: int = 14) -> str:
    """Share of samples per thread, and the functions (inclusive) that take the most of each busy thread."""
    if not path.exists():
        return f"  profile  {path.name}: no samples (py-spy failed?)"
    by_thread: Counter[str] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].partition(": ")[2] or frames[0]  # "thread (905): registry"
        by_thread[thread] += int(count)
        for frame in dict.fromkeys(f.rpartition(":")[0] + ")" for f in frames[1:]):  # "f (file.py:12)", line off
            inclusive[(thread, frame)] += int(count)
    total = sum(by_thread.values()) or 1
    lines = [f"  profile  {path.name}: {total:,} samples; threads " +
             ", ".join(f"{t} {n / total:.0%}" for t, n in by_thread.most_common(6))]
    for (thread, frame), n in inclusive.most_common(top):
        lines.append(f"           {n / total:5.1%}  {thread}: {frame}")
    return "\n".join(lines)


AGE = "telecare_event_age_at_store_seconds"


def gateway_settings(workdir: Path, broker: Mosquitto, vm: VictoriaMetrics, pushover: PushoverServer) -> Settings:
    return Settings(mqtt_url=broker.url, data_dir=workdir, mqtt_client_id="bench-gateway",  # type: ignore[call-arg]
                    influx_url=vm.url, influx_token="bench", influx_org="telecare", influx_bucket="readings",
                    pushover_url=pushover.url, pushover_token="a" * 30)


def run_gateway(settings: Settings) -> Gateway:
    gw = Gateway(settings)
    gw.start()
    deadline = time.monotonic() + 20
    while gw.sample("telecare_mqtt_connected") != 1:
        if time.monotonic() > deadline:
            raise SystemExit("gateway did not connect")
        time.sleep(0.05)
    return gw


def wait_stored(journal_path: Path, entries: int, timeout_s: float) -> None:
    """Until the readings-store writer's journal position reaches ``entries``: exact, polled every 10 ms."""
    conn = sqlite3.connect(journal_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = conn.execute("SELECT seq FROM positions WHERE consumer = 'store'").fetchone()
        if row and row[0] >= entries:
            return
        time.sleep(0.01)
    raise SystemExit(f"the gateway did not store {entries:,} readings within {timeout_s:.0f} s")


def age_buckets(gw: Gateway) -> list[tuple[float, float]]:
    """The event-age histogram's cumulative buckets: (upper bound in s, count)."""
    for family in gw.metrics.registry.collect():
        if family.name == AGE:
            return [(float(s.labels["le"]), s.value) for s in family.samples if s.name == AGE + "_bucket"]
    return []


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """Like PromQL's histogram_quantile over what was observed between the two readings of the buckets."""
    buckets = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = buckets[-1][1]
    rank, lower, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = le, count
    return lower


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--latency-rate", type=float, default=5000.0, help="messages/s for the latency phase")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--presses", type=int, default=20, help="pendant presses timed during the latency phase")
    ap.add_argument("--profile", type=Path, help="sample both processes with py-spy; collapsed stacks here")
    args = ap.parse_args(argv)
    n = args.readings - args.readings % args.publishers
    profiler = Profiler(args.profile)

    with tempfile.TemporaryDirectory(prefix="telecare-bench-") as tmp:
        workdir = Path(tmp)
        pushover = PushoverServer()
        pushover.messages = StampedMessages()
        pushover.users |= {press_key(i) for i in range(args.presses)}
        pushover.start()
        with Mosquitto(workdir / "mosquitto") as broker, VictoriaMetrics(workdir / "vm") as vm:
            print(f"ingest benchmark: {n:,} readings from {args.homes:,} homes, {args.publishers} publishers")
            sub_rate, paho_rate = ceilings(broker, n, args.homes, args.publishers)
            print(f"  ceiling  mosquitto_sub drains     {sub_rate:>10,.0f} msg/s")
            print(f"  ceiling  paho client, acks only   {paho_rate:>10,.0f} msg/s")

            settings = gateway_settings(workdir / "gw", broker, vm, pushover)
            add_press_homes(settings, args.presses)
            run_gateway(settings).stop()  # create the persistent session, then queue the backlog
            publish_all(broker, n, args.homes, args.publishers)
            started = time.perf_counter()
            gw = run_gateway(settings)
            assert gw.worker._process is not None and gw.worker._process.pid is not None
            pids = {"ingest": os.getpid(), "worker": gw.worker._process.pid}
            profiler.start("drain", pids)
            wait_stored(settings.journal_path, n, 600)
            gw_rate = n / (time.perf_counter() - started)
            profiler.stop()
            print(f"  gateway  drains and stores      {gw_rate:>10,.0f} readings/s")
            print(f"  ratio    gateway / mosquitto_sub {gw_rate / sub_rate:>10.2f}")
            print(f"  ratio    gateway / paho          {gw_rate / paho_rate:>10.2f}")

            count = int(args.latency_rate * args.latency_seconds)
            count -= count % args.publishers
            idle_rate = n / wait_idle(gw, started)
            print(f"  gateway  all consumers caught up {idle_rate:>10,.0f} readings/s (registry, detectors)")
            before = age_buckets(gw)
            pressed: dict[int, float] = {}
            presser = threading.Thread(target=press_pendants,
                                       args=(broker, args.presses, args.latency_seconds * 0.9, pressed))
            profiler.start("latency", pids)
            presser.start()
            publish_all(broker, count, args.homes, args.publishers, rate=args.latency_rate)
            presser.join()
            wait_stored(settings.journal_path, n + count + args.presses, 60)
            profiler.stop()
            time.sleep(1)  # the worker's metrics file is rewritten every 0.25 s
            after = age_buckets(gw)
            presses = press_latencies(pushover, pressed, 60)
            gw.stop()
            pushover.stop()
            p50, p99 = quantile(before, after, 0.5) * 1000, quantile(before, after, 0.99) * 1000
            print(f"  latency  at {args.latency_rate:,.0f} msg/s publish→stored  p50 {p50:,.0f} ms  "
                  f"p99 {p99:,.0f} ms  ({count:,} readings; from the gateway's event-age histogram)")
            print(f"  pendant  publish→Pushover request  p50 {nearest_rank(presses, 0.5) * 1000:,.0f} ms  "
                  f"p99 {nearest_rank(presses, 0.99) * 1000:,.0f} ms  (nearest rank of {len(presses)} presses, "
                  f"max {presses[-1] * 1000:,.0f} ms)")
            raised = raised_latencies(settings, pressed)
            if raised:
                print(f"           of which publish→alert raised p50 {nearest_rank(raised, 0.5) * 1000:,.0f} ms  "
                      f"p99 {nearest_rank(raised, 0.99) * 1000:,.0f} ms (ingest and detectors; the rest is the "
                      "dispatcher's)")
            stored_vm = vm.count('{__name__="reading_occupancy"}')
            print(f"  check    points in the store     {stored_vm:>10,} (expected {n + count:,})")


def wait_idle(gw: Gateway, started: float) -> float:
    """Until every consumer has caught up (a backlog left to the detectors is not the latency phase's);
    returns the seconds since ``started``."""
    deadline = time.monotonic() + 180
    while any(gw.journal.lag(c) for c in ("store", "registry", "detect")):
        if time.monotonic() > deadline:
            raise SystemExit("the worker's consumers did not catch up within 180 s of the drain")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    time.sleep(1)  # the worker's metrics file is rewritten every 0.25 s
    return elapsed


if __name__ == "__main__":
    main()
