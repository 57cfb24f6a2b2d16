"""The readings-store writer against the embedded store: tags, kinds, and distinct times."""

from pathlib import Path

from gateway.clock import WallClock
from gateway.device_table import DeviceInfo, DeviceTable
from gateway.journal import Journal
from gateway.metrics import WorkerMetrics
from gateway.stores.readings.sqlite import SqliteReadingStore
from gateway.writer import StoreWriter

T = 1_764_000_000_000


def run(tmp_path: Path, messages: list[tuple[str, str, int, dict]], tags: dict | None = None) -> list:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("store")
    journal.append([(kind, "h1", device, t, t, True, body) for kind, device, t, body in messages])
    store = SqliteReadingStore(tmp_path / "r.sqlite3")
    devices = DeviceTable(devices={key: DeviceInfo(t["kind"] or None, t["room"] or None, t["role"] or None)
                                   for key, t in (tags or {}).items()})
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
