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
process needs to know of the other's progress it reads from the file (:meth:`lag`, :meth:`trim`). The devices'
states are ingest's alone to write: the worker asks it to forget a home's (:meth:`request_forget`, when the person
cared for changed or was erased), and ingest does so before its next batch (:meth:`forget`).

The files shrink after a backlog drains (:meth:`trim` then calls :meth:`_compact`):

* the file is created with ``auto_vacuum=INCREMENTAL``, and free pages beyond what the kept entries fill (at least
  ``slack_bytes``) go back to the file system, ``reclaim_step_bytes`` at a time so ingest's appends never wait
  long. A file made before auto-vacuum is converted by one ``VACUUM`` the first time it is found empty (then it
  holds a few pages, so the write lock lasts milliseconds);
* once drained, ``wal_checkpoint(TRUNCATE)`` empties the WAL, waiting at most ``CHECKPOINT_BUSY_MS`` for readers;
  ``journal_size_limit`` also cuts the WAL back whenever SQLite restarts it, and a WAL past ``wal_limit_bytes``
  is truncated even before the journal drains (readers that never let it restart);
* ``secure_delete=FAST``: Debian builds SQLite with secure delete on, which writes every trimmed page to the WAL
  again as zeros (that doubled the writes and grew the WAL by the size of each trim). Freed pages are truncated
  away soon after, and the same readings are in the readings store anyway.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import orjson

log = logging.getLogger(__name__)

MB = 1024 * 1024
BUSY_MS = 30_000  # how long a statement waits for another connection's write lock
CHECKPOINT_BUSY_MS = 250  # a checkpoint or VACUUM blocks appends while it waits for readers: never for long
AUTO_VACUUM_INCREMENTAL = 2  # PRAGMA auto_vacuum's value
WAL_KEEP_BYTES = 4 * MB  # journal_size_limit: about what SQLite's automatic checkpoint lets the WAL reach

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    -- JSON array of [kind, home, device, time_ms, received_ms, timed, body, device_kind, activity]; batches written
    -- before device_kind and activity were journaled hold the first seven.
    entries BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL);
