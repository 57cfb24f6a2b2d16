"""Ingest benchmark: readings stored per second by one gateway, next to the broker's raw ceiling.

    python bench/ingest.py [--readings 100000] [--homes 1000] [--publishers 4] [--latency-rate 5000]

Starts its own Mosquitto and VictoriaMetrics on free ports (InfluxDB v2 writes), then measures, in one run:

1. ceiling: ``mosquitto_sub`` draining a backlog of N QoS 1 messages queued for its persistent session;
2. gateway: the gateway (this process, its real threads) draining the same backlog into the readings store,
   timed from start until the last point is written;
3. latency: publish-to-stored latency (p50, p99) with publishers pacing at ``--latency-rate`` messages/s,
   each message stamped with its publish time as ``last_seen``.

Backlogs are queued first (DESIGN.md: one paho publisher tops out near 5,000/s), by several publisher processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.bootstrap import Gateway
from gateway.config import Settings
from gateway.stores.readings.base import Point, ReadingStore
from tests.services import Mosquitto, VictoriaMetrics

T0_MS = 1_764_000_000_000


def payloads(worker: int, workers: int, count: int, homes: int, stamp_now: bool) -> list[tuple[str, bytes]]:
    """Workers interleave: together they send readings n = 0, 1, 2 ..., each device's times rising as at home."""
    out = []
    for i in range(count):
        n = i * workers + worker
        home = f"home{n % homes:05d}"
        body = {"occupancy": bool(n & 1), "battery": 90, "linkquality": 110,
                "last_seen": T0_MS + n if not stamp_now else 0}
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


def ceiling(broker: Mosquitto, total: int, homes: int, processes: int) -> float:
    """mosquitto_sub draining a backlog queued for its persistent session: the broker's raw rate here."""
    sub = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-c", "-i", "bench-ceiling",
           "-t", "telecare/#", "-V", "mqttv5", "-x", "3600"]
    subprocess.run([*sub, "-E"], check=True)  # register the session, then leave
    publish_all(broker, total, homes, processes)
    started = time.perf_counter()
    subprocess.run([*sub, "-C", str(total)], check=True, stdout=subprocess.DEVNULL)
    rate = total / (time.perf_counter() - started)
    # A clean start ends the session, so the broker stops queueing for it during the gateway's phases.
    subprocess.run([*sub[:sub.index("-c")], "-i", "bench-ceiling", "-t", "telecare/#", "-E"], check=True)
    return rate


class TimingStore:
    """Wraps the real store: counts points and records publish-to-stored latency from each point's time."""

    def __init__(self, inner: ReadingStore) -> None:
        self.inner = inner
        self.stored = 0
        self.latencies_ms: list[int] = []
        self.record = False
        self.done = threading.Event()
        self.target = 0

    def write(self, points: Sequence[Point]) -> None:
        self.inner.write(points)
        now = time.time_ns() // 1_000_000
        if self.record:
            self.latencies_ms.extend(now - p.time_ms for p in points)
        self.stored += len(points)
        if self.target and self.stored >= self.target:
            self.done.set()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def gateway_settings(workdir: Path, broker: Mosquitto, vm: VictoriaMetrics) -> Settings:
    return Settings(mqtt_url=broker.url, data_dir=workdir, mqtt_client_id="bench-gateway",  # type: ignore[call-arg]
                    influx_url=vm.url, influx_token="bench", influx_org="telecare", influx_bucket="readings")


def run_gateway(settings: Settings, store: TimingStore) -> Gateway:
    gw = Gateway(settings, store=store)
    gw.start()
    deadline = time.monotonic() + 10
    while gw.metrics.mqtt_connected._value.get() != 1:
        if time.monotonic() > deadline:
            raise SystemExit("gateway did not connect")
        time.sleep(0.05)
    return gw


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--latency-rate", type=float, default=5000.0, help="messages/s for the latency phase")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    n = args.readings - args.readings % args.publishers

    with tempfile.TemporaryDirectory(prefix="telecare-bench-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "mosquitto") as broker, VictoriaMetrics(workdir / "vm") as vm:
            print(f"ingest benchmark: {n:,} readings from {args.homes:,} homes, {args.publishers} publishers")
            sub_rate = ceiling(broker, n, args.homes, args.publishers)
            print(f"  ceiling  mosquitto_sub drains     {sub_rate:>10,.0f} msg/s")

            settings = gateway_settings(workdir / "gw", broker, vm)
            from gateway.bootstrap import make_reading_store

            store = TimingStore(make_reading_store(settings))
            run_gateway(settings, store).stop()  # create the persistent session, then queue the backlog
            publish_all(broker, n, args.homes, args.publishers)
            store.target = n
            started = time.perf_counter()
            gw = run_gateway(settings, store)
            if not store.done.wait(600):
                raise SystemExit(f"gateway stored only {store.stored:,} of {n:,}")
            gw_rate = n / (time.perf_counter() - started)
            print(f"  gateway  drains and stores      {gw_rate:>10,.0f} readings/s")
            print(f"  ratio    gateway / ceiling       {gw_rate / sub_rate:>10.2f}")

            count = int(args.latency_rate * args.latency_seconds)
            count -= count % args.publishers
            store.record = True
            store.target = store.stored + count
            store.done.clear()
            publish_all(broker, count, args.homes, args.publishers, rate=args.latency_rate)
            store.done.wait(60)
            gw.stop()
            lat = sorted(store.latencies_ms)
            p50 = statistics.median(lat)
            p99 = lat[int(len(lat) * 0.99)]
            print(f"  latency  at {args.latency_rate:,.0f} msg/s publish→stored  p50 {p50:,.0f} ms  "
                  f"p99 {p99:,.0f} ms  ({len(lat):,} readings)")
            stored_vm = vm.count('{__name__="reading_occupancy"}')
            print(f"  check    points in the store     {stored_vm:>10,} (expected {n + count:,})")


if __name__ == "__main__":
    main()
