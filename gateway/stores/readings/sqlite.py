"""The embedded readings store: a SQLite file of its own (WAL mode), for homes that run without InfluxDB.

One row per point, keyed (home, measurement, time_ms, device) — which is also the order :meth:`timeline`
reads, so one home's day is one range scan of the primary key. Tags other than home and device, and the
fields, are kept as JSON objects. Writing a point again merges its fields into the stored ones
(``json_patch``: new values win, fields missing from the rewrite are kept), which is what InfluxDB does with
a point written again with the same series and timestamp. The tags of the latest write are kept.

Values are normalised exactly as the line protocol encoder does for InfluxDB (numbers become floats, NaN and
infinities are left out, empty tags dropped, a field or tag named ``time`` left out), so both adapters
return the same points.

Threads: each thread gets its own connection (``threading.local``); the gateway writes from one thread while
the API reads from others, which WAL allows without blocking either.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import orjson

from gateway.errors import PointsRejected, StoreUnavailable
from gateway.stores.readings.base import (
    ACTIVITY_FIELD,
    RESERVED_KEY,
    DailySummary,
    Point,
    stored_fields,
    stored_summary_values,
)

__all__ = ["SqliteReadingStore"]

SCHEMA_VERSION = 1
_DAY_MS = 86_400_000
_EPOCH_DAY = date(1970, 1, 1)
_ACTIVITY_TERM = f"json_extract(fields, '$.{ACTIVITY_FIELD}') IS NOT NULL"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS points (
    home        TEXT    NOT NULL,
    measurement TEXT    NOT NULL,
    time_ms     INTEGER NOT NULL,
    device      TEXT    NOT NULL,  -- '' for a hub's points
    tags        TEXT    NOT NULL,  -- JSON object: the tags other than home and device
    fields      TEXT    NOT NULL,  -- JSON object
    PRIMARY KEY (home, measurement, time_ms, device)
) WITHOUT ROWID;
-- The timeline's default view reads only the readings with an activity change (about one in eight): this index
-- holds just those, so it reads no others (the query repeats its WHERE terms word for word, as SQLite requires).
CREATE INDEX IF NOT EXISTS points_activity ON points (home, time_ms)
    WHERE measurement = 'reading' AND {_ACTIVITY_TERM};
CREATE TABLE IF NOT EXISTS daily_summaries (
    home    TEXT NOT NULL,
    day     TEXT NOT NULL,  -- ISO date, YYYY-MM-DD: sorts as it reads
    fields  TEXT NOT NULL,  -- JSON object of floats
    PRIMARY KEY (home, day)
) WITHOUT ROWID;
"""
_UPSERT_POINT = """
INSERT INTO points (home, measurement, time_ms, device, tags, fields) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (home, measurement, time_ms, device)
DO UPDATE SET tags = excluded.tags, fields = json_patch(points.fields, excluded.fields)
"""
_UPSERT_SUMMARY = """
INSERT INTO daily_summaries (home, day, fields) VALUES (?, ?, ?)
ON CONFLICT (home, day) DO UPDATE SET fields = json_patch(daily_summaries.fields, excluded.fields)
"""
_TIMELINE = (
    "SELECT device, time_ms, tags, fields FROM points{index}"
    " WHERE home = ? AND measurement = 'reading' AND time_ms >= ? AND time_ms < ?{device}{activity}"
    " ORDER BY time_ms, device LIMIT ?"
)
# Named, not left to the planner: without statistics (no ANALYZE) it takes the primary key and reads every reading.
_ACTIVITY_INDEX = " INDEXED BY points_activity"
_ACTIVITY_ONLY = f" AND {_ACTIVITY_TERM}"
_DELETE_POINTS = "DELETE FROM points WHERE home = ? AND time_ms >= ? AND time_ms < ?"
# A summary's day is stamped at midnight UTC, as the InfluxDB adapter stores it: a day is in the period when its
# midnight is (ISO dates compare as text).
_DELETE_SUMMARIES = "DELETE FROM daily_summaries WHERE home = ? AND day >= ? AND day < ?"
_SUMMARIES = "SELECT day, fields FROM daily_summaries WHERE home = ? AND day >= ? AND day <= ? ORDER BY day"


