"""Cluster-mode benchmark: three NATS servers, PostgreSQL, VictoriaMetrics (InfluxDB v2 writes), the local Pushover
server, and ``telecare gateway`` workers in cluster mode (``bench.cluster_fleet``), on this machine.

    python bench/cluster.py [--backlog 20000] [--homes 200] [--workers 1,2,3] [--presses 20] [--json]
    python bench/cluster.py --quick          # a smaller run, under 2 minutes

It measures, in one run:

1. throughput: for each worker count W, W workers start and share the partitions out; they are paused (SIGSTOP)
   while a backlog of ``--backlog`` readings (``--homes`` homes, every partition) is queued in the readings
   stream, then let go together to drain it. The rate is taken between 10 % and 90 % of the backlog stored (the
   workers' ``telecare_readings_stored_total``); its ratio to one worker's rate is printed. CPU per stored reading: the
   workers' user and system time (their /proc times) over the same window, divided by the readings stored in it;
   then the whole backlog is checked to be in VictoriaMetrics, once;
2. pendant-to-Pushover latency on three workers: ``--presses`` presses, one home each (a resident with a
   one-step chain to a carer), timed from the hub's publish to the request reaching the Pushover server, while
   hubs publish readings in the background; once with no fault (once the partitions' share has settled: a
   partition moving from a worker to another holds its messages for the move, up to a lease keeper's tick), once
   during a worker's ``kill -9`` (presses from the kill on, for ``--fault-s`` seconds: those of the dead worker's
   partitions wait for the survivors' next lease keeper tick, up to 3 s).

PostgreSQL: a fresh database on ``--pg-admin-url`` (default as the tests, ``TELECARE_TEST_PG_URL``), dropped after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: the repository root on the path, as ``python -m`` would
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cluster_fleet import Fleet, HubConnection, carer_key, start_hubs, wait

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
READINGS_PER_HOME_S = 0.022  # docs/scale-out.md, "Sizing on paper"
PEAK_FACTOR = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=20_000, help="readings queued before each drain")
    parser.add_argument("--homes", type=int, default=200, help="homes the backlog is spread over")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to measure, comma-separated")
    parser.add_argument("--presses", type=int, default=20, help="pendant presses timed with no fault")
    parser.add_argument("--fault-s", type=float, default=15.0, help="seconds of presses after the worker's kill")
    parser.add_argument("--batch-max", type=int, default=500, help="TELECARE_BATCH_MAX of the workers")
    parser.add_argument("--quick", action="store_true", help="a small run (under 2 minutes)")
    parser.add_argument("--workdir", type=Path, help="where the services keep their files (default: a temp dir)")
    parser.add_argument("--pg-admin-url", default=os.environ.get("TELECARE_TEST_PG_URL") or DEFAULT_PG_ADMIN_URL,
                        help="a PostgreSQL URL whose user may CREATE DATABASE")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    try:
        args.worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--workers: comma-separated counts, e.g. 1,2,3 (got {args.workers!r})")
    if not args.worker_counts or min(args.worker_counts) < 1 or max(args.worker_counts) > 16:
        parser.error("--workers: counts from 1 to 16 (the partitions)")
    if args.quick:
        # Presses for 6 s from the kill on: a dead worker's partitions move at the survivors' next tick (3 s).
        args.backlog, args.homes, args.presses, args.fault_s = 400, 48, 6, 6.0
    if args.backlog < 100 or args.homes < 1 or args.presses < 1:
        parser.error("--backlog at least 100, --homes and --presses at least 1")
    return args


def create_stream(fleet: Fleet) -> None:
    """The readings stream as a worker creates it at start: hub messages before it exists are captured by none."""
    from gateway.cluster.stream import JetStreamLink, StreamOptions

    link = JetStreamLink(fleet.nats.urls, StreamOptions(partitions=16))
    link.start()
    link.close()


def queue_backlog(fleet: Fleet, prefix: str, count: int, homes: int) -> None:
    """``count`` readings of ``homes`` homes, every one PUBACKed, over the three servers' MQTT ports."""
    per_server: list[list[tuple[str, bytes]]] = [[] for _ in fleet.nats.servers]
    # Event times of the last hour (each reading its own): readings from long ago would be homes gone silent.
    start_ms = int(time.time() * 1000) - 3_600_000
    for i in range(count):
        home = f"{prefix}-{i % homes}"
        payload = orjson.dumps({"temperature": 20 + (i % 100) / 10, "last_seen": start_ms + i})
        per_server[(i % homes) % len(per_server)].append((f"telecare/{home}/thermo", payload))

    failures: list[BaseException] = []

    def send(port: int, messages: list[tuple[str, bytes]]) -> None:
        try:
            publish_all(port, messages)
        except BaseException as e:  # reported below, by the main thread
            failures.append(e)

    def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
        connection = connect(port, f"bench-{prefix}-{port}")
        try:
            for start in range(0, len(messages), 500):
                mids = [connection.publish(t, p) for t, p in messages[start:start + 500]]
                if len(connection.wait_acked(mids, 60)) != len(mids):
                    raise RuntimeError(f"the NATS server on MQTT port {port} did not acknowledge the backlog")
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(server.mqtt_port, messages))
               for server, messages in zip(fleet.nats.servers, per_server, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"queueing the backlog failed: {failures}")


