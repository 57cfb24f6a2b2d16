"""The detectors as a journal consumer: readings in, alerts recorded (and queued for carers) in the database.

Each home has one :class:`analytics.detector.HomeDetector`, fed in journal order with event times. After every
batch, in one transaction, the alerts it produced are applied (:func:`gateway.alerting.record.apply_events`,
which also fills the outbox) and each touched home's detector is checkpointed with the journal sequence number
it has seen. After a crash, the journal hands the batch out again and entries a checkpoint already covers are
skipped: every reading reaches a detector once, and every alert is recorded once. The safety path never
queries the readings store.

Time passes in two ways. Readings carry theirs. With nothing arriving, :meth:`DetectorConsumer.tick` tells the
detectors the gateway clock's time, once the consumer has caught up with the journal (a backlog is old news: its
readings must be seen before "now"). Under a simulated clock, ticks are journal entries like the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertEvent, AlertKind, Outcome
from analytics.detector import DetectorConfig, HomeDetector
from analytics.reading import observe_reading
from analytics.replay import ObservationLike, feed
from gateway.alerting.outcomes import mark_fed, pending_feedback
from gateway.alerting.people import absences_for, end_absence
from gateway.alerting.record import apply_events
from gateway.clock import Clock
from gateway.contract import Kind
from gateway.db.models import DEFAULT_TIMEZONE, Absence, DetectorCheckpoint, Device, Home, Resident
from gateway.journal import Entry
from gateway.stores.readings.base import DailySummary, ReadingStore

log = logging.getLogger(__name__)

# The checkpoint's format (HomeDetector.dump). Each watcher inside carries its own version, and only a watcher
# whose version changed starts learning again; bump this only when the format around them changes.
CHECKPOINT_VERSION = 2
REFRESH_S = 60.0  # how often devices' rooms and roles, and planned absences, are read again
OUTCOMES_S = 10.0  # how often carers' new outcomes are looked for (an indexed query for the few not yet learned)
CHUNK = 500  # homes per IN (...) query: well under SQLite's bound-parameter limit


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def dump_detector(detector: HomeDetector) -> bytes:
    return zlib.compress(detector.dump(), 1)


def load_detector(blob: bytes, home: str | None = None, tz: tzinfo | None = None,
                  config: DetectorConfig | None = None) -> HomeDetector:
    """Our own checkpoint, written by this consumer (home and zone default to the saved ones)."""
    return HomeDetector.load(zlib.decompress(blob), home, tz, config)


class DetectorConsumer:
    name = "detect"

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, config: DetectorConfig | None = None,
                 on_alerts: Callable[[list[AlertEvent]], None] | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config or DetectorConfig()
        self.on_alerts = on_alerts  # after commit: wakes the dispatcher, counts them
        self.detectors: dict[str, HomeDetector] = {}
        self.seen_seq: dict[str, int] = {}
        self._written: dict[str, tuple[int, bytes]] = {}  # home -> (seq, state digest) its checkpoint row holds
        self.skipped = 0  # readings or wake-ups a detector failed on (logged with the reading)
        self._devices: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}
        self._refreshed_at = -REFRESH_S
        self._outcomes_at = -OUTCOMES_S
        self._lock = threading.Lock()  # handle() and tick() come from different threads

    # --- Journal batches ----------------------------------------------------------------------------------------

    def handle(self, entries: Sequence[Entry]) -> None:
        with self._lock, self.sessions() as session:
            touched: set[str] = set()
            with self._forgotten_on_failure(touched):
                self._refresh(session, entries)
                events: list[AlertEvent] = []
                self._learn_outcomes(session, touched)
                for entry in entries:
                    if entry.kind == Kind.CLOCK:
                        tick = getattr(self.clock, "tick", None)
                        if tick is not None:
                            tick(entry.time_ms, float(entry.body.get("speed", 1.0)))
                        events += self._advance_all(entry.time_ms, touched)
                        continue
                    if entry.home is None or entry.kind not in (Kind.STATE, Kind.BRIDGE_STATE, Kind.AVAILABILITY,
                                                                Kind.QUOTA):
                        continue
                    detector = self._detector(session, entry.home)
                    if entry.seq <= self.seen_seq.get(entry.home, 0):
                        continue  # covered by the checkpoint: this batch was handed out again after a crash
                    touched.add(entry.home)
                    events += self._take(detector, entry)
                    self.seen_seq[entry.home] = entry.seq
                self._commit(session, events, touched)

    def tick(self, now_ms: int) -> int:
        """Tell the detectors the time (call only when caught up with the journal); returns alerts raised."""
        with self._lock, self.sessions() as session:
            touched: set[str] = set()
            with self._forgotten_on_failure(touched):
                self._learn_outcomes(session, touched)
                events = self._advance_all(now_ms, touched)
                self._commit(session, events, touched)
            return sum(1 for e in events if e.action is Action.RAISE)

    @contextlib.contextmanager
    def _forgotten_on_failure(self, touched: set[str]) -> Iterator[None]:
        """What the detectors of ``touched`` homes learned in a transaction that did not commit is forgotten: they
        are read again from their checkpoints when the batch comes again, so its readings are neither skipped
        (their positions were moved in memory) nor counted twice, and its alerts are raised once."""
        try:
            yield
        except BaseException:
            for home in touched:
                self.detectors.pop(home, None)
                self.seen_seq.pop(home, None)
            raise

    def _take(self, detector: HomeDetector, entry: Entry) -> list[AlertEvent]:
        """One journal entry into its home's detectors."""
        try:
            if entry.kind == Kind.AVAILABILITY:  # a device on or off line, as the hub sees it
                return detector.availability(entry.time_ms, entry.device or "", bool(entry.body.get("online")))
            if entry.kind == Kind.QUOTA:  # the ingest refused some of the hub's messages (gateway.quotas)
                return detector.hub_misbehaving(entry.time_ms, str(entry.body.get("what", "")))
            return self._feed(detector, entry)
        except Exception:  # one reading a detector cannot take must not stop every home's watch
            self.skipped += 1
            log.exception("home %s: reading %d (%s) not taken by the detectors", entry.home, entry.seq, entry.device)
            return []

    def learn_outcomes(self) -> int:
        """Hand carers' new outcomes to the detectors now (they are otherwise looked for every OUTCOMES_S);
        returns how many were handed over."""
        with self._lock, self.sessions() as session:
            touched: set[str] = set()
            with self._forgotten_on_failure(touched):
                self._outcomes_at = -OUTCOMES_S
                learned = self._learn_outcomes(session, touched)
                self._commit(session, [], touched)
            return learned

    def _learn_outcomes(self, session: Session, touched: set[str]) -> int:
        """Carers' outcomes not yet learned from, to the detectors; marked given in the transaction that
        checkpoints what the detectors learned (the home is touched), so each reaches them once."""
        now = time.monotonic()  # about the machine's work, not the data: wall time
        if now - self._outcomes_at < OUTCOMES_S:
            return 0
        self._outcomes_at = now
        pending = pending_feedback(session)
        for item in pending:
            try:
                detector = self._detector(session, item.home)
                touched.add(item.home)  # checkpointed with the outcomes marked given, whatever it learned
                retract = item.previously_fed is Outcome.FALSE_ALARM and item.outcome is not Outcome.FALSE_ALARM
                detector.learn_outcome(item.kind, Outcome.FALSE_ALARM if retract else item.outcome,
                                       item.raised_at_ms, item.details, alert_id=item.alert_id, retract=retract)
            except ValueError:  # a kind or outcome of another version: nothing the detectors can learn from it
                log.warning("alert %d: outcome %s on %s not understood by the detectors", item.alert_id,
                            item.outcome, item.kind)
        if pending:
            mark_fed(session, pending, to_datetime(self.clock.now_ms()))
            log.info("%d carers' outcome(s) handed to the detectors", len(pending))
        return len(pending)

    def flush_summaries(self, store: ReadingStore) -> int:
        """Write the days the detectors have closed to the readings store; they stay in the detectors' state
        (and checkpoints) until written, so a store away or a crash loses none. Returns the days written."""
        with self._lock:
            pending = {home: list(d.summaries) for home, d in self.detectors.items() if d.summaries}
        if not pending:
            return 0
        store.write_daily_summaries([DailySummary(s.home, s.day, dict(s.values))
                                     for days in pending.values() for s in days])  # raises when away
        with self._lock, self.sessions() as session:
            for home, written in pending.items():
                detector = self.detectors[home]
                detector.summaries = [s for s in detector.summaries if s not in written]
            self._commit(session, [], set(pending))
        return sum(len(days) for days in pending.values())

    def next_wake_ms(self) -> int | None:
        with self._lock:
            wakes = [w for d in self.detectors.values() if (w := d.next_wake_ms()) is not None]
        return min(wakes) if wakes else None

    # --- Feeding ------------------------------------------------------------------------------------------------

    def _feed(self, detector: HomeDetector, entry: Entry) -> list[AlertEvent]:
        if entry.kind == Kind.BRIDGE_STATE:
            return detector.hub(entry.time_ms, bool(entry.body.get("online")))
        assert entry.home is not None and entry.device is not None
        known_kind, room, role = self._devices.get((entry.home, entry.device), (None, None, None))
        # The same call as `telecare analyse` makes for a neutral-CSV row: the two cannot decide differently.
        return observe_reading(detector, entry.time_ms, entry.device, known_kind, entry.body, room=room, role=role)

    def _advance_all(self, now_ms: int, touched: set[str]) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for home, detector in self.detectors.items():
            try:
                wake = detector.next_wake_ms()
                if wake is not None and wake <= now_ms:
                    events += detector.advance(now_ms)
                    touched.add(home)
            except Exception:  # as above: one home's fault stays that home's
                self.skipped += 1
                log.exception("home %s: its detectors failed to move on to %d", home, now_ms)
        return events

    # --- State --------------------------------------------------------------------------------------------------

    def _detector(self, session: Session, home: str) -> HomeDetector:
        detector = self.detectors.get(home)
        if detector is not None:
            return detector
        row = session.get(DetectorCheckpoint, home)
        if row is not None and row.version == CHECKPOINT_VERSION:
            try:
                detector = load_detector(row.state, home, _zone(session, home), self.config)
                self.seen_seq[home] = row.journal_seq
                if detector.restarted:
                    log.warning("home %s: detector parts %s changed; they start learning again", home,
                                ", ".join(detector.restarted))
            except Exception:
                log.exception("home %s: its detector checkpoint cannot be read; learning starts again", home)
        elif row is not None:
            log.warning("home %s: detector checkpoint version %d is not %d; learning starts again", home,
                        row.version, CHECKPOINT_VERSION)
        if detector is None:
            detector = HomeDetector(home, _zone(session, home), self.config)
        detector.set_absences(absences_for(session, home))
        self.detectors[home] = detector
        return detector

    def _refresh(self, session: Session, entries: Sequence[Entry]) -> None:
        """Rooms, roles and absences come from the database: read again now and then, or for a new device."""
        unknown = any(e.kind == Kind.STATE and e.home is not None and (e.home, e.device) not in self._devices
                      for e in entries)
        now = time.monotonic()  # about the machine's work, not the data: wall time
        if not unknown and now - self._refreshed_at < REFRESH_S:
            return
        self._refreshed_at = now
        rows = session.execute(select(Device.home_id, Device.name, Device.kind, Device.room, Device.role))
        self._devices = {(h, n): (k, r, ro) for h, n, k, r, ro in rows}
        for home, detector in self.detectors.items():
            detector.set_absences(absences_for(session, home))

    def _commit(self, session: Session, events: list[AlertEvent], touched: set[str]) -> None:
        if not events and not touched:
            return
        now = to_datetime(self.clock.now_ms())
        # Pickled before the first statement of a transaction that begins it: SQLite's BEGIN IMMEDIATE holds the
        # write lock from there to the commit, and the dispatcher's sends wait for it.
        states = self._states(sorted(touched))
        homes = sorted({e.home for e in events} | touched)
        known = _existing_homes(session, homes)  # one query per CHUNK homes, not one per home
        for home in homes:
            if home not in known:
                session.add(Home(id=home, first_seen=now))
        session.flush()
        if events:
            apply_events(session, events, now)
            for e in events:
                if e.kind is AlertKind.RETURNED and "absence_start" in e.details:
                    _end_returned(session, e.home, e.details["absence_start"], e.at_ms)
        written = self._checkpoint(session, states, now)
        session.commit()
        self._written.update(written)  # only once committed: a failed commit leaves them to be written again
        if events:
            log.info("%d alert event(s): %s", len(events),
                     "; ".join(f"{e.home} {e.action} {e.kind}" for e in events[:5]))
            if self.on_alerts is not None:
                self.on_alerts(events)

    def _states(self, homes: list[str]) -> dict[str, tuple[bytes, tuple[int, bytes]]]:
        """Each home's checkpoint: its detector's state, compressed, and (journal seq, digest of that state)."""
        states = {}
        for home in homes:
            state = zlib.compress(self.detectors[home].dump(), 1)  # deterministic: the same state, the same bytes
            digest = hashlib.blake2b(state, digest_size=16).digest()  # of the compressed bytes: 20x fewer
            states[home] = (state, (self.seen_seq.get(home, 0), digest))
        return states

    def _checkpoint(self, session: Session, states: dict[str, tuple[bytes, tuple[int, bytes]]], now: datetime
                    ) -> dict[str, tuple[int, bytes]]:
        """Each home's detector and the journal position it has seen, in the caller's transaction; a home whose
        state and position are what its row already holds is not written again. Returns what was written (home ->
        (journal seq, digest of the state)) for the caller to keep once committed.

        Rows are read (without their state) and written in a few statements per batch, not a query per home: with
        a thousand homes touched by every batch, per-home ORM loads (each flushing the previous home's update)
        were most of the detectors' time (docs/benchmarks.md, Ingest)."""
        saved = _saved_checkpoints(session, list(states))
        table = DetectorCheckpoint.__table__
        inserts: list[dict[str, Any]] = []
        updates: dict[bool, list[dict[str, Any]]] = {False: [], True: []}  # by whether the baseline is written
        written: dict[str, tuple[int, bytes]] = {}
        for home, (state, mark) in states.items():
            detector, seq = self.detectors[home], mark[0]
            row = saved.get(home)
            if row is not None and row.version == CHECKPOINT_VERSION and self._written.get(home) == mark:
                continue  # unchanged since this process wrote it
            renewed = row is None or row.version != CHECKPOINT_VERSION  # learning started again: show it now
            row = row or _SavedCheckpoint(home, CHECKPOINT_VERSION, None, False)
            store_baseline(row, detector, force=renewed)
            values = {"b_home": home, "b_seq": seq, "b_version": CHECKPOINT_VERSION,
                      "b_state": state, "b_saved_at": now}
            if home not in saved:
                inserts.append({"home_id": home, "journal_seq": seq, "version": CHECKPOINT_VERSION,
                                "state": values["b_state"], "saved_at": now, "baseline": row.new_baseline,
                                "baseline_at": row.baseline_at})
            elif row.baseline_changed:
                updates[True].append({**values, "b_baseline": row.new_baseline, "b_baseline_at": row.baseline_at})
            else:
                updates[False].append({**values, "b_baseline_at": row.baseline_at})
            written[home] = mark
        if inserts:
            session.execute(table.insert(), inserts)
        for with_baseline, params in updates.items():
            if params:
                columns = {"journal_seq": bindparam("b_seq"), "version": bindparam("b_version"),
                           "state": bindparam("b_state"), "saved_at": bindparam("b_saved_at"),
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


def _existing_homes(session: Session, homes: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(homes), CHUNK):
        found.update(session.scalars(select(Home.id).where(Home.id.in_(homes[i:i + CHUNK]))))
    return found


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
                detector = detectors[o.home] = HomeDetector(o.home, _zone(session, o.home), config or DetectorConfig())
            feed(detector, o)  # alerts about the history are learned from, not raised
            fed[o.home] = fed.get(o.home, 0) + 1
        now = datetime.now(UTC)
        for home, detector in detectors.items():
            if session.get(Home, home) is None:
                session.add(Home(id=home, first_seen=now))
                session.flush()
            row = session.get(DetectorCheckpoint, home)
            blob = dump_detector(detector)
            if row is None:
                row = DetectorCheckpoint(home_id=home, journal_seq=0, version=CHECKPOINT_VERSION, state=blob,
                                         saved_at=now)
                session.add(row)
            else:
                row.journal_seq, row.version, row.state, row.saved_at = 0, CHECKPOINT_VERSION, blob, now
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


def _end_returned(session: Session, home: str, start_ms: int, back_ms: int) -> None:
    """The resident was seen back: the planned absence ends then (the coordinator sees it ended, and why)."""
    start = to_datetime(start_ms)
    absence = session.scalar(
        select(Absence).join(Resident, Resident.id == Absence.resident_id)
        .where(Resident.home_id == home, Absence.starts_at >= start - timedelta(milliseconds=1),
               Absence.starts_at <= start + timedelta(milliseconds=1)))
    back = to_datetime(back_ms)
    if absence is not None and (absence.ends_at is None or absence.ends_at > back):
        end_absence(session, absence.id, back)


def _zone(session: Session, home: str) -> ZoneInfo:
    name = session.scalar(select(Home.timezone).where(Home.id == home)) or DEFAULT_TIMEZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("home %s: unknown time zone %r; using %s", home, name, DEFAULT_TIMEZONE)
        return ZoneInfo(DEFAULT_TIMEZONE)

