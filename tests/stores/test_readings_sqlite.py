"""The embedded SQLite readings store: the shared contract, plus what only a file of its own can show."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.stores.readings.base import Point
from gateway.stores.readings.sqlite import SqliteReadingStore
from tests.stores.contract import T0, ReadingStoreContract, new_home, reading


class TestSqliteContract(ReadingStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Callable[[], SqliteReadingStore]:
        return lambda: SqliteReadingStore(tmp_path / "readings.db")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteReadingStore]:
    s = SqliteReadingStore(tmp_path / "sub" / "readings.db")
    try:
        yield s
    finally:
        s.close()


def test_file_is_created_in_wal_mode(store: SqliteReadingStore) -> None:
    assert store.path.exists()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_data_survives_reopening(tmp_path: Path) -> None:
    home = new_home()
    first = SqliteReadingStore(tmp_path / "r.db")
    first.write([reading(home, "d", T0, occupancy=True)])
    first.close()
    second = SqliteReadingStore(tmp_path / "r.db")
    try:
        assert second.timeline(home, T0, T0 + 1) == [reading(home, "d", T0, occupancy=True)]
    finally:
        second.close()


def test_timeline_uses_the_primary_key(store: SqliteReadingStore) -> None:
    """One home's day is a range scan of (home, measurement, time_ms, device), not a table scan or a sort."""
    with sqlite3.connect(store.path) as conn:
        plan = " ".join(
            row[-1]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT device, time_ms, tags, fields FROM points WHERE home = ? AND "
                "measurement = 'reading' AND time_ms >= ? AND time_ms < ? ORDER BY time_ms, device LIMIT ?",
                ("h", 0, 1, 10),
            )
        )
    assert "USING PRIMARY KEY" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def test_hub_points_have_no_device(store: SqliteReadingStore) -> None:
    home = new_home()
    store.write([Point("hub", {"home": home}, {"online": True}, T0),
                 Point("hub", {"home": home}, {"online": False}, T0 + 1)])
    with sqlite3.connect(store.path) as conn:
        sql = "SELECT measurement, device, fields FROM points WHERE home = ? ORDER BY time_ms"
        rows = conn.execute(sql, (home,)).fetchall()
    assert rows == [("hub", "", '{"online":true}'), ("hub", "", '{"online":false}')]


def test_each_thread_has_its_own_connection(store: SqliteReadingStore) -> None:
    connections: list[sqlite3.Connection] = []

    def grab() -> None:
        connections.append(store._conn())

    threads = [threading.Thread(target=grab) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert connections[0] is not connections[1]
    assert store._conn() is store._conn()


def test_closed_store_refuses_work(store: SqliteReadingStore) -> None:
    store.close()
    with pytest.raises(StoreUnavailable):
        store.timeline("h", T0, T0 + 1)


def test_a_locked_database_is_unavailable_not_rejected(tmp_path: Path) -> None:
    store = SqliteReadingStore(tmp_path / "r.db", busy_timeout_s=0.1)
    blocker = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(StoreUnavailable):
            store.write([reading("h", "d", T0, n=1)])
        blocker.execute("ROLLBACK")
        store.write([reading("h", "d", T0, n=1)])  # and it works again once the lock is gone
        assert len(store.timeline("h", T0, T0 + 1)) == 1
    finally:
        blocker.close()
        store.close()
