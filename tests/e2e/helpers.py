"""Helpers for end-to-end tests: a QoS 1 publisher, a waiting loop and settings for a test gateway."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.services import Mosquitto, VictoriaMetrics
from gateway.config import Settings
from telecare.processes import Gateway

T0_MS = 1_764_000_000_000  # a fixed event time base: points are identified by their time


def publish(broker: Mosquitto, messages: Iterable[tuple[str, bytes | str]], *, qos: int = 1,
            timeout_s: float = 60.0) -> int:
    """Publish and wait until the broker has acknowledged every message."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
    deadline = time.monotonic() + timeout_s
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        assert info.is_published(), "broker did not acknowledge a publish in time"
    client.disconnect()
    client.loop_stop()
    return len(infos)


def readings(home: str, n: int, *, device_count: int = 10, start_ms: int = T0_MS) -> list[tuple[str, bytes]]:
    """n temperature readings, each with a distinct last_seen so each is a distinct point."""
    out = []
    for i in range(n):
        payload = {"temperature": 18 + (i % 50) / 10, "linkquality": 120, "last_seen": start_ms + i}
        out.append((f"telecare/{home}/t{i % device_count}", orjson.dumps(payload)))
    return out


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def gateway_settings(tmp_path: Path, broker: Mosquitto, victoria: VictoriaMetrics | None, **extra: object
                     ) -> Settings:
    influx: dict[str, object] = {}
    if victoria is not None:
        influx = {"influx_url": victoria.url, "influx_token": "test-token", "influx_org": "telecare",
                  "influx_bucket": "readings", "influx_timeout_s": 3.0}
    return Settings(mqtt_url=broker.url, data_dir=tmp_path / "gw", mqtt_client_id="gw-test",  # type: ignore[call-arg]
                    **influx, **extra)


def start_gateway(settings: Settings) -> Gateway:
    """A started gateway, once it is subscribed (messages published from then on reach it)."""
    gw = Gateway(settings)
    gw.start()
    wait_for(lambda: gw.sample("telecare_mqtt_connected") == 1, 20, "the gateway to subscribe")
    return gw


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as TELECARE_ environment variables, for a gateway run as a subprocess."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TELECARE_{name.upper()}"] = str(value)
    return env


def home_with_a_carer(settings: Settings, home: str, carer_key: str) -> None:
    """The gateway's database, migrated, holding ``home`` described as the simulator's default flat, its resident
    Mary Jones, and a one-step chain to Anne (``carer_key``)."""
    from gateway.alerting import people
    from gateway.db.migrate import upgrade
    from gateway.db.session import make_engine, make_session_factory
    from gateway.homes import import_homes, parse_description
    from sensors_sim.scenario import default_home, to_home_description

    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        import_homes(s, parse_description(to_home_description(default_home(home))))
        people.add_resident(s, home, "Mary Jones")
        anne = people.add_recipient(s, "Anne (daughter)", carer_key)
        people.set_chain(s, home, [(anne.id, 15)])
        s.commit()
    engine.dispose()
