"""Detector checkpoints: the pickled detectors' format, and the readable baseline kept beside them.

A checkpoint row holds a home's :class:`analytics.detector.HomeDetector` (compressed) with the journal position it
has seen, and the baseline the API shows (JSON, so the API never unpickles). The detector consumer
(:mod:`gateway.detect`) writes them after every batch; :func:`warm_baselines` writes them from history.
"""

from __future__ import annotations

import hashlib
import logging
import math
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import BindParameter, Table, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from analytics.detector import DetectorConfig, HomeDetector
from analytics.replay import ObservationLike, feed
from gateway import timezones
from gateway.db.models import DetectorCheckpoint, Home
from gateway.db.upserts import ensure_homes

log = logging.getLogger(__name__)

# The checkpoint's format (HomeDetector.dump). Each watcher inside carries its own version, and only a watcher
# whose version changed starts learning again; bump this only when the format around them changes.
CHECKPOINT_VERSION = 2
CHUNK = 500  # homes per IN (...) query: well under SQLite's bound-parameter limit


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def dump_detector(detector: HomeDetector) -> bytes:
    return zlib.compress(detector.dump(), 1)


def load_detector(blob: bytes, home: str | None = None, tz: tzinfo | None = None,
                  config: DetectorConfig | None = None) -> HomeDetector:
    """Our own checkpoint, written by this consumer (home and zone default to the saved ones)."""
    return HomeDetector.load(zlib.decompress(blob), home, tz, config)


Mark = tuple[int, bytes]  # what a checkpoint row holds: (journal seq seen, digest of the compressed state)


class Snapshot(NamedTuple):
    """A home's detector, its state compressed, that state's mark, and the home's care epoch it was learned in."""

    detector: HomeDetector
    state: bytes
    mark: Mark
    care_epoch: int


def snapshot(detector: HomeDetector, seq: int, care_epoch: int) -> Snapshot:
    state = zlib.compress(detector.dump(), 1)  # deterministic: the same state, the same bytes
    digest = hashlib.blake2b(state, digest_size=16).digest()  # of the compressed bytes: 20x fewer
    return Snapshot(detector, state, (seq, digest), care_epoch)


def save_checkpoints(session: Session, snapshots: dict[str, Snapshot], written_before: Mapping[str, Mark],
                     now: datetime) -> dict[str, Mark]:
    """Each home's detector and the journal position it has seen, in the caller's transaction; a home whose
    state and position are what its row already holds is not written again. Returns what was written (home ->
    (journal seq, digest of the state)) for the caller to keep once committed.

    Rows are read (without their state) and written in a few statements per batch, not a query per home: with
    a thousand homes touched by every batch, per-home ORM loads (each flushing the previous home's update)
    were most of the detectors' time (docs/benchmarks.md, Ingest)."""
    saved = _saved_checkpoints(session, list(snapshots))
    table = cast(Table, DetectorCheckpoint.__table__)  # a Table, typed as any FromClause
    inserts: list[dict[str, Any]] = []
    updates: dict[bool, list[dict[str, Any]]] = {False: [], True: []}  # by whether the baseline is written
    written: dict[str, Mark] = {}
    for home, (detector, state, mark, epoch) in snapshots.items():
        seq = mark[0]
        row = saved.get(home)
        if row is not None and row.version == CHECKPOINT_VERSION and written_before.get(home) == mark:
            continue  # unchanged since this process wrote it
        renewed = row is None or row.version != CHECKPOINT_VERSION  # learning started again: show it now
        row = row or _SavedCheckpoint(home, CHECKPOINT_VERSION, None, False)
        store_baseline(row, detector, force=renewed)
        values = {"b_home": home, "b_seq": seq, "b_version": CHECKPOINT_VERSION,
                  "b_state": state, "b_saved_at": now, "b_epoch": epoch}
        if home not in saved:
            inserts.append({"home_id": home, "journal_seq": seq, "version": CHECKPOINT_VERSION,
                            "state": values["b_state"], "saved_at": now, "baseline": row.new_baseline,
                            "baseline_at": row.baseline_at, "care_epoch": epoch})
        elif row.baseline_changed:
            updates[True].append({**values, "b_baseline": row.new_baseline, "b_baseline_at": row.baseline_at})
        else:
            updates[False].append({**values, "b_baseline_at": row.baseline_at})
        written[home] = mark
    if inserts:
        session.execute(table.insert(), inserts)
    for with_baseline, params in updates.items():
        if params:
            columns: dict[str, BindParameter[Any]] = {
                "journal_seq": bindparam("b_seq"), "version": bindparam("b_version"), "state": bindparam("b_state"),
                "saved_at": bindparam("b_saved_at"), "care_epoch": bindparam("b_epoch"),
                "baseline_at": bindparam("b_baseline_at")}
            if with_baseline:
                columns["baseline"] = bindparam("b_baseline")
            session.execute(table.update().where(table.c.home_id == bindparam("b_home")).values(columns), params)
    return written


class _Unread:
    """A saved baseline not read back: not None, and equal to no new baseline, which is therefore written."""

    def __eq__(self, other: object) -> bool:
        return other is self

    __hash__ = object.__hash__


