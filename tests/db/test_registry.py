"""The device registry on SQLite and PostgreSQL: each entry kind, idempotence, renames, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import DeadLetter, Device, Home
from gateway.journal import Entry
from gateway.reading_facts import ReadingFacts
from gateway.registry import DeviceRegistry

T0 = 1_780_000_000_000  # ms since the epoch


def at(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


class Journal:
    """Builds entries with increasing sequence numbers, as the gateway's journal would: a state with the device
    kind and activity that ingest decides (gateway.reading_facts)."""

    def __init__(self) -> None:
        self.seq = 0
        self.facts = ReadingFacts()

    def _entry(self, kind: str, home: str | None, device: str | None, t: int, body: Any, timed: bool = False,
               received: int | None = None) -> Entry:
        self.seq += 1
        return Entry(self.seq, kind, home, device, t, t if received is None else received, timed, body)

    def state(self, device: str, t: int, home: str = "h1", timed: bool = True, **body: Any) -> Entry:
        entry = self._entry("state", home, device, t, body, timed)
        device_kind, change = self.facts.judge(home, device, body)
        return entry._replace(device_kind=device_kind, activity=change)

    def availability(self, device: str, t: int, online: bool, home: str = "h1") -> Entry:
        return self._entry("availability", home, device, t, {"online": online})

    def hub(self, t: int, online: bool, home: str = "h1") -> Entry:
        return self._entry("bridge_state", home, None, t, {"online": online})

    def devices(self, t: int, listed: list[dict[str, Any]], home: str = "h1") -> Entry:
        return self._entry("bridge_devices", home, None, t, listed)

    def dead(self, t: int, reason: str = "invalid_json", home: str | None = "h1", device: str | None = "d",
             payload: str = "{oops", topic: str = "telecare/h1/d") -> Entry:
        return self._entry("dead", home, device, t,
                           {"reason": reason, "detail": "invalid JSON", "topic": topic, "payload": payload})


def listed(name: str, ieee: str, kind: str | None = "motion", model: str = "RTCGQ11LM") -> dict[str, Any]:
    return {"friendly_name": name, "ieee_address": ieee, "model": model, "vendor": "Aqara",
            "description": "Motion sensor", "power_source": "Battery", "kind": kind}




@pytest.fixture
def registry(sessions: sessionmaker[Session]) -> DeviceRegistry:
    return DeviceRegistry(sessions)


@pytest.fixture
def j() -> Journal:
    return Journal()


def device(sessions: sessionmaker[Session], name: str, home: str = "h1") -> Device:
    with sessions() as s:
        found = s.scalar(select(Device).where(Device.home_id == home, Device.name == name))
        assert found is not None, f"no device {name!r} in {home!r}"
        return found


def home(sessions: sessionmaker[Session], home_id: str = "h1") -> Home:
    with sessions() as s:
        found = s.get(Home, home_id)
        assert found is not None
        return found


def snapshot(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the registry's tables, for comparing whole states."""
    tables = {"homes": Home, "devices": Device, "dead_letters": DeadLetter}
    with sessions() as s:
        return {name: [tuple(row) for row in s.execute(select(model.__table__).order_by(model.id))]
                for name, model in tables.items()}


# --- state --------------------------------------------------------------------------------------------------


def test_a_state_creates_its_home_and_device(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.state("kitchen_motion", T0, occupancy=True, battery=97, linkquality=120)])
    d = device(sessions, "kitchen_motion")
    assert (d.kind, d.battery, d.linkquality, d.sends_last_seen) == ("motion", 97.0, 120, True)
    assert d.first_seen == d.last_seen == at(T0)
    assert d.last_seen is not None and d.last_seen.tzinfo is UTC
    assert (d.room, d.role, d.available) == (None, None, None)
    h = home(sessions)
    assert (h.first_seen, h.last_seen, h.organisation_id, h.timezone) == (
        at(T0), at(T0), None, "Europe/London")


def test_a_batch_is_folded_into_one_row_per_device(registry: DeviceRegistry, sessions, j: Journal) -> None:
    batch = [j.state(f"pir{i % 3}", T0 + i * 1000, occupancy=i % 2 == 0, battery=100 - i, linkquality=i)
             for i in range(30)]
    batch.append(j.state("pir0", T0 + 100_000, occupancy=False))  # last, but carries no battery
    registry.apply(batch)
    with sessions() as s:
        assert s.query(Device).count() == 3
    pir0 = device(sessions, "pir0")
    assert pir0.battery == 100 - 27  # the last report that carried a battery level
    assert pir0.linkquality == 27
    assert pir0.first_seen == at(T0)
    assert pir0.last_seen == at(T0 + 100_000)
    assert home(sessions).last_seen == at(T0 + 100_000)


