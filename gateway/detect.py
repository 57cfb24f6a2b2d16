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
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.activity import NOT_JUDGED, Change, Judged
from analytics.alerts import Action, AlertEvent, AlertKind, Outcome
from analytics.detector import DetectorConfig, HomeDetector
from analytics.reading import observe_reading
from gateway.alerting.outcomes import Feedback, mark_fed, pending_feedback
from gateway.alerting.people import absences_for, end_absence
from gateway.alerting.record import apply_events
from gateway.clock import Clock
from gateway.contract import Kind
from gateway.db.models import Absence, DetectorCheckpoint, Home, Resident
from gateway.db.upserts import ensure_homes
from gateway.detector_checkpoints import (
    CHECKPOINT_VERSION,
    Mark,
    Snapshot,
    home_zone,
    load_detector,
    save_checkpoints,
    snapshot,
    to_datetime,
)
from gateway.device_table import DeviceTable
from gateway.journal import UNDECIDED, Entry
from gateway.logs import about
from gateway.stores.readings.base import DailySummary, ReadingStore

log = logging.getLogger(__name__)

REFRESH_S = 60.0  # how often devices' rooms and roles, and planned absences, are read again
OUTCOMES_S = 10.0  # how often carers' new outcomes are looked for (an indexed query for the few not yet learned)
HURRY_EVERY = 256  # entries fed, or homes pickled, between a batch's looks for presses to take ahead (catch_up)
HURRY_WAIT_S = 0.02  # wall seconds catch_up waits between looks at whether a batch is in progress
# What reaches a home's detectors (ticks of a simulated clock reach all of them).
DETECTED = frozenset({Kind.STATE, Kind.BRIDGE_STATE, Kind.AVAILABILITY, Kind.QUOTA})