UNREAD = _Unread()


class _SavedCheckpoint:
    """What :func:`store_baseline` reads and writes of a checkpoint row, read without the pickled state or the
    baseline's JSON: a baseline taken (at most once per hour of a home's time) is written without comparing it
    with the saved one, which would cost a query per home when the hour turns for all of them at once."""

    def __init__(self, home_id: str, version: int, baseline_at: datetime | None, has_baseline: bool) -> None:
        self.home_id = home_id
        self.version = version
        self.baseline_at = baseline_at
        self.baseline_changed = False
        self.has_baseline = has_baseline
        self._baseline: dict[str, Any] | None = None

    @property
    def baseline(self) -> dict[str, Any] | _Unread | None:
        return UNREAD if self.has_baseline and not self.baseline_changed else self._baseline

    @baseline.setter
    def baseline(self, value: dict[str, Any] | None) -> None:
        self._baseline, self.baseline_changed = value, True

    @property
    def new_baseline(self) -> dict[str, Any] | None:
        return self._baseline


def _saved_checkpoints(session: Session, homes: list[str]) -> dict[str, _SavedCheckpoint]:
    c = DetectorCheckpoint
    saved: dict[str, _SavedCheckpoint] = {}
    for i in range(0, len(homes), CHUNK):
        rows = session.execute(select(c.home_id, c.version, c.baseline_at, c.baseline.is_not(None))
                               .where(c.home_id.in_(homes[i:i + CHUNK])))
        saved.update((h, _SavedCheckpoint(h, v, at, bool(has))) for h, v, at, has in rows)
    return saved


def warm_baselines(sessions: sessionmaker[Session], observations: Iterable[ObservationLike], *,
                   homes: set[str] | None = None, config: DetectorConfig | None = None) -> dict[str, int]:
    """Feed homes' history (time-ordered observations) through fresh detectors and checkpoint them, so that a
    home starts on its learned routine. Replaces what was learned for those homes: run it with the gateway
    stopped. Returns the observations fed, per home."""
    detectors: dict[str, HomeDetector] = {}
    fed: dict[str, int] = {}
    with sessions() as session:
        for o in observations:
            if homes is not None and o.home not in homes:
                continue
            detector = detectors.get(o.home)
            if detector is None:
                zone = home_zone(session, o.home)
                detector = detectors[o.home] = HomeDetector(o.home, zone, config or DetectorConfig())
            feed(detector, o)  # alerts about the history are learned from, not raised
            fed[o.home] = fed.get(o.home, 0) + 1
        now = datetime.now(UTC)
        for home, detector in detectors.items():
            detector.forget_alerts()  # the history's alerts were never raised: live conditions raise their own
            ensure_homes(session, [home], now)
            home_row = session.get(Home, home)
            assert home_row is not None
            row = session.get(DetectorCheckpoint, home)
            blob = dump_detector(detector)
            if row is None:
                row = DetectorCheckpoint(home_id=home, journal_seq=0, version=CHECKPOINT_VERSION, state=blob,
                                         saved_at=now)
                session.add(row)
            else:
                row.journal_seq, row.version, row.state, row.saved_at = 0, CHECKPOINT_VERSION, blob, now
            row.care_epoch = home_row.care_epoch  # the history is the current resident's
            store_baseline(row, detector, force=True)
        session.commit()
    return fed


BASELINE_EVERY_MS = 3_600_000


def store_baseline(row: DetectorCheckpoint | _SavedCheckpoint, detector: HomeDetector, *, force: bool = False) -> None:
    """Keep the checkpoint's readable baseline (JSON, what the API shows) up to date, cheaply.

    ``detector.baseline()`` is taken at most once per hour of the detector's (event) time, which also catches each
    day closing (at a local midnight), and written only when it changed; ``force`` takes it now. A baseline that
    cannot be taken is logged and left as it was: it must never cost the checkpoint, which is the safety path."""
    now_ms = detector.now_ms
    taken = row.baseline_at
    same_hour = now_ms is None or (taken is not None and now_ms // BASELINE_EVERY_MS
                                   == int(taken.timestamp() * 1000) // BASELINE_EVERY_MS)
    if not force and same_hour and row.baseline is not None:  # the JSON is looked at only when the hour is not
        return
    try:
        baseline = _plain_json(detector.baseline())
        if not isinstance(baseline, dict):
            raise TypeError(f"baseline() gave {type(baseline).__name__}, not a dict")
    except Exception:
        log.exception("home %s: its baseline could not be taken; the last one stays", row.home_id)
        return
    if baseline != row.baseline:
        row.baseline = baseline
    row.baseline_at = to_datetime(now_ms) if now_ms is not None else None


def _plain_json(value: object) -> object:
    """Plain JSON on every backend: PostgreSQL refuses NaN and infinities (they become null), numpy scalars become
    Python numbers, tuples lists, times their ISO text."""
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    item = getattr(value, "item", None)  # a numpy scalar
    if callable(item):
        value = item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def home_zone(session: Session, home: str) -> ZoneInfo:
    return timezones.zone(session.scalar(select(Home.timezone).where(Home.id == home)), of=f"home {home}")