def test_last_seen_only_moves_forward(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.state("pir", T0 + 60_000, occupancy=True)])
    registry.apply([j.state("pir", T0, occupancy=False, battery=50)])  # an older reading, delivered late
    d = device(sessions, "pir")
    assert d.last_seen == at(T0 + 60_000)
    assert d.first_seen == at(T0)  # first_seen moves back to the earliest reading
    assert d.battery == 50
    h = home(sessions)
    assert (h.first_seen, h.last_seen) == (at(T0), at(T0 + 60_000))


def test_kind_is_sticky(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.state("pir", T0, occupancy=True, battery=90)])
    registry.apply([j.state("pir", T0 + 1000, battery=89, voltage=2900)])  # a battery-only report
    assert device(sessions, "pir").kind == "motion"
    registry.apply([j.state("pir", T0 + 2000, battery=88), j.state("pir", T0 + 3000, voltage=2800)])
    assert device(sessions, "pir").kind == "motion"


def test_a_device_that_reveals_nothing_has_no_kind(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.state("mystery", T0, battery=50)])
    assert device(sessions, "mystery").kind is None


def test_sends_last_seen_follows_the_payloads(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.state("pir", T0, timed=False, occupancy=True)])
    assert device(sessions, "pir").sends_last_seen is False
    registry.apply([j.state("pir", T0 + 1000, timed=True, occupancy=False)])  # advanced.last_seen turned on
    assert device(sessions, "pir").sends_last_seen is True
    registry.apply([j.availability("pir", T0 + 2000, True)])  # says nothing about payloads
    assert device(sessions, "pir").sends_last_seen is True


# --- availability and the hub -------------------------------------------------------------------------------


def test_availability_keeps_the_moment_it_changed(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.availability("pir", T0, True)])
    d = device(sessions, "pir")
    assert (d.available, d.availability_changed_at) == (True, at(T0))
    assert d.last_seen is None  # the hub's opinion is not the device reporting

    registry.apply([j.availability("pir", T0 + 1000, True)])  # retained message again: no change
    assert device(sessions, "pir").availability_changed_at == at(T0)

    registry.apply([j.availability("pir", T0 + 5000, False), j.availability("pir", T0 + 6000, False)])
    d = device(sessions, "pir")
    assert (d.available, d.availability_changed_at) == (False, at(T0 + 5000))

    registry.apply([j.availability("pir", T0 + 3000, True)])  # older than what we know: ignored
    d = device(sessions, "pir")
    assert (d.available, d.availability_changed_at) == (False, at(T0 + 5000))


def test_availability_flapping_within_a_batch(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.availability("pir", T0, True)])
    registry.apply([j.availability("pir", T0 + 1000, False), j.availability("pir", T0 + 2000, True)])
    d = device(sessions, "pir")
    assert (d.available, d.availability_changed_at) == (True, at(T0 + 2000))


def test_the_hub_going_offline_and_back(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.hub(T0, True)])
    h = home(sessions)
    assert (h.hub_online, h.hub_changed_at, h.first_seen) == (True, at(T0), at(T0))
    registry.apply([j.hub(T0 + 1000, False)])  # the hub's last will
    assert (home(sessions).hub_online, home(sessions).hub_changed_at) == (False, at(T0 + 1000))
    registry.apply([j.hub(T0 + 9000, True), j.hub(T0 + 9500, True)])
    h = home(sessions)
    assert (h.hub_online, h.hub_changed_at, h.last_seen) == (True, at(T0 + 9000), at(T0 + 9500))
    with sessions() as s:
        assert s.query(Device).count() == 0


# --- the hub's device list ----------------------------------------------------------------------------------


