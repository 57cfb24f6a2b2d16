"""Simulator benchmark: homes simulated per CPU-second, and messages published per second.

    python bench/sim.py [--homes 1000] [--days 1]

1. generation: ``--homes`` homes for ``--days`` days (timeline, sensors, zigbee2mqtt payloads), CPU time of
   this process; from it, how many homes one process can keep up with at real time;
2. publishing: the same messages to a local Mosquitto (started here) as fast as possible, QoS 1, next to the
   baseline of publishing the same number of fixed payloads with the same client (the client's ceiling).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.services import Mosquitto
from sensors_sim.generate import DAY_MS, Simulation, homes_for, start_of
from sensors_sim.publish import MqttPublisher, Outgoing, device_messages, play, with_clock
from sensors_sim.sensors import Radio


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=1)
    args = ap.parse_args(argv)
    homes = homes_for(args.homes, None)
    start = start_of(date(2026, 1, 5))

    cpu = time.process_time()
    messages = list(with_clock(device_messages(Simulation(homes, start, args.days, seed=1).observations(),
                                               Radio(None, np.random.default_rng(1))), speed=None))
    cpu = time.process_time() - cpu
    readings = sum(1 for m in messages if m.topic.startswith("telecare/"))
    home_days = args.homes * args.days
    per_home_s = readings / home_days / (DAY_MS / 1000)
    print(f"simulator benchmark: {args.homes:,} homes x {args.days} day(s), {readings:,} readings "
          f"({readings / home_days:,.0f} per home-day, {per_home_s:.3f}/s per home)")
    print(f"  generation   {home_days / cpu:>10,.1f} home-days per CPU-second ({cpu:,.1f} s)")
    print(f"  real time    {home_days / cpu * 86_400:>10,.0f} homes one process keeps up with (generation)")

    with tempfile.TemporaryDirectory(prefix="telecare-bench-sim-") as tmp, Mosquitto(Path(tmp) / "m") as broker:
        baseline = [Outgoing(0, "telecare/bench/x", b'{"occupancy":true}')] * len(messages)
        for label, stream in (("baseline", baseline), ("simulator", messages)):
            publisher = MqttPublisher(broker.url)
            started = time.perf_counter()
            play(stream, publisher.send, speed=None)
            publisher.flush()
            rate = len(stream) / (time.perf_counter() - started)
            publisher.close()
            print(f"  publish      {rate:>10,.0f} messages/s  ({label})")
        print(f"  real time    {rate / per_home_s:>10,.0f} homes one publisher keeps up with (publishing)")


if __name__ == "__main__":
    main()
