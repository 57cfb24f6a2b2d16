"""The readings-store writer against the embedded store: tags, kinds, the activity ingest decided, and distinct
times."""

from pathlib import Path

from gateway.clock import WallClock
from gateway.device_table import DeviceInfo, DeviceTable
from gateway.journal import Journal
from gateway.metrics import WorkerMetrics
from gateway.reading_facts import ReadingFacts
from gateway.stores.readings.base import ACTIVITY_FIELD, stored_activity
from gateway.stores.readings.sqlite import SqliteReadingStore
from gateway.writer import StoreWriter

T = 1_764_000_000_000


def run(tmp_path: Path, messages: list[tuple[str, str, int, dict]], tags: dict | None = None) -> list:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("store")
    devices = DeviceTable(devices={key: DeviceInfo(t["kind"] or None, t["room"] or None, t["role"] or None)
                                   for key, t in (tags or {}).items()})
    facts = ReadingFacts(devices)  # each state's kind and activity, as ingest journals them
    journal.append([(kind, "h1", device, t, t, True, body, *facts.judge("h1", device, body)) if kind == "state"
                    else (kind, "h1", device, t, t, True, body) for kind, device, t, body in messages])
    store = SqliteReadingStore(tmp_path / "r.sqlite3")
    writer = StoreWriter(store, journal, WorkerMetrics(), WallClock(), devices)
    writer.handle(journal.read("store", 100))
    return store.timeline("h1", T - 10, T + 10_000)


def test_the_timeout_false_with_the_motion_last_seen_does_not_overwrite_the_motion(tmp_path: Path) -> None:
    points = run(tmp_path, [("state", "pir", T, {"occupancy": True}),
                            ("state", "pir", T, {"occupancy": False})])
    assert [(p.time_ms, p.fields["occupancy"]) for p in points] == [(T, True), (T + 1, False)]


def test_a_redelivered_reading_rewrites_the_same_point(tmp_path: Path) -> None:
    points = run(tmp_path, [("state", "pir", T, {"occupancy": True}),
                            ("state", "pir", T, {"occupancy": True})])
    assert [(p.time_ms, p.fields["occupancy"]) for p in points] == [(T, True)]


def test_kind_is_sticky_and_room_and_role_come_from_the_registry(tmp_path: Path) -> None:
    points = run(tmp_path, [("state", "door", T, {"contact": True, "battery": 90}),
                            ("state", "door", T + 5, {"battery": 89}),
                            ("state", "pir", T + 6, {"occupancy": True}),
                            ("availability", "pir", T + 7, {"online": False})],
                 tags={("h1", "pir"): {"kind": "motion", "room": "hall", "role": ""}})
    assert [p.tags for p in points] == [
        {"home": "h1", "device": "door", "kind": "contact"},
        {"home": "h1", "device": "door", "kind": "contact"},
        {"home": "h1", "device": "pir", "kind": "motion", "room": "hall"},
    ]


def test_the_activity_ingest_decided_is_stored_with_the_reading(tmp_path: Path) -> None:
    points = run(tmp_path, [("state", "pir", T, {"occupancy": True}),
                            ("state", "pir", T + 1000, {"occupancy": True, "battery": 80}),  # re-sent, no change
                            ("state", "door", T + 2000, {"contact": True}),  # a contact's first state is learned
                            ("state", "door", T + 3000, {"contact": False})])
    assert [(p.tags["device"], stored_activity(p)) for p in points] == [
        ("pir", "motion"), ("pir", None), ("door", None), ("door", "opened")]
    assert ACTIVITY_FIELD not in points[1].fields


def test_an_entry_journaled_before_ingest_decided_activity_is_stored_without_one(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("store")
    journal.append([("state", "h1", "pir", T, T, True, {"occupancy": True})])  # seven fields: an older gateway
    store = SqliteReadingStore(tmp_path / "r.sqlite3")
    StoreWriter(store, journal, WorkerMetrics(), WallClock()).handle(journal.read("store", 100))
    [point] = store.timeline("h1", T - 10, T + 10)
    assert point.fields == {"occupancy": True} and point.tags == {"home": "h1", "device": "pir"}