def test_the_device_list_fills_in_static_facts(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([j.state("kitchen_motion", T0, occupancy=True)])
    registry.apply([j.devices(T0 + 1000, [
        listed("kitchen_motion", "0x00158d0001a2b301"),
        listed("hall_plug", "0x00158d0001a2b302", kind="plug", model="SP-120")])])
    d = device(sessions, "kitchen_motion")
    assert (d.ieee_address, d.model, d.vendor, d.description, d.power_source, d.kind) == (
        "0x00158d0001a2b301", "RTCGQ11LM", "Aqara", "Motion sensor", "Battery", "motion")
    assert d.last_seen == at(T0)  # listing is not reporting
    plug = device(sessions, "hall_plug")
    assert (plug.kind, plug.model, plug.last_seen) == ("plug", "SP-120", None)


def test_the_device_list_deletes_nothing_and_erases_nothing(registry: DeviceRegistry, sessions,
                                                            j: Journal) -> None:
    registry.apply([j.state("pir", T0, occupancy=True), j.state("old_sensor", T0, contact=True),
                    j.devices(T0, [listed("pir", "0x00158d0001a2b301")])])
    registry.apply([j.devices(T0 + 1000, [{"friendly_name": "pir", "ieee_address": "0x00158d0001a2b301",
                                            "model": "", "vendor": "", "description": "", "power_source": "",
                                            "kind": None}])])
    d = device(sessions, "pir")
    assert (d.model, d.kind, d.power_source) == ("RTCGQ11LM", "motion", "Battery")
    assert device(sessions, "old_sensor").kind == "contact"


def test_a_renamed_device_keeps_its_row(registry: DeviceRegistry, sessions, j: Journal) -> None:
    ieee = "0x00158d0001a2b301"
    registry.apply([j.state(ieee, T0, occupancy=True, battery=80), j.devices(T0, [listed(ieee, ieee)])])
    with sessions.begin() as s:  # described by the installer in the meantime
        row = s.scalar(select(Device).where(Device.name == ieee))
        assert row is not None
        row.room, row.role = "kitchen", "room"
    before = device(sessions, ieee)
    registry.apply([j.devices(T0 + 1000, [listed("kitchen_motion", ieee)]),
                    j.state("kitchen_motion", T0 + 2000, occupancy=False)])
    after = device(sessions, "kitchen_motion")
    assert after.id == before.id
    assert (after.room, after.role, after.battery, after.first_seen, after.last_seen) == (
        "kitchen", "room", 80.0, at(T0), at(T0 + 2000))
    with sessions() as s:
        assert s.query(Device).count() == 1


def test_reports_under_the_new_name_before_the_list_are_folded_in(registry: DeviceRegistry, sessions,
                                                                  j: Journal) -> None:
    ieee = "0x00158d0001a2b301"
    registry.apply([j.state("pir", T0, occupancy=True, battery=80), j.devices(T0, [listed("pir", ieee)])])
    old_id = device(sessions, "pir").id
    registry.apply([j.state("hall_motion", T0 + 5000, occupancy=False, battery=79)])  # renamed on the hub
    registry.apply([j.devices(T0 + 6000, [listed("hall_motion", ieee)])])
    d = device(sessions, "hall_motion")
    assert (d.id, d.ieee_address, d.battery, d.first_seen, d.last_seen) == (
        old_id, ieee, 79.0, at(T0), at(T0 + 5000))
    with sessions() as s:
        assert [x.name for x in s.scalars(select(Device))] == ["hall_motion"]


def test_two_devices_can_swap_names(registry: DeviceRegistry, sessions, j: Journal) -> None:
    a, b = "0x00158d0001a2b301", "0x00158d0001a2b302"
    registry.apply([j.devices(T0, [listed("left", a), listed("right", b)])])
    left_id, right_id = device(sessions, "left").id, device(sessions, "right").id
    registry.apply([j.devices(T0 + 1000, [listed("left", b), listed("right", a)])])
    assert (device(sessions, "right").id, device(sessions, "left").id) == (left_id, right_id)


def test_a_name_given_to_another_device_moves_the_old_one_aside(registry: DeviceRegistry, sessions,
                                                                j: Journal) -> None:
    old, new = "0x00158d0001a2b301", "0x00158d0001a2b302"
    registry.apply([j.devices(T0, [listed("kitchen_motion", old), listed(new, new)]),
                    j.state("kitchen_motion", T0, occupancy=True)])
    old_id, new_id = device(sessions, "kitchen_motion").id, device(sessions, new).id
    # The installer removed the old sensor from the hub and gave its name to the replacement.
    registry.apply([j.devices(T0 + 1000, [listed("kitchen_motion", new)])])
    assert device(sessions, "kitchen_motion").id == new_id
    moved = device(sessions, old)
    assert (moved.id, moved.last_seen) == (old_id, at(T0))


# --- dead letters -------------------------------------------------------------------------------------------


def test_dead_letters_are_kept_without_creating_homes(registry: DeviceRegistry, sessions, j: Journal) -> None:
    registry.apply([
        j.dead(T0, home="ghost-home", device="x", payload='{"temperature": "warm"}', reason="wrong_type"),
        j.dead(T0 + 1, home=None, device=None, topic="elsewhere/topic", reason="bad_topic"),
        j.dead(T0 + 2, payload="caf\\xe9 \\x00 \u00e9t\u00e9", reason="bad_encoding"),
    ])
    with sessions() as s:
        rows = s.scalars(select(DeadLetter).order_by(DeadLetter.received_at)).all()
        assert s.query(Home).count() == 0
    assert [(r.home_id, r.device, r.reason) for r in rows] == [
        ("ghost-home", "x", "wrong_type"), (None, None, "bad_topic"), ("h1", "d", "bad_encoding")]
    assert rows[0].payload == '{"temperature": "warm"}'
    assert rows[1].topic == "elsewhere/topic"
    assert rows[2].payload == "caf\\xe9 \\x00 \u00e9t\u00e9"
    assert rows[0].received_at == at(T0) and rows[0].detail == "invalid JSON"


def test_dead_letters_use_the_receipt_time(registry: DeviceRegistry, sessions, j: Journal) -> None:
    entry = j.dead(T0)._replace(time_ms=T0 + 99_000, received_ms=T0 + 5)
    registry.apply([entry])
    with sessions() as s:
        assert s.scalar(select(DeadLetter.received_at)) == at(T0 + 5)


# --- batches ------------------------------------------------------------------------------------------------


def every_kind(j: Journal) -> list[Entry]:
    a, b = "0x00158d0001a2b301", "0x00158d0001a2b302"
    return [
        j.hub(T0, True),
        j.devices(T0, [listed("pir", a), listed(b, b, kind="contact")]),
        j.state("pir", T0 + 1000, occupancy=True, battery=90, linkquality=100),
        j.state(b, T0 + 1500, contact=False),
        j.availability("pir", T0 + 2000, False),
        j.availability("pir", T0 + 2500, True),
        j.state("new_name", T0 + 2600, contact=True),
        j.devices(T0 + 3000, [listed("pir", a), listed("new_name", b, kind="contact")]),
        j.dead(T0 + 3500),
        j.hub(T0 + 4000, False),
        j.state("pir", T0 + 4500, battery=89, timed=False),
    ]


def test_applying_a_batch_twice_changes_nothing(registry: DeviceRegistry, sessions, j: Journal) -> None:
    batch = every_kind(j)
    registry.apply(batch)
    once = snapshot(sessions)
    registry.apply(batch)  # the consumer crashed after the commit, before recording its position
    assert snapshot(sessions) == once
    assert len(once["dead_letters"]) == 1
    assert device(sessions, "new_name").ieee_address == "0x00158d0001a2b302"
    assert len(once["devices"]) == 2


def test_a_batch_split_in_two_gives_the_same_result(db_url: str, sessions, registry: DeviceRegistry) -> None:
    batch = every_kind(Journal())
    registry.apply(batch[:5])
    registry.apply(batch[5:])
    split = snapshot(sessions)
    with sessions.begin() as s:
        for model in (DeadLetter, Device, Home):
            s.execute(model.__table__.delete())
    registry.apply(batch)
    whole = snapshot(sessions)
    # Row ids may differ; everything else may not.
    assert [r[1:] for r in whole["devices"]] == [r[1:] for r in split["devices"]]
    assert whole["homes"] == split["homes"]
    assert [r[1:] for r in whole["dead_letters"]] == [r[1:] for r in split["dead_letters"]]


def test_a_failed_batch_leaves_nothing_behind(registry: DeviceRegistry, sessions, j: Journal,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("gateway.registry._apply_bridge_list", fail)
    with pytest.raises(RuntimeError):
        registry.apply([j.state("pir", T0, occupancy=True),
                        j.devices(T0, [listed("pir", "0x00158d0001a2b301")]),
                        j.dead(T0)])
    assert snapshot(sessions) == {"homes": [], "devices": [], "dead_letters": []}


def test_malformed_entries_are_skipped_without_a_trace(registry: DeviceRegistry, sessions,
                                                       j: Journal) -> None:
    registry.apply([
        j._entry("state", None, "pir", T0, {"occupancy": True}),  # no home
        j.state("x" * 300, T0, occupancy=True),  # a name too long to store
        j._entry("availability", "h2", "pir", T0 + 5000, {"no": "online"}),
        j._entry("bridge_state", "h1", None, T0 + 5000, {"online": "yes"}),
        j._entry("bridge_devices", "h1", None, T0 + 5000, {"not": "a list"}),
        j._entry("state", "h1", "pir", T0 + 5000, ["not", "an", "object"]),
        j._entry("something_new", "h3", "pir", T0, {}),
        j.state("pir", T0, occupancy=True),
    ])
    with sessions() as s:
        assert [d.name for d in s.scalars(select(Device))] == ["pir"]
        assert [h.id for h in s.scalars(select(Home))] == ["h1"]
    h = home(sessions)
    assert (h.last_seen, h.hub_online) == (at(T0), None)


def test_an_empty_batch_is_fine(registry: DeviceRegistry) -> None:
    registry.apply([])


def test_many_homes_and_devices_in_one_batch(registry: DeviceRegistry, sessions, j: Journal) -> None:
    batch = [j.state(f"dev{i % 10}", T0 + i, home=f"home-{i % 600:03d}", occupancy=True, battery=i % 100)
             for i in range(6000)]
    registry.apply(batch)
    with sessions() as s:
        assert s.query(Home).count() == 600
        assert s.query(Device).count() == 600  # (home i % 600, device i % 10): 600 distinct pairs
