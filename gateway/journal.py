"""The journal: the one durable hand-off between the broker and everything downstream.

A message is acknowledged to the broker only after its entry (a reading, or its dead letter) is committed
here. Consumers (the readings-store writer, the device registry, the detectors) each keep their own position,
so the journal is also the spool while InfluxDB is away. Entries are trimmed once every consumer has passed
them. When the journal holds ``max_entries``, the gateway stops acknowledging and the broker keeps the rest.

SQLite in WAL mode, ``synchronous=FULL``. Each committed batch is one row holding its entries as one JSON
array: one insert and one fsync per batch, and one SQLite step per batch read. (A row per entry costs a GIL
release and re-acquire per row, which starves the MQTT thread under load.) Every entry still has its own
sequence number: a batch row covers ``first_seq..last_seq``, and consumers always take whole batches.

Two processes share it: ingest appends and trims; the worker's consumers read and advance. Whatever one
process needs to know of the other's progress it reads from the file (:meth:`lag`, :meth:`trim`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    entries BLOB NOT NULL  -- JSON array of [kind, home, device, time_ms, received_ms, timed, body]
);
CREATE TABLE IF NOT EXISTS positions (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('last_seq', 0);
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


# What ingest appends: an Entry without its seq.
NewEntry = tuple[str, str | None, str | None, int, int, bool, Any]


class Journal:
    def __init__(self, path: Path, max_entries: int = 5_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_entries = max_entries
        self._local = threading.local()
        self._lock = threading.Lock()
        conn = self._conn()
        conn.executescript(SCHEMA)
        self._last_seq: int = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
        self._positions: dict[str, int] = dict(conn.execute("SELECT consumer, seq FROM positions").fetchall())
        first = conn.execute("SELECT MIN(first_seq) FROM batches").fetchone()[0]
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
                self._conn().execute("INSERT OR IGNORE INTO positions VALUES (?, ?)", (consumer, self._trimmed_to))
                self._positions[consumer] = self._trimmed_to

    def append(self, entries: Sequence[NewEntry]) -> int:
        """Commit a batch (one transaction, one fsync); returns the last seq. Called from one thread only."""
        if not entries:
            return self._last_seq
        first, last = self._last_seq + 1, self._last_seq + len(entries)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO batches VALUES (?, ?, ?)", (first, last, orjson.dumps(entries)))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._last_seq = last
        return last

    def read(self, consumer: str, limit: int) -> list[Entry]:
        """Whole batches after the consumer's position, oldest first, about ``limit`` entries (at least one batch)."""
        after = self._positions[consumer]
        conn = self._conn()
        out: list[Entry] = []
        for first, batch in conn.execute(
                "SELECT first_seq, entries FROM batches WHERE first_seq > ? ORDER BY first_seq", (after,)):
            out.extend(Entry(first + i, *e) for i, e in enumerate(orjson.loads(batch)))
            if len(out) >= limit:
                break
        return out

    def advance(self, consumer: str, seq: int) -> None:
        """Record that ``consumer`` has durably handled everything up to ``seq`` (the end of a batch)."""
        self._conn().execute("UPDATE positions SET seq = ? WHERE consumer = ?", (seq, consumer))
        with self._lock:
            self._positions[consumer] = seq

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def lag(self, consumer: str) -> int:
        """Entries the consumer has still to take, read from the file (ingest may be another process)."""
        conn = self._conn()
        last = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
        position = conn.execute("SELECT seq FROM positions WHERE consumer = ?", (consumer,)).fetchone()
        return last - (position[0] if position else self._trimmed_to)

    def kept(self) -> int:
        """Entries not yet trimmed: what fills the journal."""
        return self._last_seq - self._trimmed_to

    def is_full(self) -> bool:
        return self.kept() >= self.max_entries

    def trim(self) -> int:
        """Delete the batches every consumer has passed; returns how many entries went."""
        conn = self._conn()
        positions = dict(conn.execute("SELECT consumer, seq FROM positions").fetchall())  # the worker's, too
        with self._lock:
            self._positions.update(positions)
            if not self._positions:
                return 0
            upto = min(self._positions.values())
        if upto <= self._trimmed_to:
            return 0
        conn.execute("DELETE FROM batches WHERE last_seq <= ?", (upto,))
        first = conn.execute("SELECT MIN(first_seq) FROM batches").fetchone()[0]
        trimmed_to = (first - 1) if first is not None else self._last_seq
        gone = trimmed_to - self._trimmed_to
        self._trimmed_to = trimmed_to
        return gone

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