def connect(port: int, client_id: str, timeout_s: float = 30.0) -> HubConnection:
    """A hub connection, retried: right after the servers start (or one dies), a CONNECT can time out while the
    MQTT streams elect their leaders."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return HubConnection(port, client_id, 5)
        except (ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise


def stored(fleet: Fleet) -> float:
    return sum(w.metric("telecare_readings_stored_total") or 0 for w in fleet.live_workers)


def drain(fleet: Fleet, workers: int, args: argparse.Namespace) -> dict[str, float]:
    """Start ``workers`` workers and let them share the partitions, queue a backlog while they are paused, let them
    go and time the 10-90 % window; the workers are stopped after. Paused, not yet started: workers starting
    together take partitions and give them up again over their first ticks, and the window would time that
    (a partition moving waits a tick) rather than the workers' pace. The pause stays inside their TTL (9 s), so
    they resume owning what they owned."""
    prefix = f"w{workers}"
    before = fleet.stored_count()
    started = [fleet.add_worker() for _ in range(workers)]
    fleet.wait_partitions_shared()
    wait_share_settled(fleet, steady_s=4.0)
    for worker in started:
        worker.pause()
    queued_at = time.monotonic()
    try:
        queue_backlog(fleet, prefix, args.backlog, args.homes)
    finally:
        for worker in started:
            worker.resume()
    queue_s = time.monotonic() - queued_at
    low, high = 0.1 * args.backlog, 0.9 * args.backlog
    marks: dict[str, tuple[float, float, float]] = {}
    deadline = time.monotonic() + 60 + args.backlog / 5
    while "high" not in marks:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} worker(s) stored {stored(fleet):.0f} of the backlog of {args.backlog} "
                               f"in {60 + args.backlog / 5:.0f} s\n{fleet.logs()}")
        done = stored(fleet)
        now, cpu = time.monotonic(), sum(w.cpu_seconds() for w in started)
        if "low" not in marks and done >= low:
            marks["low"] = (now, cpu, done)
        elif "low" in marks and done >= high:
            marks["high"] = (now, cpu, done)
        time.sleep(0.1)
    wait(lambda: fleet.stored_count() - before >= args.backlog, 60, "the whole backlog in the readings store")
    in_store = fleet.stored_count() - before
    for worker in started:
        worker.stop()
    (t0, cpu0, n0), (t1, cpu1, n1) = marks["low"], marks["high"]
    return {"workers": workers, "readings_per_s": (n1 - n0) / (t1 - t0),
            "cpu_ms_per_reading": 1000 * (cpu1 - cpu0) / (n1 - n0), "stored": in_store, "queue_s": queue_s}


class PushoverClock:
    """When each carer's first message reached the Pushover server (polled every 20 ms)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.first: dict[str, float] = {}
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._finish.wait(0.02):
            now = time.time()
            for message in list(self.fleet.pushover.messages):
                self.first.setdefault(message.get("user", ""), now)

    def close(self) -> None:
        self._finish.set()
        self._thread.join()


def presses(fleet: Fleet, clock: PushoverClock, name: str, count: int, interval_s: float) -> list[float]:
    """``count`` presses (one new home each, over the servers), ``interval_s`` apart; their latencies in seconds."""
    homes = [f"{name}-{i}" for i in range(count)]
    for home in homes:
        fleet.add_home(home)
    connections = [connect(s.mqtt_port, f"presser-{name}-{i}") for i, s in enumerate(fleet.nats.servers)
                   if s.running]
    published: dict[str, float] = {}
    try:
        for i, home in enumerate(homes):
            payload = orjson.dumps({"action": "single", "last_seen": int(time.time() * 1000)})
            published[home] = time.time()
            connections[i % len(connections)].publish(f"telecare/{home}/pendant", payload)
            time.sleep(interval_s)
        wait(lambda: all(carer_key(h) in clock.first for h in homes), 60, f"every press of {name} at Pushover",
             fleet.logs)
    finally:
        for connection in connections:
            connection.close()
    return [clock.first[carer_key(h)] - published[h] for h in homes]