-- Entries that must not wait behind the backlog (a button pressed): their seq and home, kept until trimmed.
CREATE TABLE IF NOT EXISTS urgent (seq INTEGER PRIMARY KEY, home TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Each device's kind and last activity value as ingest last committed them (gateway.reading_facts): the state
-- an activity change is decided from. One row a device; a home's hub can add at most its device quota.
CREATE TABLE IF NOT EXISTS device_states (
    home TEXT NOT NULL, device TEXT NOT NULL, kind TEXT, value BLOB, PRIMARY KEY (home, device)
) WITHOUT ROWID;
-- A home's device states are its resident's: they go when the person cared for changes (Home.care_epoch: a claim,
-- a release, a resident added, removed or erased). The worker asks (gateway.purge.forget_past_care); ingest, their
-- one writer, forgets them in its next transaction, from its memory too. state_epochs: the care epoch the worker
-- last saw each home's states under (a home not there: 0, a new home's).
CREATE TABLE IF NOT EXISTS forget (id INTEGER PRIMARY KEY, home TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state_epochs (home TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('last_seq', 0);
"""


# Each row of the JSON array is [home, device, kind, value]; the value is kept as JSON (a boolean stays a boolean).
_UPSERT_STATES = """
INSERT OR REPLACE INTO device_states
SELECT value ->> 0, value ->> 1, value ->> 2, value -> 3 FROM json_each(?)
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
    device_kind: str | None = None  # a state's device kind, decided at ingest (gateway.reading_facts)
    # The activity change a state shows (analytics.activity.Change's value), None for none; UNDECIDED in an entry
    # journaled before ingest decided activity, which its consumers then decide as they did before.
    activity: str | None = ""


UNDECIDED = ""  # Entry.activity of an entry journaled without a decision


# What ingest appends: an Entry without its seq; a state carries its device kind and activity change too.
NewEntry = (tuple[str, str | None, str | None, int, int, bool, Any]
            | tuple[str, str | None, str | None, int, int, bool, Any, str | None, str | None])
DeviceStates = Mapping[tuple[str, str], tuple[str | None, Any]]  # (home, device) -> (kind, last activity value)
ForgetRequest = tuple[int, str]  # (id, home): forget every device state of the home


class Journal:
    def __init__(self, path: Path, max_entries: int = 5_000_000, *, slack_bytes: int = 4 * MB,
                 reclaim_step_bytes: int = 4 * MB, wal_limit_bytes: int = 64 * MB) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_entries = max_entries
        self.slack_bytes = slack_bytes
        self.reclaim_step_bytes = reclaim_step_bytes
        self.wal_limit_bytes = wal_limit_bytes
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
            conn = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            # Before journal_mode and the first table, or it has no effect; on an existing file it only takes
            # effect at a VACUUM (see _compact).
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA secure_delete=FAST")
            # When SQLite restarts the WAL from its start, it cuts the file back to this size.
            conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            self._local.conn = conn
        return conn

    def register(self, consumer: str) -> None:
        """A consumer starts at the oldest entry kept; registering again keeps its position."""
        with self._lock:
            if consumer not in self._positions:
                self._conn().execute("INSERT OR IGNORE INTO positions VALUES (?, ?)", (consumer, self._trimmed_to))
                self._positions[consumer] = self._trimmed_to

    def append(self, entries: Sequence[NewEntry], urgent: Sequence[int] = (), states: DeviceStates | None = None
               ) -> int:
        """Commit a batch (one transaction, one fsync); returns the last seq. Called from one thread only.

        ``urgent`` are the indexes in ``entries`` of those a consumer may take ahead of its position
        (:meth:`urgent_after`); each must have a home. ``states``: the devices' states the batch changed
        (:meth:`device_states`), committed with it."""
        if not entries:
            return self._last_seq
        first, last = self._last_seq + 1, self._last_seq + len(entries)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO batches VALUES (?, ?, ?)", (first, last, orjson.dumps(entries)))
            if urgent:
                conn.executemany("INSERT INTO urgent VALUES (?, ?)", [(first + i, entries[i][1]) for i in urgent])
            if states:  # one statement, the rows as one JSON array: no Python work a row
                conn.execute(_UPSERT_STATES, (orjson.dumps([(*key, *state) for key, state in states.items()]),))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._last_seq = last
        return last

    def device_states(self) -> dict[tuple[str, str], tuple[str | None, Any]]:
        """Every device's kind and last activity value as last committed by :meth:`append`."""
        rows = self._conn().execute("SELECT home, device, kind, value FROM device_states")
        return {(home, device): (kind, orjson.loads(value)) for home, device, kind, value in rows}

    def state_epochs(self) -> dict[str, int]:
        """Each home that has device states, and the care epoch they were last seen under (0 until seen)."""
        return dict(self._conn().execute(
            "SELECT DISTINCT d.home, COALESCE(e.epoch, 0) FROM device_states d "
            "LEFT JOIN state_epochs e ON e.home = d.home").fetchall())

    def request_forget(self, epochs: Mapping[str, int]) -> None:
        """Ask ingest to forget the device states of these homes, now under these care epochs (the worker does:
        ingest is their one writer, and holds them in memory too)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO forget (home) VALUES (?)", [(home,) for home in epochs])
            conn.executemany("INSERT OR REPLACE INTO state_epochs VALUES (?, ?)", list(epochs.items()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def forget_requests(self) -> list[ForgetRequest]:
        """The homes whose states are to be forgotten, oldest request first: given to :meth:`forget`."""
        return self._conn().execute("SELECT id, home FROM forget ORDER BY id").fetchall()

    def forget(self, requests: Sequence[ForgetRequest]) -> None:
        """Delete the device states of the requests' homes, and the requests, in one transaction (ingest does,
        having forgotten them in memory: it is their one writer)."""
        if not requests:
            return
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("DELETE FROM device_states WHERE home = ?", [(home,) for home in {h for _, h in requests}])
            conn.execute("DELETE FROM forget WHERE id <= ?", (max(i for i, _ in requests),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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

    def urgent_after(self, seq: int) -> list[tuple[int, str]]:
        """The urgent entries after ``seq`` (their seq and home), oldest first."""
        return self._conn().execute("SELECT seq, home FROM urgent WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    def read_home(self, home: str, after: int, upto: int) -> list[Entry]:
        """One home's entries in ``after < seq <= upto``, oldest first (the rest are not even made into entries)."""
        conn = self._conn()
        out: list[Entry] = []
        rows = conn.execute(
            "SELECT first_seq, entries FROM batches WHERE first_seq <= ? AND first_seq >= "
            "(SELECT COALESCE(MAX(first_seq), 0) FROM batches WHERE first_seq <= ?) ORDER BY first_seq",
            (upto, after + 1))
        quoted = orjson.dumps(home)
        for first, batch in rows:
            if quoted not in batch:  # most batches of a backlog hold nothing of one home: not worth decoding
                continue
            out.extend(Entry(first + i, *e) for i, e in enumerate(orjson.loads(batch))
                       if e[1] == home and after < first + i <= upto)
        return out

    def position(self, consumer: str) -> int:
        """The consumer's position as this process knows it (its own consumers' are current)."""
        with self._lock:
            return self._positions.get(consumer, self._trimmed_to)

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
        """Delete the batches every consumer has passed, then give space back; returns how many entries went."""
        conn = self._conn()
        positions = dict(conn.execute("SELECT consumer, seq FROM positions").fetchall())  # the worker's, too
        with self._lock:
            self._positions.update(positions)
            upto = min(self._positions.values()) if self._positions else self._trimmed_to
        gone = 0
        if upto > self._trimmed_to:
            conn.execute("DELETE FROM batches WHERE last_seq <= ?", (upto,))
            conn.execute("DELETE FROM urgent WHERE seq <= ?", (upto,))
            first = conn.execute("SELECT MIN(first_seq) FROM batches").fetchone()[0]
            trimmed_to = (first - 1) if first is not None else self._last_seq
            gone = trimmed_to - self._trimmed_to
            self._trimmed_to = trimmed_to
        try:
            self._compact(conn)
        except sqlite3.OperationalError as e:  # busy: the space is given back at a later trim
            log.info("journal not compacted this time: %s", e)
        return gone

    def _compact(self, conn: sqlite3.Connection) -> None:
        """Give free pages back to the file system and empty the WAL once drained (see the module's notes)."""
        drained = conn.execute("SELECT 1 FROM batches LIMIT 1").fetchone() is None  # read: ingest may be elsewhere
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != AUTO_VACUUM_INCREMENTAL:
            if drained:
                self._vacuum_once(conn)
        else:
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            used = conn.execute("PRAGMA page_count").fetchone()[0] - free
            excess = free - max(used, self.slack_bytes // page_size)
            if excess > 0:
                step = min(excess, max(1, self.reclaim_step_bytes // page_size))
                # executescript runs the pragma to its end; execute() would free one page per call.
                conn.executescript(f"PRAGMA incremental_vacuum({step})")
                # The file itself is cut only when a checkpoint copies the WAL back; passive waits for nobody.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        wal = self.wal_bytes()
        if wal > 0 and (drained or wal > self.wal_limit_bytes):
            with _waiting_at_most(conn, CHECKPOINT_BUSY_MS):
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log.debug("journal WAL not truncated: a reader held it; trying at the next trim")

    def _vacuum_once(self, conn: sqlite3.Connection) -> None:
        """A journal file made before auto-vacuum: rewrite it once, while it holds no entries (milliseconds)."""
        with _waiting_at_most(conn, CHECKPOINT_BUSY_MS):
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
        log.info("journal %s converted to incremental auto-vacuum", self.path)

    def file_bytes(self) -> int:
        """The main file's size on disk."""
        return _size(self.path)

    def wal_bytes(self) -> int:
        """The WAL's size on disk (0 when truncated or absent)."""
        return _size(self.path.with_name(self.path.name + "-wal"))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


@contextmanager
def _waiting_at_most(conn: sqlite3.Connection, ms: int) -> Iterator[None]:
    """Wait at most ``ms`` for other connections' locks inside the block, then back to the usual wait."""
    conn.execute(f"PRAGMA busy_timeout={ms}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
