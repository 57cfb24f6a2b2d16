"""End to end: real Mosquitto → gateway → real VictoriaMetrics (InfluxDB v2 writes), and the registry.

Points carry a distinct last_seen each, so a point is identified by (series, time): VictoriaMetrics runs with
1 ms de-duplication, InfluxDB's overwrite rule, and counting samples counts distinct points.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.services import Mosquitto, VictoriaMetrics
from gateway.db.models import DeadLetter, Device, Home
from gateway.db.session import make_engine, make_session_factory
from gateway.stores.readings.sqlite import SqliteReadingStore
from telecare.processes import Gateway
from tests.e2e.helpers import T0_MS, gateway_settings, publish, readings, settings_env, start_gateway, wait_for

TEMPERATURE = '{__name__="reading_temperature"}'


ROOT = Path(__file__).resolve().parents[2]


def sessions(gw: Gateway) -> Session:
    return make_session_factory(make_engine(gw.settings.database_url))()


@pytest.fixture
def gateway(tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> Iterator[Gateway]:
    gw = start_gateway(gateway_settings(tmp_path, mosquitto, victoria))
    yield gw
    gw.stop()


def test_each_payload_kind_round_trips(gateway: Gateway, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    t = T0_MS
    messages = [
        ("telecare/h1/hall_pir", {"occupancy": True, "battery": 97, "illuminance": 12, "linkquality": 90,
                                  "last_seen": t}),
        ("telecare/h1/front_door", {"contact": False, "battery": 88, "last_seen": t + 1}),
        ("telecare/h1/bed_pad", {"presence": True, "last_seen": t + 2}),
        ("telecare/h1/kettle", {"state": "ON", "power": 2150.5, "energy": 12.25, "last_seen": t + 3}),
        ("telecare/h1/pendant", {"action": "single", "battery": 100, "last_seen": t + 4}),
        ("telecare/h1/lounge_temp", {"temperature": 19.5, "humidity": 48, "last_seen": t + 5}),
        ("telecare/h1/hall_pir/availability", {"state": "offline"}),
        ("telecare/h1/bridge/state", "online"),
        ("telecare/h1/bridge/devices", [
            {"friendly_name": "Coordinator", "ieee_address": "0x00", "type": "Coordinator"},
            {"friendly_name": "hall_pir", "ieee_address": "0x00158d0001a2b3c4", "type": "EndDevice",
             "power_source": "Battery", "definition": {"model": "RTCGQ11LM", "vendor": "Aqara",
                                                       "exposes": [{"property": "occupancy"}]}}]),
    ]
    publish(mosquitto, [(topic, p if isinstance(p, str) else orjson.dumps(p)) for topic, p in messages])

    expected = {"reading_occupancy": 1, "reading_contact": 0, "reading_presence": 1, "reading_state": 1,
                "reading_power": 2150.5, "reading_temperature": 19.5, "reading_humidity": 48,
                "availability_online": 0, "hub_online": 1}

    def stored() -> dict[str, float]:
        return {s["metric"]["__name__"]: s["values"][-1] for s in victoria.export('{home="h1"}')}

    wait_for(lambda: expected.keys() <= stored().keys(), 30, "every kind in the store")
    got = stored()
    assert {k: got[k] for k in expected} == expected
    series = {s["metric"]["__name__"]: s for s in victoria.export('{home="h1"}')}
    assert series["reading_occupancy"]["metric"]["kind"] == "motion"
    assert series["reading_occupancy"]["timestamps"] == [t]
    assert series["reading_power"]["metric"] == {"__name__": "reading_power", "home": "h1", "device": "kettle",
                                                 "kind": "plug"}

    def registered() -> dict[str, Device]:
        with sessions(gateway) as s:
            return {d.name: d for d in s.scalars(select(Device).where(Device.home_id == "h1"))}

    wait_for(lambda: registered().get("hall_pir") is not None and registered()["hall_pir"].model == "RTCGQ11LM",
             20, "the registry")
    devices = registered()
    assert devices["hall_pir"].kind == "motion" and devices["hall_pir"].battery == 97
    assert devices["hall_pir"].ieee_address == "0x00158d0001a2b3c4" and devices["hall_pir"].available is False
    assert devices["pendant"].kind == "button" and devices["kettle"].kind == "plug"
    with sessions(gateway) as s:
        assert s.get(Home, "h1").hub_online is True


def test_a_burst_of_10000_loses_nothing(gateway: Gateway, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    publish(mosquitto, readings("burst", 10_000))
    wait_for(lambda: victoria.count(TEMPERATURE) >= 10_000, 90, "10,000 readings")
    assert victoria.count(TEMPERATURE) == 10_000
    assert gateway.sample("telecare_messages_received_total") == 10_000


def test_bad_input_is_dead_lettered_counted_and_spares_its_neighbours(
        gateway: Gateway, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    future = T0_MS + 10 * 365 * 24 * 3600 * 1000
    bad = {
        "invalid_json": ("telecare/h2/t0", b"{\"temperature\": "),
        "wrong_type": ("telecare/h2/t0", b'{"temperature": "warm"}'),
        "out_of_range": ("telecare/h2/t0", b'{"humidity": 180}'),
        "too_large": ("telecare/h2/t0", b'{"temperature": 20, "x": "' + b"a" * 70_000 + b'"}'),
        "bad_topic": ("telecare/bad home!/t0", b'{"temperature": 20}'),
        "bad_timestamp": ("telecare/h2/t0", b'{"temperature": 20, "last_seen": "yesterday"}'),
        "not_an_object": ("telecare/h2/t0", b"[1, 2, 3]"),
        "bad_encoding": ("telecare/h2/t0/temperature", b"\xff\xfe"),
    }
    good = readings("h2", 20, device_count=1)
    stream = []
    for i, (topic, payload) in enumerate(bad.values()):
        stream += [good[2 * i], (topic, payload), good[2 * i + 1]]
    stream += good[2 * len(bad):]
    # Not bad (issue 11): a hub clock years ahead costs the event time, never the reading.
    stream.append(("telecare/h2/t0", orjson.dumps({"temperature": 20, "last_seen": future})))
    publish(mosquitto, stream)

    wait_for(lambda: victoria.count('{__name__="reading_temperature",home="h2"}') == 21, 30, "the good readings")
    assert victoria.count('{__name__="reading_clock_skew_ms",home="h2"}') == 1
    assert gateway.sample("telecare_readings_retimed_total", {"reason": "future_timestamp"}) == 1

    def letters() -> dict[str, DeadLetter]:
        with sessions(gateway) as s:
            return {d.reason: d for d in s.scalars(select(DeadLetter))}

    wait_for(lambda: len(letters()) == len(bad), 20, "every dead letter")
    dead = letters()
    assert dead.keys() == bad.keys()
    assert dead["wrong_type"].topic == "telecare/h2/t0" and "temperature" in dead["wrong_type"].detail
    assert dead["invalid_json"].payload == '{"temperature": '
    for reason in bad:
        assert gateway.sample("telecare_messages_rejected_total", {"reason": reason}) == 1, reason


def test_readings_wait_in_the_spool_while_the_store_is_down(
        gateway: Gateway, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    publish(mosquitto, readings("spool", 500))
    wait_for(lambda: victoria.count(TEMPERATURE) == 500, 30, "the first readings")
    victoria.stop()
    publish(mosquitto, readings("spool", 3000, start_ms=T0_MS + 500))
    wait_for(lambda: gateway.sample("telecare_spool_depth") > 0 or gateway.journal.lag("store") >= 3000, 30,
             "the spool to fill")
    wait_for(lambda: gateway.sample("telecare_store_up") == 0, 30, "the store to be seen down")
    time.sleep(2)
    assert gateway.journal.lag("store") == 3000, "nothing may be written while the store is down"
    victoria.start()
    wait_for(lambda: victoria.count(TEMPERATURE) == 3500, 90, "the spool to drain")
    exported = victoria.export(TEMPERATURE)
    stamps = sorted(t for s in exported for t in s["timestamps"])
    assert stamps == list(range(T0_MS, T0_MS + 3500))
    wait_for(lambda: gateway.journal.lag("store") == 0, 10, "the writer to catch up")


def test_broker_restart_mid_stream(gateway: Gateway, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    publish(mosquitto, readings("restart", 2000))
    mosquitto.restart()
    wait_for(lambda: gateway.sample("telecare_mqtt_connected") == 1, 30, "the gateway to reconnect")
    publish(mosquitto, readings("restart", 2000, start_ms=T0_MS + 2000))
    wait_for(lambda: victoria.count(TEMPERATURE) >= 4000, 60, "every reading")
    assert victoria.count(TEMPERATURE) == 4000


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_messages_sent_while_the_gateway_is_down_wait_in_its_session(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, protocol: str) -> None:
    settings = gateway_settings(tmp_path, mosquitto, victoria, mqtt_protocol=protocol)
    start_gateway(settings).stop()
    publish(mosquitto, readings("offline", 1000))
    gw = start_gateway(settings)
    try:
        wait_for(lambda: victoria.count(TEMPERATURE) == 1000, 60, "the queued readings")
    finally:
        gw.stop()


@pytest.mark.slow
def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    settings = gateway_settings(tmp_path, mosquitto, victoria)
    env = {**os.environ, **settings_env(settings)}
    start_gateway(settings).stop()  # make the gateway's persistent session before anything is published

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "telecare", "gateway", "--log-level", "WARNING"],
                                env=env, cwd=ROOT, stderr=open(tmp_path / "gateway.log", "ab"))

    proc = start()
    total = 20_000
    stream = readings("kill", total)
    failures: list[BaseException] = []

    def publish_in_chunks() -> None:
        try:
            for i in range(0, total, 1000):
                publish(mosquitto, stream[i:i + 1000])
        except BaseException as e:
            failures.append(e)

    publisher = threading.Thread(target=publish_in_chunks)
    publisher.start()
    wait_for(lambda: victoria.count(TEMPERATURE) > 2000, 60, "the stream to be flowing")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = victoria.count(TEMPERATURE)
    publisher.join()
    assert not failures, failures
    proc = start()
    try:
        wait_for(lambda: victoria.count(TEMPERATURE) >= total, 120, "every reading after the restart")
        time.sleep(1)
        assert victoria.count(TEMPERATURE) == total
        assert killed_at < total, "the gateway was killed before the stream ended"
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_killed_worker_is_restarted_and_takes_up_where_it_stood(
        gateway: Gateway, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    publish(mosquitto, readings("worker", 2000))
    wait_for(lambda: victoria.count(TEMPERATURE) == 2000, 30, "the first readings")
    process = gateway.worker._process
    assert process is not None and process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    publish(mosquitto, readings("worker", 3000, start_ms=T0_MS + 2000))
    wait_for(lambda: gateway.sample("telecare_worker_restarts_total") == 1, 30, "the worker to be restarted")
    wait_for(lambda: victoria.count(TEMPERATURE) == 5000, 60, "every reading")


def test_metrics_endpoint_serves_ingest_and_worker_metrics(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    gw = start_gateway(gateway_settings(tmp_path, mosquitto, victoria, metrics_port=0))
    try:
        publish(mosquitto, [*readings("m", 10), ("telecare/m/t0", b"{oops")])
        wait_for(lambda: gw.sample("telecare_readings_stored_total") == 10, 30, "the worker's metrics")
        text = urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5).read().decode()
    finally:
        gw.stop()
    assert "telecare_messages_received_total 11.0" in text
    assert 'telecare_messages_rejected_total{reason="invalid_json"} 1.0' in text
    assert "telecare_readings_stored_total 10.0" in text
    assert "telecare_spool_depth 0.0" in text and "telecare_store_up 1.0" in text
    assert 'telecare_consumer_lag{consumer="registry"}' in text and "telecare_worker_up 1.0" in text


def test_a_full_journal_pauses_acknowledgements_and_loses_nothing(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    gw = start_gateway(gateway_settings(tmp_path, mosquitto, victoria, spool_max_entries=1000, batch_max=200))
    try:
        victoria.stop()
        publish(mosquitto, readings("full", 3000))
        wait_for(lambda: gw.sample("telecare_journal_full") == 1, 30, "the journal to fill")
        time.sleep(1)
        assert gw.journal.kept() < 1000 + 200, "the journal must stop growing at its bound (plus one batch)"
        assert gw.sample("telecare_messages_journaled_total") < 3000, "the broker holds the rest"
        victoria.start()
        wait_for(lambda: victoria.count(TEMPERATURE) == 3000, 90, "every reading once the store is back")
        assert gw.sample("telecare_journal_full") == 0
    finally:
        gw.stop()


def test_without_influxdb_readings_go_to_the_embedded_store(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = gateway_settings(tmp_path, mosquitto, None)
    gw = start_gateway(settings)
    try:
        publish(mosquitto, readings("embedded", 100, device_count=1))
        store = SqliteReadingStore(settings.embedded_readings_path)
        wait_for(lambda: len(store.timeline("embedded", T0_MS, T0_MS + 100)) == 100, 30, "the embedded store")
        points = store.timeline("embedded", T0_MS, T0_MS + 100)
        assert points[0].tags == {"home": "embedded", "device": "t0", "kind": "climate"}
        assert points[0].fields == {"temperature": 18.0, "linkquality": 120.0}
    finally:
        gw.stop()


def test_a_gateway_on_simulated_time_follows_the_clock_topic(
        tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics) -> None:
    sim_ms = T0_MS - 86_400_000  # a simulated day long ago (VictoriaMetrics refuses points days ahead of now)
    gw = start_gateway(gateway_settings(tmp_path, mosquitto, victoria, clock="simulated"))
    try:
        publish(mosquitto, [
            ("telecare-sim/clock", orjson.dumps({"time": sim_ms, "speed": 600})),
            ("telecare/sim/t0", orjson.dumps({"temperature": 20, "last_seen": sim_ms + 60_000})),  # fine: 1 min
            # 1 h ahead of simulated time (long before the wall clock's now): kept at (simulated) receipt time
            ("telecare/sim/t0", orjson.dumps({"temperature": 21, "last_seen": sim_ms + 3_600_000})),
            ("telecare/sim/t1", orjson.dumps({"temperature": 22})),  # no last_seen: stamped with simulated time
        ])
        wait_for(lambda: victoria.count('{__name__="reading_temperature",home="sim"}') == 3, 30, "the readings")
        stamps = {s["metric"]["device"]: s["timestamps"] for s in victoria.export('{__name__="reading_temperature"}')}
        assert stamps == {"t0": [sim_ms, sim_ms + 60_000], "t1": [sim_ms]}
        assert gw.sample("telecare_readings_retimed_total", {"reason": "future_timestamp"}) == 1
        assert gw.clock is not None and gw.clock.now_ms() == sim_ms
        assert gw.sample("telecare_messages_rejected_total", {"reason": "bad_timestamp"}) == 0
    finally:
        gw.stop()
