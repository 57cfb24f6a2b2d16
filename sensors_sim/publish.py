"""Publishing the simulated (or replayed) homes over MQTT, exactly as zigbee2mqtt hubs would.

``play`` paces a time-ordered stream of messages: at real time (``speed=1``), accelerated (``speed=600`` is ten
minutes a second) or as fast as possible (``speed=None``). Before the first message and every simulated minute
it publishes the simulated time on the clock topic, retained, so a gateway started with
``TELECARE_CLOCK=simulated`` keeps its one clock in step with the data (``docs/mqtt-contract.md``). The publisher
reads the wall clock to pace itself: it is an edge, like the gateway.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensors_sim.events import Observation
from sensors_sim.faults import HubEvent
from sensors_sim.sensors import Radio, iso_ms, payload

CLOCK_EVERY_MS = 60_000
# Where the simulator publishes its clock in accelerated runs: outside every home's namespace, so no hub can write
# it. The gateway reads the same topic (gateway.contract.CLOCK_TOPIC); tests/sim/test_publish.py holds the two
# together, as the simulator imports nothing of the gateway.
CLOCK_TOPIC = "telecare-sim/clock"


@dataclass(frozen=True, slots=True)
class Outgoing:
    time_ms: int  # simulated time at which a hub would publish it
    topic: str
    payload: bytes
    retain: bool = False


BatteryCap = Callable[[str, str, int], float | None]  # (home, device, time) -> most the battery can hold


def device_messages(observations: Iterable[Observation], radio: Radio, root: str = "telecare",
                    battery_cap: BatteryCap | None = None) -> Iterator[Outgoing]:
    """Each observation as its hub publishes it: ``<root>/<home>/<device>`` with a zigbee2mqtt payload."""
    for o in observations:
        battery, link = radio.report(o.device, o.kind)
        cap = battery_cap(o.home, o.device, o.time_ms) if battery_cap else None
        if cap is not None and battery is not None:
            battery = min(battery, cap)
        yield Outgoing(o.time_ms, f"{root}/{o.home}/{o.device}", orjson.dumps(payload(o, battery, link)))


def hub_messages(events: Iterable[HubEvent], root: str = "telecare") -> Iterator[Outgoing]:
    """A hub's state as zigbee2mqtt 2.x publishes it on ``bridge/state``, retained (also its last will)."""
    for e in events:
        body = b'{"state":"online"}' if e.online else b'{"state":"offline"}'
        yield Outgoing(e.time_ms, f"{root}/{e.home}/bridge/state", body, retain=True)


def clock_tick(time_ms: int, speed: float | None) -> Outgoing:
    body = {"time": iso_ms(time_ms), "speed": speed or 0}
    return Outgoing(time_ms, CLOCK_TOPIC, orjson.dumps(body), retain=True)


@dataclass
class PlayStats:
    messages: int = 0
    ticks: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    wall_s: float = 0.0
    per_home: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        span_h = ((self.last_ms or 0) - (self.first_ms or 0)) / 3_600_000
        rate = self.messages / self.wall_s if self.wall_s else 0.0
        homes = len(self.per_home)
        return (f"published {self.messages:,} messages from {homes:,} homes ({span_h:,.1f} simulated hours, "
                f"{self.ticks:,} clock ticks) in {self.wall_s:,.1f} s: {rate:,.0f} messages/s")


def with_clock(messages: Iterable[Outgoing], speed: float | None, every_ms: int = CLOCK_EVERY_MS
               ) -> Iterator[Outgoing]:
    """The messages with clock ticks between them: one before the first message, then every ``every_ms`` of
    simulated time (quiet hours included), and one at the end. No message is ever more than ``every_ms`` ahead
    of the clock a gateway on simulated time follows."""
    next_tick: int | None = None
    last: int | None = None
    for message in messages:
        if next_tick is None:
            next_tick = message.time_ms
        while next_tick <= message.time_ms:
            yield clock_tick(next_tick, speed)
            next_tick += every_ms
        yield message
        last = message.time_ms
    if last is not None:
        yield clock_tick(last, speed)


def play(messages: Iterable[Outgoing], send: Callable[[Outgoing], None], *, speed: float | None,
         sleep: Callable[[float], object] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
         progress: Callable[[PlayStats], None] | None = None, progress_every_s: float = 60.0) -> PlayStats:
    """Send ``messages`` (ordered by time), each when its simulated time comes at ``speed`` (None: at once).

    Ctrl-C stops it cleanly: what was sent is counted. ``progress`` is told the figures every so often."""
    stats = PlayStats()
    started = paced_from = monotonic()
    next_progress = started + progress_every_s
    first_ms: int | None = None
    with contextlib.suppress(KeyboardInterrupt):
        for message in messages:
            if progress is not None and monotonic() >= next_progress:
                stats.wall_s = monotonic() - started
                progress(stats)
                next_progress += progress_every_s
            if first_ms is None:  # pace from the first message: making the first day of every home takes a while
                first_ms = stats.first_ms = message.time_ms
                paced_from = monotonic()
            if speed:
                delay = paced_from + (message.time_ms - first_ms) / 1000 / speed - monotonic()
                if delay > 0:
                    sleep(delay)
            send(message)
            if message.topic == CLOCK_TOPIC:
                stats.ticks += 1
                continue
            stats.messages += 1
            stats.last_ms = message.time_ms
            home = message.topic.split("/")[1]
            stats.per_home[home] = stats.per_home.get(home, 0) + 1
    stats.wall_s = monotonic() - started
    return stats


class MqttPublisher:
    """QoS 1 publishing through paho-mqtt; ``flush`` waits until the broker has every message."""

    def __init__(self, url: str, client_id: str | None = None, window: int = 20_000, *,
                 protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5) -> None:
        parts = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol,  # 3.1.1 for the demo's broker
                                  client_id=client_id or f"telecare-sim-{uuid.uuid4().hex[:8]}")
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883))
        self.client.loop_start()
        self.window = window  # paho refuses past 65,535 unacknowledged messages: wait before that
        self._unacked: list[mqtt.MQTTMessageInfo] = []

    def send(self, message: Outgoing) -> None:
        self._unacked.append(self.client.publish(message.topic, message.payload, qos=1, retain=message.retain))
        if len(self._unacked) >= self.window:
            self.flush()

    def flush(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        for info in self._unacked:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge every message in time")
        self._unacked.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()
