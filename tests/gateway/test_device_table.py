"""One copy of the device table in the worker: what the detectors read for a new device, the writer's tags use
too; the database away keeps the last copy (issue 13)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import SimulatedClock
from gateway.db.models import Device
from gateway.detect import DetectorConsumer
from gateway.device_table import UNKNOWN, DeviceInfo, DeviceTable
from gateway.journal import Entry, Journal
from gateway.metrics import WorkerMetrics
from gateway.stores.readings.sqlite import SqliteReadingStore
from gateway.writer import StoreWriter

HOME = "h1"  # tests/gateway/conftest.py: the simulated home, described
T0 = 1_768_226_520_000


def test_the_table_reads_kinds_rooms_and_roles(sessions: sessionmaker[Session]) -> None:
    table = DeviceTable(sessions)
    assert table.get(HOME, "kitchen_pir") == UNKNOWN
    table.refresh_if_due()
    assert table.get(HOME, "kitchen_pir") == DeviceInfo("motion", "kitchen", "room")
    assert table.knows(HOME, "pendant") and not table.knows(HOME, "nothing")


def test_what_the_detectors_read_for_a_new_device_the_writer_tags_with(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    table = DeviceTable(sessions, refresh_s=3600)
    clock = SimulatedClock()
    clock.tick(T0, 1.0)
    journal = Journal(tmp_path / "j.sqlite3")
    store = SqliteReadingStore(tmp_path / "r.sqlite3")
    writer = StoreWriter(store, journal, WorkerMetrics(), clock, table)
    detect = DetectorConsumer(sessions, clock, devices=table)
    writer.points([])  # the writer's first refresh
    with sessions.begin() as s:  # a coordinator moves the pad to the bedroom
        s.execute(update(Device).where(Device.home_id == HOME, Device.name == "chair_pad").values(room="bedroom"))
        s.add(Device(home_id=HOME, name="new_pir", kind="motion", room="hall"))
    new = Entry(1, "state", HOME, "new_pir", T0, T0, True, {"occupancy": True})
    detect.handle([new])  # a device the table does not know: the detectors read it again
    [point] = writer.points([new])
    assert point.tags == {"home": HOME, "device": "new_pir", "kind": "motion", "room": "hall"}
    assert table.get(HOME, "chair_pad").room == "bedroom"


def test_the_database_away_keeps_the_last_copy() -> None:
    def away() -> Session:
        raise OSError("database away")

    known = {(HOME, "kitchen_pir"): DeviceInfo("motion", "kitchen", "room")}
    table = DeviceTable(away, refresh_s=0, devices=known)  # type: ignore[arg-type]
    table.refresh_if_due()  # logged, not raised: the readings path does not depend on the database
    assert table.get(HOME, "kitchen_pir").room == "kitchen"
