"""Ingest benchmark: readings stored per second by one gateway, next to the broker's raw ceiling.

    python bench/ingest.py [--readings 100000] [--homes 1000] [--publishers 4] [--latency-rate 5000]

Starts its own Mosquitto and VictoriaMetrics on free ports (InfluxDB v2 writes), then measures, in one run:

1. ceiling: ``mosquitto_sub`` draining a backlog of N QoS 1 messages queued for its persistent session;
2. gateway: one gateway (its ingest process and its worker) draining the same backlog into the readings
   store, timed from start until the writer's journal position passes the last reading;
3. latency: publish-to-stored latency (p50, p99) with publishers pacing at ``--latency-rate`` messages/s,
   each message stamped with its publish time as ``last_seen``.

Backlogs are queued first (DESIGN.md: one paho publisher tops out near 5,000/s), by several publisher processes.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.bootstrap import Gateway
from gateway.config import Settings
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


AGE = "telecare_event_age_at_store_seconds"


def gateway_settings(workdir: Path, broker: Mosquitto, vm: VictoriaMetrics) -> Settings:
    return Settings(mqtt_url=broker.url, data_dir=workdir, mqtt_client_id="bench-gateway",  # type: ignore[call-arg]
                    influx_url=vm.url, influx_token="bench", influx_org="telecare", influx_bucket="readings")


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
    args = ap.parse_args(argv)
    n = args.readings - args.readings % args.publishers

    with tempfile.TemporaryDirectory(prefix="telecare-bench-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "mosquitto") as broker, VictoriaMetrics(workdir / "vm") as vm:
            print(f"ingest benchmark: {n:,} readings from {args.homes:,} homes, {args.publishers} publishers")
            sub_rate = ceiling(broker, n, args.homes, args.publishers)
            print(f"  ceiling  mosquitto_sub drains     {sub_rate:>10,.0f} msg/s")

            settings = gateway_settings(workdir / "gw", broker, vm)
            run_gateway(settings).stop()  # create the persistent session, then queue the backlog
            publish_all(broker, n, args.homes, args.publishers)
            started = time.perf_counter()
            gw = run_gateway(settings)
            wait_stored(settings.journal_path, n, 600)
            gw_rate = n / (time.perf_counter() - started)
            print(f"  gateway  drains and stores      {gw_rate:>10,.0f} readings/s")
            print(f"  ratio    gateway / ceiling       {gw_rate / sub_rate:>10.2f}")

            count = int(args.latency_rate * args.latency_seconds)
            count -= count % args.publishers
            time.sleep(1)  # the worker's metrics file is rewritten every 0.25 s
            before = age_buckets(gw)
            publish_all(broker, count, args.homes, args.publishers, rate=args.latency_rate)
            wait_stored(settings.journal_path, n + count, 60)
            time.sleep(1)
            after = age_buckets(gw)
            gw.stop()
            p50, p99 = quantile(before, after, 0.5) * 1000, quantile(before, after, 0.99) * 1000
            print(f"  latency  at {args.latency_rate:,.0f} msg/s publish→stored  p50 {p50:,.0f} ms  "
                  f"p99 {p99:,.0f} ms  ({count:,} readings; from the gateway's event-age histogram)")
            stored_vm = vm.count('{__name__="reading_occupancy"}')
            print(f"  check    points in the store     {stored_vm:>10,} (expected {n + count:,})")


if __name__ == "__main__":
    main()