class DetectorConsumer:
    name = "detect"

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, config: DetectorConfig | None = None,
                 on_alerts: Callable[[list[AlertEvent]], None] | None = None,
                 devices: DeviceTable | None = None,
                 before_commit: Callable[[Session, set[str]], None] | None = None,
                 owns: Callable[[str], bool] | None = None) -> None:
        self.sessions = sessions
        self.devices = devices or DeviceTable(sessions)  # the worker's, shared with the readings-store writer
        self.clock = clock
        self.config = config or DetectorConfig()
        self.on_alerts = on_alerts  # after commit: wakes the dispatcher, counts them
        # Cluster mode: called in every transaction that commits detectors' work, with the homes it commits, just
        # before the commit; raising rolls it back (the partition's fencing check, gateway.cluster.leases).
        self.before_commit = before_commit
        # Cluster mode: the homes this consumer watches (its partition's); carers' outcomes of others are left to
        # their owners. None: every home.
        self.owns = owns
        self.detectors: dict[str, HomeDetector] = {}
        self.seen_seq: dict[str, int] = {}
        self.care_epochs: dict[str, int] = {}  # the home's care epoch each detector learned in (Home.care_epoch)
        self._written: dict[str, Mark] = {}  # home -> (seq, state digest) its checkpoint row holds
        self._homes_known: set[str] = set()  # homes whose row this consumer has seen committed
        self.skipped = 0  # readings or wake-ups a detector failed on (logged with the reading)
        self._refreshed_at = -REFRESH_S
        self._outcomes_at = -OUTCOMES_S
        self._lock = threading.Lock()  # handle(), catch_up() and tick() come from different threads
        self._hurries: list[_Hurry] = []  # catch_up's requests, for whoever holds the lock next

    # --- Journal batches ----------------------------------------------------------------------------------------
    #
    # Each batch is three steps: what the detectors need from the database is read in one short transaction, the
    # readings are fed with no transaction open, and the alerts and checkpoints are written in a second one.
    # Under SQLite every transaction holds the write lock from its start (BEGIN IMMEDIATE), and a batch's feeding
    # takes long enough that the dispatcher, waiting for that lock to send a pendant alert, took seconds.

    def handle(self, entries: Sequence[Entry]) -> None:
        with self._lock:
            touched: set[str] = set()
            with self._forgotten_on_failure(touched):
                outcomes = self._prepare(entries)
                self._give_outcomes(outcomes, touched)
                events: list[AlertEvent] = []
                for i, entry in enumerate(entries):
                    if self._hurries and i % HURRY_EVERY == 0:
                        outcomes = self._serve_hurries(events, touched, outcomes)
                    if entry.kind == Kind.CLOCK:
                        self.clock.tick(entry.time_ms, float(entry.body.get("speed", 1.0)))
                        events += self._advance_all(entry.time_ms, touched)
                    elif _for_detectors(entry):
                        events += self._take(entry, touched)
                self._commit(events, touched, outcomes, serving_hurries=True)

    def catch_up(self, home: str, entries: Sequence[Entry]) -> int:
        """Feed one home's entries (in journal order, up to a button press) ahead of the journal's batches; returns
        the alerts raised.

        A home's detectors see only its own readings, so taking them early keeps each home's order: the batches that
        hold them later find them covered (as after a crash) and skip them. A batch in progress takes them at its
        next HURRY_EVERY entries (a batch of a backlog is seconds of feeding); with none in progress, this thread
        does. A pendant press behind a backlog of other homes' readings is then raised in well under a second
        rather than when the backlog drains."""
        mine = [e for e in entries if e.home == home and _for_detectors(e)]
        if not mine:
            return 0
        hurry = _Hurry(mine)
        self._hurries.append(hurry)  # one list operation: atomic under the GIL
        while True:
            if self._lock.acquire(blocking=False):  # no batch in progress: take it here
                try:
                    touched: set[str] = set()
                    with self._forgotten_on_failure(touched):
                        self._serve_hurries([], touched, [])
                finally:
                    self._lock.release()
            if hurry.done.wait(HURRY_WAIT_S):
                break
        if hurry.failed is not None:
            raise hurry.failed
        return hurry.raised

    def _serve_hurries(self, events: list[AlertEvent], touched: set[str], outcomes: list[Feedback]
                       ) -> list[Feedback]:
        """Feed the homes :meth:`catch_up` asked for, and commit them at once.

        ``events``, ``touched`` and ``outcomes`` are what the batch in progress has done so far: those of the
        hurried homes are committed with them (a checkpoint must not hold a state whose alerts are not recorded)
        and taken out; the rest wait for the batch's commit. Returns the outcomes still to commit."""
        hurries: list[_Hurry] = []
        while self._hurries:  # pop by pop: a request appended meanwhile is served now or at the next look
            hurries.append(self._hurries.pop(0))
        homes = {hurry.entries[0].home for hurry in hurries}
        try:
            mine = [e for e in events if e.home in homes]
            for hurry in hurries:
                self._prepare(hurry.entries, outcomes_due=False)
                taken: list[AlertEvent] = []
                for entry in hurry.entries:
                    taken += self._take(entry, touched)
                hurry.raised = sum(1 for e in taken if e.action is Action.RAISE)
                mine += taken
            self._commit(mine, touched & homes, [o for o in outcomes if o.home in homes])
        except BaseException as e:
            for hurry in hurries:
                hurry.failed = e
            raise
        finally:
            for hurry in hurries:
                hurry.done.set()
        # Committed: the batch goes on without them (its later entries of these homes touch them again).
        events[:] = [e for e in events if e.home not in homes]
        touched -= homes
        return [o for o in outcomes if o.home not in homes]

    def tick(self, now_ms: int) -> int:
        """Tell the detectors the time (call only when caught up with the journal); returns alerts raised."""
        with self._lock:
            touched: set[str] = set()
            with self._forgotten_on_failure(touched):
                outcomes = self._prepare(())
                self._give_outcomes(outcomes, touched)
                events = self._advance_all(now_ms, touched)
                self._commit(events, touched, outcomes)
            return sum(1 for e in events if e.action is Action.RAISE)

    def learn_outcomes(self) -> int:
        """Hand carers' new outcomes to the detectors now (they are otherwise looked for every OUTCOMES_S);
        returns how many were handed over."""
        with self._lock:
            touched: set[str] = set()
            with self._forgotten_on_failure(touched):
                self._outcomes_at = -OUTCOMES_S
                outcomes = self._prepare(())
                self._give_outcomes(outcomes, touched)
                self._commit([], touched, outcomes)
            return len(outcomes)

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
                self.care_epochs.pop(home, None)
            self._homes_known.clear()  # whatever failed, the homes' rows are made sure of again
            raise

    def _take(self, entry: Entry, touched: set[str]) -> list[AlertEvent]:
        """One journal entry into its home's detectors (loaded by :meth:`_prepare`), unless they have seen it."""
        assert entry.home is not None
        if entry.seq <= self.seen_seq.get(entry.home, 0):
            return []  # covered by the checkpoint (a batch handed out again after a crash) or taken by catch_up
        detector = self.detectors[entry.home]
        touched.add(entry.home)
        self.seen_seq[entry.home] = entry.seq
        try:
            if entry.kind == Kind.AVAILABILITY:  # a device on or off line, as the hub sees it
                return detector.availability(entry.time_ms, entry.device or "", bool(entry.body.get("online")))
            if entry.kind == Kind.QUOTA:  # the ingest refused some of the hub's messages (gateway.quotas)
                return detector.hub_misbehaving(entry.time_ms, str(entry.body.get("what", "")))
            if entry.kind == Kind.BRIDGE_STATE:
                return detector.hub(entry.time_ms, bool(entry.body.get("online")))
            assert entry.device is not None
            known_kind, room, role = self.devices.get(entry.home, entry.device)
            # The same call as `telecare analyse` makes for a neutral-CSV row, with the kind and the activity as
            # ingest decided them (gateway.reading_facts); an entry journaled before ingest decided them is
            # decided here, as it was then.
            change: Judged = NOT_JUDGED if entry.activity == UNDECIDED else _change(entry.activity)
            return observe_reading(detector, entry.time_ms, entry.device, entry.device_kind or known_kind,
                                   entry.body, room=room, role=role, change=change)
        except Exception:  # one reading a detector cannot take must not stop every home's watch
            self.skipped += 1
            log.exception("home %s: reading %d (%s) not taken by the detectors", entry.home, entry.seq, entry.device,
                          extra=about(home=entry.home, device=entry.device))
            return []

    def _give_outcomes(self, outcomes: list[Feedback], touched: set[str]) -> None:
        """Carers' outcomes not yet learned from, to the detectors; marked given in the transaction that
        checkpoints what the detectors learned (the home is touched), so each reaches them once."""
        for item in outcomes:
            try:
                detector = self.detectors[item.home]
                touched.add(item.home)  # checkpointed with the outcomes marked given, whatever it learned
                retract = item.previously_fed is Outcome.FALSE_ALARM and item.outcome is not Outcome.FALSE_ALARM
                detector.learn_outcome(item.kind, Outcome.FALSE_ALARM if retract else item.outcome,
                                       item.raised_at_ms, item.details, alert_id=item.alert_id, retract=retract)
            except ValueError:  # a kind or outcome of another version: nothing the detectors can learn from it
                log.warning("alert %d: outcome %s on %s not understood by the detectors", item.alert_id,
                            item.outcome, item.kind, extra=about(home=item.home, alert_id=item.alert_id))
        if outcomes:
            log.info("%d carers' outcome(s) handed to the detectors", len(outcomes))

    def flush_summaries(self, store: ReadingStore) -> int:
        """Write the days the detectors have closed to the readings store; they stay in the detectors' state
        (and checkpoints) until written, so a store away or a crash loses none. Returns the days written."""
        with self._lock:
            pending = {home: list(d.summaries) for home, d in self.detectors.items() if d.summaries}
        if not pending:
            return 0
        store.write_daily_summaries([DailySummary(s.home, s.day, dict(s.values))
                                     for days in pending.values() for s in days])  # raises when away
        with self._lock:
            for home, written in pending.items():
                detector = self.detectors[home]
                detector.summaries = [s for s in detector.summaries if s not in written]
            self._commit([], set(pending))
        return sum(len(days) for days in pending.values())

    def next_wake_ms(self) -> int | None:
        with self._lock:
            wakes = [w for d in self.detectors.values() if (w := d.next_wake_ms()) is not None]
        return min(wakes) if wakes else None

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
                log.exception("home %s: its detectors failed to move on to %d", home, now_ms, extra=about(home=home))
        return events

    # --- State --------------------------------------------------------------------------------------------------

    def _prepare(self, entries: Sequence[Entry], *, outcomes_due: bool = True) -> list[Feedback]:
        """One short transaction for what feeding ``entries`` needs from the database: rooms and roles, the
        detectors of homes not yet loaded, and (every OUTCOMES_S) carers' new outcomes, which are returned."""
        now = time.monotonic()  # about the machine's work, not the data: wall time
        unknown_device = any(e.kind == Kind.STATE and e.home is not None and e.device is not None
                             and not self.devices.knows(e.home, e.device) for e in entries)
        refresh = unknown_device or now - self._refreshed_at >= REFRESH_S
        want_outcomes = outcomes_due and now - self._outcomes_at >= OUTCOMES_S
        homes = {e.home for e in entries if e.home is not None and _for_detectors(e)} - self.detectors.keys()
        if not (refresh or want_outcomes or homes):
            return []
        with self.sessions() as session:
            if refresh:
                self._refreshed_at = now
                self._refresh(session)
            outcomes: list[Feedback] = []
            if want_outcomes:
                self._outcomes_at = now
                outcomes = [o for o in pending_feedback(session) if self.owns is None or self.owns(o.home)]
                homes |= {item.home for item in outcomes} - self.detectors.keys()
            for home in sorted(homes):
                self._load(session, home)
        return outcomes

    def _load(self, session: Session, home: str) -> None:
        detector = None
        row = session.get(DetectorCheckpoint, home)
        epoch = session.scalar(select(Home.care_epoch).where(Home.id == home)) or 0
        if row is not None:
            self.seen_seq[home] = row.journal_seq  # what the journal gave this home, whoever learned from it
        if row is not None and row.care_epoch != epoch:
            log.info("home %s: the person cared for has changed; its detectors start learning again", home,
                     extra=about(home=home))
        elif row is not None and row.version == CHECKPOINT_VERSION:
            try:
                detector = load_detector(row.state, home, home_zone(session, home), self.config)
                if detector.restarted:
                    log.warning("home %s: detector parts %s changed; they start learning again", home,
                                ", ".join(detector.restarted), extra=about(home=home))
            except Exception:
                log.exception("home %s: its detector checkpoint cannot be read; learning starts again", home,
                              extra=about(home=home))
        elif row is not None:
            log.warning("home %s: detector checkpoint version %d is not %d; learning starts again", home,
                        row.version, CHECKPOINT_VERSION, extra=about(home=home))
        if detector is None:
            detector = HomeDetector(home, home_zone(session, home), self.config)
        detector.set_absences(absences_for(session, home))
        self.detectors[home] = detector
        self.care_epochs[home] = epoch

    def _refresh(self, session: Session) -> None:
        """Rooms, roles, absences and care epochs come from the database: read again now and then, or for a new
        device. A home whose person cared for has changed (claimed by another organisation, a new resident) starts
        learning again: judging someone by another's routine would raise their false alarms and miss their falls."""
        self.devices.read(session)
        epochs = {home: epoch for home, epoch in session.execute(select(Home.id, Home.care_epoch))}
        for home in [h for h, epoch in self.care_epochs.items() if epochs.get(h, epoch) != epoch]:
            log.info("home %s: the person cared for has changed; its detectors start learning again", home,
                     extra=about(home=home))
            self.detectors[home] = HomeDetector(home, home_zone(session, home), self.config)
            self.care_epochs[home] = epochs[home]
        for home, detector in self.detectors.items():
            detector.set_absences(absences_for(session, home))

    def _commit(self, events: list[AlertEvent], touched: set[str], outcomes: Sequence[Feedback] = (), *,
                serving_hurries: bool = False) -> None:
        if not events and not touched:
            return
        # Pickled before the transaction begins: under SQLite it holds the write lock from its first statement to
        # the commit, and the dispatcher's sends wait for it. Pickling a backlog batch's thousand homes takes long
        # enough that a batch (``serving_hurries``) serves presses between homes too: their homes are committed
        # then, and left out here.
        snapshots: dict[str, Snapshot] = {}
        for i, home in enumerate(sorted(touched)):
            if serving_hurries and self._hurries and i % HURRY_EVERY == 0:
                outcomes = self._serve_hurries(events, touched, list(outcomes))
                for gone in snapshots.keys() - touched:
                    del snapshots[gone]
            if home in touched:
                snapshots[home] = snapshot(self.detectors[home], self.seen_seq.get(home, 0),
                                           self.care_epochs.get(home, 0))
        if not events and not touched:
            return
        now = to_datetime(self.clock.now_ms())
        new_homes = ({e.home for e in events} | touched) - self._homes_known
        with self.sessions() as session:
            ensure_homes(session, new_homes, now)  # one statement, for the homes not yet known to have a row
            if outcomes:
                mark_fed(session, outcomes, now)
            if events:
                apply_events(session, events, now)
                for e in events:
                    if e.kind is AlertKind.RETURNED and "absence_start" in e.details:
                        _end_returned(session, e.home, e.details["absence_start"], e.at_ms)
            written = save_checkpoints(session, snapshots, self._written, now)
            if self.before_commit is not None:
                self.before_commit(session, {e.home for e in events} | touched)
            session.commit()
        self._written.update(written)  # only once committed: a failed commit leaves them to be written again
        self._homes_known |= new_homes
        if events:
            log.info("%d alert event(s): %s", len(events),
                     "; ".join(f"{e.home} {e.action} {e.kind}" for e in events[:5]))
            if self.on_alerts is not None:
                self.on_alerts(events)


class _Hurry:
    """A home's entries that :meth:`DetectorConsumer.catch_up` asked to take ahead, and what came of it."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.done = threading.Event()
        self.raised = 0
        self.failed: BaseException | None = None


def _change(activity: str | None) -> Change | None:
    return Change(activity) if activity else None


def _for_detectors(entry: Entry) -> bool:
    return entry.home is not None and entry.kind in DETECTED


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
