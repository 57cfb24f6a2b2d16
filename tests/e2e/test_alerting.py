"""Detect and alert end to end: real Mosquitto, the gateway on simulated time, a Pushover-behaving server.

The home's baseline is warmed from three simulated weeks (the `telecare baseline warm` path); the test then
plays the afternoon that matters as a zigbee2mqtt hub would send it, with the simulator's clock ticks, so that
simulated time moves exactly as far as the test says.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.pushover_server import PushoverServer
from bench.services import Mosquitto
from gateway.alerting import people, service
from gateway.db.migrate import upgrade
from gateway.db.models import Alert, AlertLog, Notification
from gateway.db.session import make_engine, make_session_factory
from gateway.detector_checkpoints import warm_baselines
from gateway.homes import import_homes, parse_description
from sensors_sim.generate import Simulation, start_of
from sensors_sim.publish import clock_tick
from sensors_sim.scenario import default_home, to_home_description
from sensors_sim.sensors import iso_ms
from telecare.processes import Gateway
from tests.e2e.helpers import gateway_settings, publish, start_gateway, wait_for

pytest_plugins = ["tests.conftest_pushover"]

HOME = "h1"
DAY0 = start_of(date(2026, 1, 5))  # winter: London is on UTC, so local hours are UTC hours
MIN = 60_000
AFTERNOON = DAY0 + 21 * 86_400_000 + 14 * 3_600_000  # day 22, 14:00
ANNE, BOB = "anne" + "0" * 26, "bob" + "0" * 27
CLIMATE = [d.name for d in default_home(HOME).devices if d.kind == "climate"]
# What each other device re-sends about hourly when nothing happens (zigbee2mqtt's cached state): all still.
STILL = {"motion": {"occupancy": False}, "contact": {"contact": True}, "presence": {"presence": False},
         "plug": {"power": 0, "state": "OFF"}}
HEARTBEATS = {d.name: STILL[d.kind] for d in default_home(HOME).devices if d.kind in STILL}


class Hub:
    """Publishes what the home's zigbee2mqtt hub and the simulator's clock would, minute by minute."""

    def __init__(self, broker: Mosquitto, start_ms: int) -> None:
        self.broker = broker
        self.now = start_ms
        self.sent = 0
        self.heartbeat_due = {name: start_ms + i * MIN for i, name in enumerate(HEARTBEATS)}

    def send(self, device: str, payload: dict[str, object], at: int | None = None) -> None:
        body = {**payload, "last_seen": iso_ms(at or self.now)}
        self.sent += publish(self.broker, [(f"telecare/{HOME}/{device}", orjson.dumps(body))])

    def quiet(self, minutes: int, *, hub_up: bool = True, step: int = 5) -> None:
        """Time passes; the temperature sensors report (when the hub is up) and nobody moves."""
        messages: list[tuple[str, bytes]] = []
        for _ in range(0, minutes, step):
            self.now += step * MIN
            if hub_up:
                messages += [(f"telecare/{HOME}/{name}", orjson.dumps({"temperature": 20.5, "humidity": 45,
                                                                      "last_seen": iso_ms(self.now)}))
                             for name in CLIMATE]
                for name, due in self.heartbeat_due.items():
                    if due <= self.now:
                        body = {**HEARTBEATS[name], "battery": 90, "last_seen": iso_ms(self.now)}
                        messages.append((f"telecare/{HOME}/{name}", orjson.dumps(body)))
                        self.heartbeat_due[name] = self.now + 50 * MIN
            tick = clock_tick(self.now, 0)
            messages.append((tick.topic, tick.payload))
        self.sent += publish(self.broker, messages)

    def settle(self, gw: Gateway) -> None:
        """Wait until the gateway's detectors have seen everything sent: simulated time moves no further ahead
        of the gateway than the test says, however loaded the machine."""
        wait_for(lambda: (gw.sample("telecare_messages_journaled_total") or 0) >= self.sent
                 and gw.journal.lag("detect") == 0, 30, "the detectors to catch up")


@pytest.fixture
def world(tmp_path: Path, mosquitto: Mosquitto, pushover: PushoverServer) -> Iterator[tuple[Gateway, Hub]]:
    pushover.users |= {ANNE, BOB}
    settings = gateway_settings(tmp_path, mosquitto, None, clock="simulated", pushover_url=pushover.url,
                                pushover_token="a" * 30)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    home = default_home(HOME)
    with sessions() as s:
        import_homes(s, parse_description(to_home_description(home)))
        people.add_resident(s, HOME, "Mary Jones")
        anne = people.add_recipient(s, "Anne (daughter)", ANNE)
        bob = people.add_recipient(s, "Bob (neighbour)", BOB)
        people.set_chain(s, HOME, [(anne.id, 15), (bob.id, 15)])
        s.commit()
    history = Simulation([home], DAY0, 22, seed=5).observations()
    warm_baselines(sessions, (o for o in history if o.time_ms < AFTERNOON))
    hub = Hub(mosquitto, AFTERNOON)
    gw = start_gateway(settings)
    hub.quiet(5)  # the gateway's clock joins the simulator's
    try:
        yield gw, hub
    finally:
        gw.stop()
        engine.dispose()


def sent_to(server: PushoverServer, user: str, containing: str = "") -> list[dict[str, str]]:
    return [m for m in server.messages if m["user"] == user and containing in m["message"] + m.get("title", "")]


def alerts(gw: Gateway) -> list[Alert]:
    sessions: sessionmaker[Session] = make_session_factory(make_engine(gw.settings.database_url))
    with sessions() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def test_a_fall_is_alerted_escalated_across_a_restart_and_stopped_by_acknowledgement(
        world: tuple[Gateway, Hub], pushover: PushoverServer) -> None:
    gw, hub = world
    hub.send("kitchen_pir", {"occupancy": True, "battery": 90})
    hub.quiet(5)
    hub.send("kitchen_pir", {"occupancy": False, "battery": 90})  # and then she lies still on the floor
    for _ in range(24):  # up to two more hours
        hub.quiet(5)
        if sent_to(pushover, ANNE):
            break
    wait_for(lambda: len(sent_to(pushover, ANNE)) == 1, 20, "Anne to be alerted")
    [first] = sent_to(pushover, ANNE)
    assert "No activity since 14:0" in first["message"] and "kitchen" in first["message"]
    assert int(first["priority"]) >= 1, "urgent, sent at high priority on a simulated clock"
    wait_for(lambda: alerts(gw)[0].state == "notified", 10, "the delivery to be recorded")
    [alert] = alerts(gw)
    assert alert.kind == "inactivity"
    assert alert.raised_at < datetime.fromtimestamp(AFTERNOON / 1000 + 2 * 3600, UTC)

    gw.stop()  # the gateway restarts in the middle of the escalation
    gw2 = start_gateway(gw.settings)
    try:
        hub.quiet(20)
        # A restarted gateway's processes and the escalation step: generous on a loaded machine (returns at once).
        wait_for(lambda: len(sent_to(pushover, BOB)) == 1, 60, "Bob to be alerted after Anne's 15 minutes")
        [second] = sent_to(pushover, BOB)
        assert "Anne" in second["message"], "the next in the chain is told who was tried"
        assert len(sent_to(pushover, ANNE)) == 1, "nobody is alerted twice across the restart"

        sessions = make_session_factory(make_engine(gw2.settings.database_url))
        with sessions() as s:
            now = datetime.fromtimestamp(hub.now / 1000, UTC)
            service.acknowledge(s, alert.id, "Bob (neighbour)", "on my way", now)
            s.commit()
        before = len(pushover.messages)
        hub.quiet(60)

        def told_acknowledged(m: dict[str, str]) -> bool:
            return "acknowledged" in (m["message"] + m.get("title", "")).lower()

        wait_for(lambda: all(a.state == "acknowledged" for a in alerts(gw2)), 10, "the acknowledgement")
        wait_for(lambda: any(told_acknowledged(m) for m in pushover.messages[before:]), 20,
                 "the acknowledgement told")  # collected only once sent: a late one is not an alert message
        alert_messages = [m for m in pushover.messages[before:] if not told_acknowledged(m)]
        assert alert_messages == [], "acknowledgement stops the chain for everyone"

        hub.send("kitchen_pir", {"occupancy": True, "battery": 90})  # she is up again
        hub.quiet(5)
        wait_for(lambda: alerts(gw2)[0].state == "resolved", 20, "the alert to resolve itself")
        assert alerts(gw2)[0].resolved_by == "auto"
        wait_for(lambda: bool(sent_to(pushover, ANNE, "Activity again")), 20, "Anne told it is over")
    finally:
        gw2.stop()


def test_a_hub_outage_is_a_device_alert_and_going_out_is_not_a_fall(
        world: tuple[Gateway, Hub], pushover: PushoverServer) -> None:
    gw, hub = world
    hub.send("living_room_pir", {"occupancy": True})
    publish(hub.broker, [(f"telecare/{HOME}/bridge/state", b'{"state":"offline"}')])
    hub.quiet(6 * 60, hub_up=False)  # six hours with the hub down: nothing from the home
    wait_for(lambda: any(a.kind == "hub_offline" for a in alerts(gw)), 20, "a hub_offline alert")
    # Uncertainty escalates: past her limit a person is told, saying what is not known (DESIGN.md).
    wait_for(lambda: any(a.kind == "inactivity" for a in alerts(gw)), 20, "inactivity while the hub is down")
    [unseen] = [a for a in alerts(gw) if a.kind == "inactivity"]
    assert "the home hub is offline" in unseen.message and "may be still, or the sensors have stopped" in \
        unseen.message
    publish(hub.broker, [(f"telecare/{HOME}/bridge/state", b'{"state":"online"}')])
    hub.quiet(10)
    wait_for(lambda: next(a for a in alerts(gw) if a.kind == "hub_offline").state == "resolved", 20,
             "the hub alert to resolve when it is back")

    hub.send("hall_pir", {"occupancy": True})  # she goes out of the front door and stays out for the evening
    hub.send("front_door", {"contact": False}, at=hub.now + 20_000)
    hub.send("front_door", {"contact": True}, at=hub.now + 30_000)
    hub.quiet(150)
    hub.settle(gw)
    inactivity = [a for a in alerts(gw) if a.kind == "inactivity"]
    assert [a.id for a in inactivity] == [unseen.id], "her being out is not inactivity"
    assert inactivity[0].state == "resolved" and inactivity[0].resolved_by == "auto", "the hall ended the stillness"
    still = [m for m in pushover.messages if "No activity" in m["message"] or "No sensor" in m["message"]]
    assert still and all("hub is offline" in m["message"] for m in still)
    # The hub's own message goes at low priority. On simulated time the outage can be over before it is sent
    # (then it is cancelled as no longer needed): its priority is read from the outbox, sent or not.
    sessions = make_session_factory(make_engine(gw.settings.database_url))
    with sessions() as s:
        priorities = list(s.scalars(select(Notification.priority).join(Alert, Alert.id == Notification.alert_id)
                                    .where(Alert.kind == "hub_offline", Notification.purpose == "alert")))
    assert priorities and max(priorities) <= 0, "device health is not urgent"
    assert all(int(m["priority"]) <= 0 for m in pushover.messages if m["message"].startswith("The home hub went"))


def test_the_pendant_is_an_emergency_message_acknowledged_on_the_phone(
        tmp_path: Path, mosquitto: Mosquitto, pushover: PushoverServer) -> None:
    """On the wall clock: emergency priority with a receipt; a refused key moves the chain on at once; a 429 is
    retried; the acknowledgement made in the Pushover app stops the chain."""
    pushover.users |= {ANNE, BOB}
    settings = gateway_settings(tmp_path, mosquitto, None, pushover_url=pushover.url, pushover_token="a" * 30)
    upgrade(settings.database_url)
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as s:
        import_homes(s, parse_description(to_home_description(default_home(HOME))))
        people.add_resident(s, HOME, "Mary Jones")
        old = people.add_recipient(s, "Old phone", "gone" + "0" * 26)  # a key Pushover no longer knows
        anne = people.add_recipient(s, "Anne (daughter)", ANNE)
        bob = people.add_recipient(s, "Bob (neighbour)", BOB)
        people.set_chain(s, HOME, [(old.id, 15), (anne.id, 15), (bob.id, 15)])
        s.commit()
    gw = start_gateway(settings)
    try:
        pushover.fail_next(1, 429, retry_after=1)
        now = int(time.time() * 1000)
        publish(mosquitto, [(f"telecare/{HOME}/pendant",
                             orjson.dumps({"action": "single", "battery": 80, "last_seen": iso_ms(now)}))])
        wait_for(lambda: bool(sent_to(pushover, ANNE)), 30, "Anne alerted after the refused key")
        [message] = sent_to(pushover, ANNE)
        assert message["priority"] == "2" and "Pendant pressed" in message["message"]
        assert sent_to(pushover, "gone" + "0" * 26) == [], "Pushover refused the old key: nothing was delivered"
        [receipt] = [r for r in pushover.receipts.values() if r.user == ANNE]
        pushover.acknowledge(receipt.id, ANNE)
        wait_for(lambda: alerts(gw)[0].state == "acknowledged", 40, "the receipt to be polled")
        [alert] = alerts(gw)
        assert alert.kind == "pendant" and "Anne" in (alert.acknowledged_by or "")
        with sessions() as s:
            kept = [(e.what, e.detail) for e in s.scalars(select(AlertLog).where(AlertLog.alert_id == alert.id))]
        assert any(what == "failed" for what, _ in kept), f"the refused key is in the timeline: {kept}"
        assert sent_to(pushover, BOB, "Pendant pressed") == [], "acknowledged before Bob's turn"
    finally:
        gw.stop()
