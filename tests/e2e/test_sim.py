"""The simulator through a real Mosquitto: replay round trips, and a simulated run stored by a gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.services import Mosquitto
from gateway.contract import CLOCK_TOPIC, Message, parse
from gateway.db.models import Home
from gateway.db.session import make_engine, make_session_factory
from gateway.stores.readings.sqlite import SqliteReadingStore
from sensors_sim.events import Observation
from sensors_sim.incidents import read_truth_jsonl
from sensors_sim.recordings import read_csv, read_recording, write_csv
from sensors_sim.scenario import default_scenario
from tests.e2e.helpers import gateway_settings, start_gateway, wait_for

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("TELECARE_DATASETS") or ROOT.parent / "shared" / "datasets")
T = 1_767_571_200_000


class Collector:
    """Subscribes to everything and keeps what arrives."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self._keep(m.topic, m.payload)
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([("telecare/#", 1), (CLOCK_TOPIC, 1)])
        self.client.loop_start()
        wait_for(lambda: self.client.is_connected(), 5, "the collector to connect")

    def _keep(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.messages.append((topic, payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def telecare(*args: str, broker: Mosquitto) -> str:
    env = {**os.environ, "TELECARE_MQTT_URL": broker.url}
    done = subprocess.run([sys.executable, "-m", "telecare", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def replayed(collector: Collector, stream: list[Observation]) -> list[Message]:
    wait_for(lambda: sum(t != CLOCK_TOPIC for t, _ in collector.messages) >= len(stream), 60, "every message")
    parsed = [parse(t, p, T, 2**62) for t, p in collector.messages if t != CLOCK_TOPIC]
    assert all(isinstance(m, Message) for m in parsed), [m for m in parsed if not isinstance(m, Message)][:3]
    return parsed  # type: ignore[return-value]


def test_a_neutral_csv_replays_through_mqtt_as_zigbee2mqtt_payloads(tmp_path: Path, mosquitto: Mosquitto) -> None:
    stream = [Observation(T, "flat-1", "hall_pir", "motion", True, "hall", "room"),
              Observation(T + 1000, "flat-1", "front_door", "contact", False, "hall", "front_door"),
              Observation(T + 2000, "flat-1", "kettle_plug", "plug", 2000.0, "kitchen", "kettle"),
              Observation(T + 3000, "flat-1", "pendant", "button", "single", None, "pendant"),
              Observation(T + 4000, "flat-1", "lounge_climate", "climate", 19.5, "living room", None)]
    write_csv(stream, tmp_path / "flat.csv")
    collector = Collector(mosquitto)
    out = telecare("sim", "replay", "--format", "csv", str(tmp_path / "flat.csv"), "--speed", "0", broker=mosquitto)
    assert "published 5 messages from 1 homes" in out
    parsed = replayed(collector, stream)
    collector.close()
    assert [(m.device, m.time_ms) for m in parsed] == [(o.device, o.time_ms) for o in stream]
    assert parsed[0].body["occupancy"] is True and parsed[1].body["contact"] is False
    assert parsed[2].body["power"] == 2000.0 and parsed[3].body["action"] == "single"
    assert parsed[4].body["temperature"] == 19.5
    assert collector.messages[0][0] == CLOCK_TOPIC, "the clock comes before the first reading"


@pytest.mark.parametrize("name", ["kasteren2008-houseA/kasterenSenseData.txt",
                                  "kasteren2010-tl-houses-ABC/houseB.sensors",
                                  "ordonez-uci-adl/OrdonezA_Sensors.txt"])
def test_real_recordings_replay_whole(name: str, tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"{path} is not here (set TELECARE_DATASETS to the datasets folder)")
    stream = read_recording(path).observations
    collector = Collector(mosquitto)
    telecare("sim", "replay", "--format", "ordonez" if "ordonez" in name else "kasteren", str(path),
             "--speed", "0", "--homes-out", str(tmp_path / "home.yaml"), broker=mosquitto)
    parsed = replayed(collector, stream)
    collector.close()
    assert len(parsed) == len(stream)
    assert sorted((m.device, m.time_ms) for m in parsed) == sorted((o.device, o.time_ms) for o in stream)
    assert "homes:" in (tmp_path / "home.yaml").read_text()


def test_a_simulated_run_is_stored_by_a_gateway_on_simulated_time(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = gateway_settings(tmp_path, mosquitto, None, clock="simulated")
    gw = start_gateway(settings)
    try:
        out = telecare("sim", "run", "--homes", "2", "--days", "1", "--start", "2026-01-05", "--speed", "0",
                       "--seed", "7", broker=mosquitto)
        published = int(out.split("published ")[1].split(" ")[0].replace(",", ""))
        assert published > 1000
        store = SqliteReadingStore(settings.embedded_readings_path)

        def stored() -> int:
            return sum(len(store.timeline(h, T - 86_400_000, T + 3 * 86_400_000, limit=100_000))
                       for h in ("sim-00001", "sim-00002"))

        # Each hub also says it is online on bridge/state: not a reading.
        wait_for(lambda: stored() == published - 2, 60, "every simulated reading in the store")
        with make_session_factory(make_engine(settings.database_url))() as s:
            assert s.get(Home, "sim-00001").hub_online is True
        assert gw.sample("telecare_messages_rejected_total", {"reason": "future_timestamp"}) == 0
        assert gw.clock is not None and gw.clock.now_ms() >= T + 86_400_000 - 3_600_000
    finally:
        gw.stop()


def test_export_writes_the_same_homes_as_run_would_publish(tmp_path: Path) -> None:
    out = tmp_path / "two.csv"
    subprocess.run([sys.executable, "-m", "telecare", "sim", "export", "--homes", "2", "--days", "2", "--seed", "3",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    again = tmp_path / "again.csv"
    subprocess.run([sys.executable, "-m", "telecare", "sim", "export", "--homes", "2", "--days", "2", "--seed", "3",
                    "--out", str(again)], cwd=ROOT, check=True, capture_output=True)
    rows = list(read_csv(out))
    assert out.read_bytes() == again.read_bytes(), "the same seed gives the same homes"
    assert {o.home for o in rows} == {"sim-00001", "sim-00002"} and len(rows) > 2000
    assert {o.kind for o in rows} >= {"motion", "contact", "presence", "plug", "climate"}
    assert {o.role for o in rows if o.role} >= {"front_door", "fridge", "bed", "chair", "kettle", "room"}


def test_export_writes_incidents_and_their_ground_truth(tmp_path: Path) -> None:
    scenario = default_scenario().model_dump(mode="json")
    home = scenario["homes"][0]["id"]
    scenario["incidents"] = [{"kind": "pendant", "home": home, "day": 0, "at": 600},
                             {"kind": "fall", "home": home, "day": 1, "at": 14 * 60, "room": "kitchen"}]
    (tmp_path / "fall.yaml").write_text(yaml.safe_dump(scenario))
    subprocess.run([sys.executable, "-m", "telecare", "sim", "export", "--scenario", str(tmp_path / "fall.yaml"),
                    "--days", "2", "--start", "2026-01-05", "--out", str(tmp_path / "fall.csv"),
                    "--truth", str(tmp_path / "truth.jsonl")], cwd=ROOT, check=True, capture_output=True)
    truth = read_truth_jsonl(tmp_path / "truth.jsonl")
    assert [(t.kind, t.home) for t in truth] == [("pendant", home), ("fall", home)]
    fall = truth[1]
    assert fall.start_ms == T + 86_400_000 + 14 * 3_600_000 and fall.room == "kitchen"  # London: UTC in January
    rows = list(read_csv(tmp_path / "fall.csv"))
    assert [o.value for o in rows if o.kind == "button"] == ["single"]
    moves = [o for o in rows if o.kind == "motion" and o.value is True and o.time_ms > fall.start_ms]
    assert moves == [], "no motion anywhere after the fall"


def test_faults_reach_the_broker_as_a_hub_would_show_them(tmp_path: Path, mosquitto: Mosquitto) -> None:
    scenario = default_scenario().model_dump(mode="json")
    home = scenario["homes"][0]["id"]
    scenario["faults"] = [{"kind": "hub_offline", "home": home, "day": 0, "at": 600, "duration_min": 60},
                          {"kind": "sensor_silent", "home": home, "day": 0, "at": 720, "device": "kitchen_pir"},
                          {"kind": "battery_flat", "home": home, "day": 0, "at": 1200, "device": "hall_pir",
                           "fade_days": 0.25}]
    (tmp_path / "faults.yaml").write_text(yaml.safe_dump(scenario))
    collector = Collector(mosquitto)
    telecare("sim", "run", "--scenario", str(tmp_path / "faults.yaml"), "--days", "1", "--start", "2026-01-05",
             "--speed", "0", "--truth", str(tmp_path / "truth.jsonl"), broker=mosquitto)
    wait_for(lambda: sum(t.endswith("/bridge/state") for t, _ in collector.messages) == 3, 30, "the hub's states")
    time.sleep(1)  # the rest of the run behind them
    collector.close()
    clock, hub, pir_times, hall_batteries = None, [], [], []
    for topic, payload in collector.messages:
        body = orjson.loads(payload)
        if topic == CLOCK_TOPIC:
            clock = body["time"]
        elif topic.endswith("/bridge/state"):
            hub.append((clock, body["state"]))
        elif topic.endswith("/kitchen_pir"):
            pir_times.append(body["last_seen"])
        elif topic.endswith("/hall_pir"):
            hall_batteries.append(body["battery"])
    assert [state for _, state in hub] == ["online", "offline", "online"]
    assert hub[1][0] >= "2026-01-05T10:01" and hub[2][0] >= "2026-01-05T11:00"  # last will 90 s after the cut
    assert pir_times and max(pir_times) < "2026-01-05T12:00", "the silent sensor says nothing after noon"
    assert hall_batteries and hall_batteries[-1] <= 5, "the battery fades before it goes flat"
    kinds = {orjson.loads(line)["kind"] for line in (tmp_path / "truth.jsonl").read_text().splitlines()}
    assert kinds == {"hub_offline", "sensor_silent", "battery_flat"}


def test_every_incident_kind_is_in_the_ground_truth_and_the_published_stream(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    scenario = default_scenario().model_dump(mode="json")
    template = scenario["homes"][0]
    scenario["homes"] = [{**template, "id": f"h{i}", "name": f"Home {i}"} for i in range(7)]
    scenario["incidents"] = [
        {"kind": "fall", "home": "h0", "day": 1, "at": 11 * 60},
        {"kind": "long_lie", "home": "h1", "day": 1, "hours": 4},
        {"kind": "illness", "home": "h2", "day": 0, "ramp_days": 2},
        {"kind": "night_wandering", "home": "h3", "day": 1, "at": 150},
        {"kind": "no_meals", "home": "h4", "day": 1},
        {"kind": "cold_home", "home": "h5", "day": 1, "at": 0, "to_c": 13},
        {"kind": "pendant", "home": "h6", "day": 1, "at": 9 * 60},
    ]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump(scenario))
    collector = Collector(mosquitto)
    out = telecare("sim", "run", "--scenario", str(tmp_path / "all.yaml"), "--days", "2", "--start", "2026-01-05",
                   "--speed", "0", "--truth", str(tmp_path / "truth.jsonl"), broker=mosquitto)
    published = int(out.split("published ")[1].split(" ")[0].replace(",", ""))
    wait_for(lambda: sum(t != CLOCK_TOPIC for t, _ in collector.messages) >= published, 60, "the run")
    collector.close()
    truth = {t.kind: t for t in read_truth_jsonl(tmp_path / "truth.jsonl")}
    assert set(truth) == {"fall", "long_lie", "illness", "night_wandering", "no_meals", "cold_home", "pendant"}

    def stream(home: str) -> list[Message]:
        return [m for m in (parse(t, p, T, 2**62) for t, p in collector.messages if t.startswith(f"telecare/{home}/"))
                if isinstance(m, Message) and m.device]

    after_fall = [m for m in stream("h0") if m.time_ms > truth["fall"].start_ms and m.body.get("occupancy")]
    assert after_fall == [], "nobody moves after the fall"
    day2_wake = T + 86_400_000 + 7 * 3_600_000
    assert any(m.device == "bed_pad" and m.time_ms > day2_wake + 3 * 3_600_000 and m.body.get("presence") is False
               for m in stream("h1")), "the long lie ends hours after the usual wake time"
    night = [m for m in stream("h3") if m.device == "front_door" and m.body.get("contact") is False
             and T + 86_400_000 + 2 * 3_600_000 <= m.time_ms < T + 86_400_000 + 4 * 3_600_000]
    assert night, "the front door opens in the small hours"
    meals_day2 = [m for m in stream("h4") if T + 86_400_000 <= m.time_ms < T + 2 * 86_400_000 and (
        (m.device == "fridge_door" and m.body.get("contact") is False)
        or (m.device == "kettle_plug" and m.body.get("power", 0) > 0))]
    assert meals_day2 == [], "no fridge or kettle all day"
    assert min(m.body["temperature"] for m in stream("h5") if "temperature" in m.body) < 14
    assert [m.body["action"] for m in stream("h6") if "action" in m.body] == ["single"]
    assert truth["illness"].home == "h2"