class SqliteReadingStore:
    """The :class:`~gateway.stores.readings.base.ReadingStore` in a SQLite file of its own at ``path``."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}  # for close(), and to reap
        self._lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open readings store {self.path}: {e}") from e

    # --- connections ----------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreUnavailable(f"readings store {self.path} is closed")
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE for writes). The connection is used
            # only by the thread that opened it, except by close().
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            # FULL: a commit survives a power cut too. The journal moves its position past points once write()
            # returns, so a commit lost afterwards would be a reading lost. Batches keep the fsyncs few.
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open readings store {self.path}: {e}") from e
        self._local.conn = conn
        with self._lock:
            for thread, other in list(self._connections.items()):
                if not thread.is_alive():  # its owner is gone: nobody else will ever use it
                    del self._connections[thread]
                    other.close()
            self._connections[threading.current_thread()] = conn
        return conn

    def _write_rows(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        self._transaction([(sql, rows)])

    def _transaction(self, statements: list[tuple[str, list[tuple]]]) -> None:
        """Run each statement over its rows in one write transaction."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except (sqlite3.DataError, OverflowError) as e:
            raise PointsRejected(f"readings store refused the batch: {e}") from e
        except sqlite3.Error as e:  # locked past the busy timeout, disk full, I/O error ...
            raise StoreUnavailable(f"readings store {self.path}: {e}") from e

    # --- ReadingStore ---------------------------------------------------------------------------
    def write(self, points: Sequence[Point]) -> None:
        rows = []
        dumps = orjson.dumps
        try:
            for p in points:
                fields = stored_fields(p.fields)
                if not fields:
                    continue
                tags = p.tags
                extra = {k: v for k, v in tags.items()
                         if v and k and k != "home" and k != "device" and k != RESERVED_KEY}
                rows.append((tags.get("home") or "", p.measurement, int(p.time_ms), tags.get("device") or "",
                             dumps(extra).decode(), dumps(fields).decode()))
        except (TypeError, ValueError) as e:  # orjson.JSONEncodeError is a TypeError (e.g. lone surrogates)
            raise PointsRejected(f"readings store cannot hold a point: {e}") from e
        self._write_rows(_UPSERT_POINT, rows)

    def timeline(
        self, home: str, start_ms: int, end_ms: int, *, device: str | None = None, limit: int = 10_000,
        activity_only: bool = False,
    ) -> list[Point]:
        if limit <= 0 or end_ms <= start_ms:
            return []
        args: list[object] = [home, int(start_ms), int(end_ms)]
        if device is not None:
            args.append(device)
        args.append(int(limit))
        sql = _TIMELINE.format(device=" AND device = ?" if device is not None else "",
                               activity=_ACTIVITY_ONLY if activity_only else "",
                               index=_ACTIVITY_INDEX if activity_only else "")
        try:
            rows = self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"readings store {self.path}: {e}") from e
        loads = orjson.loads
        out = []
        for dev, time_ms, tags_json, fields_json in rows:
            tags = loads(tags_json)  # the stored tags win over home and device, as when they were written
            tags.setdefault("home", home)
            if dev:
                tags.setdefault("device", dev)
            out.append(Point("reading", tags, loads(fields_json), time_ms))
        return out

    def write_daily_summaries(self, summaries: Sequence[DailySummary]) -> None:
        rows = []
        for s in summaries:
            values = stored_summary_values(s.values)
            if values:
                rows.append((s.home, s.day.isoformat(), orjson.dumps(values).decode()))
        self._write_rows(_UPSERT_SUMMARY, rows)

    def daily_summaries(self, home: str, first_day: date, last_day: date) -> list[DailySummary]:
        try:
            args = (home, first_day.isoformat(), last_day.isoformat())
            rows = self._conn().execute(_SUMMARIES, args).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"readings store {self.path}: {e}") from e
        return [DailySummary(home, date.fromisoformat(day), orjson.loads(values)) for day, values in rows]

    def delete_range(self, home: str, start_ms: int, end_ms: int) -> None:
        if end_ms <= start_ms:
            return
        # Days whose midnight UTC is in [start, end): from the first midnight at or after start, to the first at
        # or after end (excluded).
        first_day = _day_at_or_after(int(start_ms)).isoformat()
        end_day = _day_at_or_after(int(end_ms)).isoformat()
        self._transaction([(_DELETE_POINTS, [(home, int(start_ms), int(end_ms))]),
                           (_DELETE_SUMMARIES, [(home, first_day, end_day)])])

    def close(self) -> None:
        self._closed = True
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<SqliteReadingStore {self.path}>"


def _day_at_or_after(time_ms: int) -> date:
    """The day whose midnight UTC is the first at or after ``time_ms``."""
    days, rest = divmod(time_ms, _DAY_MS)
    return _EPOCH_DAY + timedelta(days=days + (1 if rest else 0))
