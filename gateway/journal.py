"""The journal: the one durable hand-off between the broker and everything downstream.

A message is acknowledged to the broker only after its entry (a reading, or its dead letter) is committed here.
Consumers (the readings-store writer, the device registry, the detectors) each keep their own position, so the
journal is also the spool while InfluxDB is away. Entries are trimmed once every consumer has passed them. When
the journal holds ``max_entries`` the gateway stops acknowledging and the broker keeps the rest.

SQLite in WAL mode, ``synchronous=FULL``, one transaction per batch (group commit).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    home TEXT,
    device TEXT,
    time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    timed INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


class Entry(NamedTuple):
    seq: int
    kind: str
    home: str | None
    device: str | None
    time_ms: int
    received_ms: int
    timed: bool
    body: Any


# What ingest appends: an Entry without its seq, body already encoded as JSON bytes.
NewEntry = tuple[str, str | None, str | None, int, int, bool, bytes]


class Journal:
    def __init__(self, path: Path, max_entries: int = 5_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_entries = max_entries
        self._local = threading.local()
        self._lock = threading.Lock()
        conn = self._conn()
        conn.executescript(SCHEMA)
        if conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'entries'").fetchone() is None:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('entries', 0)")
        self._last_seq: int = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()[0]
        self._positions: dict[str, int] = dict(conn.execute("SELECT consumer, seq FROM positions").fetchall())
        first = conn.execute("SELECT MIN(seq) FROM entries").fetchone()[0]
        self._trimmed_to = (first - 1) if first is not None else self._last_seq

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def register(self, consumer: str) -> None:
        """A consumer starts at the oldest entry kept; registering again keeps its position."""
        with self._lock:
            if consumer not in self._positions:
                conn = self._conn()
                conn.execute("INSERT OR IGNORE INTO positions VALUES (?, ?)", (consumer, self._trimmed_to))
                self._positions[consumer] = self._trimmed_to

    def append(self, entries: Sequence[NewEntry]) -> int:
        """Commit a batch (one transaction, one fsync); returns the last seq. Called from one thread only."""
        if not entries:
            return self._last_seq
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO entries (kind, home, device, time_ms, received_ms, timed, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", entries)
            last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._last_seq = last
        return last

    def read(self, consumer: str, limit: int) -> list[Entry]:
        """The next entries after the consumer's position, oldest first."""
        after = self._positions[consumer]
        rows = self._conn().execute(
            "SELECT seq, kind, home, device, time_ms, received_ms, timed, body FROM entries"
            " WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()
        loads = orjson.loads
        return [Entry(s, k, h, d, t, r, bool(tb), loads(b)) for s, k, h, d, t, r, tb, b in rows]

    def advance(self, consumer: str, seq: int) -> None:
        """Record that ``consumer`` has durably handled everything up to ``seq``."""
        self._conn().execute("UPDATE positions SET seq = ? WHERE consumer = ?", (seq, consumer))
        with self._lock:
            self._positions[consumer] = seq

    def position(self, consumer: str) -> int:
        return self._positions[consumer]

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def lag(self, consumer: str) -> int:
        return self._last_seq - self._positions[consumer]

    def kept(self) -> int:
        """Entries not yet trimmed: what fills the journal."""
        return self._last_seq - self._trimmed_to

    def is_full(self) -> bool:
        return self.kept() >= self.max_entries

    def trim(self) -> int:
        """Delete what every consumer has passed; returns how many entries went."""
        with self._lock:
            if not self._positions:
                return 0
            upto = min(self._positions.values())
        if upto <= self._trimmed_to:
            return 0
        conn = self._conn()
        conn.execute("DELETE FROM entries WHERE seq <= ?", (upto,))
        gone = upto - self._trimmed_to
        self._trimmed_to = upto
        return gone

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