def wait_share_settled(fleet: Fleet, steady_s: float = 7.0, timeout_s: float = 60.0) -> None:
    """Until the live workers own the 16 partitions in a balanced share (no two differing by more than one) that
    stayed the same for ``steady_s`` (two lease keeper ticks): workers started together take partitions and give
    them up again over their first ticks."""
    deadline = time.monotonic() + timeout_s
    last: list[float] | None = None
    since = time.monotonic()
    while True:
        owned = [w.metric("telecare_partitions_owned") or 0 for w in fleet.live_workers]
        if owned != last:
            last, since = owned, time.monotonic()
        elif sum(owned) == 16 and max(owned) - min(owned) <= 1 and time.monotonic() - since >= steady_s:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the partitions' share not settled within {timeout_s:.0f} s (owned: {owned})\n"
                                 f"{fleet.logs()}")
        time.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latencies(fleet: Fleet, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    for _ in range(3):
        fleet.add_worker()
    fleet.wait_partitions_shared()
    wait_share_settled(fleet, steady_s=4.0 if args.quick else 7.0)
    clock = PushoverClock(fleet)
    hubs = start_hubs([f"background-{i}" for i in range(6)], fleet.nats.servers, rate=5)
    try:
        calm = presses(fleet, clock, "calm", args.presses, 0.5)
        holder = fleet.dispatcher_holder()
        victim = next(w for w in fleet.live_workers if w is not holder)
        victim.kill()
        during = presses(fleet, clock, "kill", max(2, int(args.fault_s)), 1.0)
    finally:
        for hub in hubs:
            hub.finish()
        clock.close()
    return {name: {"presses": len(values), "p50_s": percentile(values, 0.5), "p99_s": percentile(values, 0.99),
                   "max_s": max(values)}
            for name, values in (("no_fault", calm), ("worker_kill_9", during))}


def sizing(per_worker: float) -> list[dict[str, float]]:
    """Workers needed at the measured one-worker rate (peak load), for 10k, 100k and 1M homes."""
    return [{"homes": homes, "peak_readings_per_s": homes * READINGS_PER_HOME_S * PEAK_FACTOR,
             "workers_at_measured_rate": math.ceil(homes * READINGS_PER_HOME_S * PEAK_FACTOR / per_worker)}
            for homes in (10_000, 100_000, 1_000_000)]


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    with Fleet.start(workdir, args.pg_admin_url, batch_max=args.batch_max) as fleet:
        create_stream(fleet)
        drains = [drain(fleet, w, args) for w in args.worker_counts]
        one = next((d["readings_per_s"] for d in drains if d["workers"] == 1), drains[0]["readings_per_s"])
        for d in drains:
            d["ratio_to_one"] = d["readings_per_s"] / one
        latency = latencies(fleet, args)
    return {"backlog": args.backlog, "homes": args.homes, "cpus": os.cpu_count(), "throughput": drains,
            "latency": latency, "sizing": sizing(one), "seconds": time.monotonic() - started}


def report(figures: dict[str, Any]) -> str:
    lines = [f"cluster mode on {figures['cpus']} CPUs, backlog {figures['backlog']} readings of {figures['homes']} "
             "homes, three NATS servers, VictoriaMetrics, PostgreSQL"]
    for d in figures["throughput"]:
        # Paused past their TTL, several workers may take each other's partitions as they resume (one alone keeps
        # its own: nobody else took them).
        moved = ": past the TTL, partitions may have moved" if d["queue_s"] > 8 and d["workers"] > 1 else ""
        lines.append(f"  {d['workers']} worker(s): {d['readings_per_s']:8.0f} readings/s stored  "
                     f"(x{d['ratio_to_one']:.2f} of one)  {d['cpu_ms_per_reading']:.2f} ms CPU per reading  "
                     f"(queued in {d['queue_s']:.1f} s{moved})")
    for name, f in figures["latency"].items():
        lines.append(f"  pendant to Pushover, {name}: p50 {f['p50_s']:.2f} s, p99 {f['p99_s']:.2f} s, "
                     f"max {f['max_s']:.2f} s ({f['presses']} presses)")
    for row in figures["sizing"]:
        lines.append(f"  {row['homes']:>9,} homes: {row['peak_readings_per_s']:8,.0f} readings/s at peak, "
                     f"{row['workers_at_measured_rate']} worker(s) at one worker's measured rate")
    lines.append(f"  ({figures['seconds']:.0f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.workdir:
            figures = run(args, args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
                figures = run(args, Path(tmp))
    except ConnectionError as e:
        print(f"bench/cluster.py: {e}", file=sys.stderr)
        return 2
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
