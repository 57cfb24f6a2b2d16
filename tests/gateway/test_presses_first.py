"""A pendant press behind a backlog of other homes' readings is raised before the backlog drains (issue 11,
finding 8): ingest marks it in the journal, and the detectors take the pressed home's entries ahead of the rest,
in that home's order, once."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertEvent
from gateway.alerting.outcomes import Feedback
from gateway.clock import SimulatedClock
from gateway.contract import Kind
from gateway.db.models import Alert, DetectorCheckpoint
from gateway.detect import DetectorConsumer
from gateway.ingest import Ingest
from gateway.journal import Entry, Journal, NewEntry
from gateway.metrics import IngestMetrics
from gateway.presses_first import PressesFirst

HOME = "h1"  # tests/gateway/conftest.py: the simulated home, described (its pendant has the role), with a resident
T0 = int(datetime(2026, 1, 12, 14, 2, tzinfo=UTC).timestamp() * 1000)
OTHERS = [f"other{i}" for i in range(50)]


def state(home: str, device: str, time_ms: int, body: dict[str, object]) -> NewEntry:
    return (str(Kind.STATE), home, device, time_ms, time_ms, True, body)


def backlog_with_a_press(journal: Journal) -> None:
    """Readings of 50 other homes, h1 kitchen motion, more readings, h1's pendant pressed, then more readings."""
    def others(t: int) -> list[NewEntry]:
        return [state(h, "hall_pir", t, {"occupancy": True}) for h in OTHERS]
    journal.append(others(T0))
    journal.append([*others(T0 + 1000), state(HOME, "kitchen_pir", T0 + 1500, {"occupancy": True})])
    journal.append([*others(T0 + 2000), state(HOME, "pendant", T0 + 2500, {"action": "single"}), *others(T0 + 3000)],
                   urgent=[len(OTHERS)])
    journal.append(others(T0 + 4000))


def consumer(sessions: sessionmaker[Session]) -> DetectorConsumer:
    clock = SimulatedClock()
    clock.tick(T0, 1.0)
    return DetectorConsumer(sessions, clock)


def pendant_alerts(sessions: sessionmaker[Session]) -> list[Alert]:
    with sessions() as s:
        return list(s.scalars(select(Alert).where(Alert.kind == "pendant")))


def test_ingest_marks_a_button_action_urgent_and_nothing_else(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    ingest = Ingest(journal, SimulatedClock(), IngestMetrics(), batch_max=100)
    for mid, (device, body) in enumerate([("hall_pir", {"occupancy": True}), ("pendant", {"action": "single"}),
                                          ("pendant", {"action": ""}), ("fridge", {"contact": False})]):
        ingest.offer(mid, 0, f"telecare/h9/{device}", orjson.dumps(body))
    ingest.step()
    assert journal.urgent_after(0) == [(2, "h9")], "the press only; an action cleared with '' is no press"


def test_a_press_behind_a_backlog_is_raised_before_the_backlog_is_taken(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    detect = consumer(sessions)
    journal.register(detect.name)
    backlog_with_a_press(journal)

    assert PressesFirst(journal, detect).step() == 1
    [alert] = pendant_alerts(sessions)
    assert alert.state == "raised" and "Pendant pressed at 14:02" in alert.message
    assert "in the kitchen" in alert.message, "the home's earlier readings were taken first, in order"
    assert set(detect.detectors) == {HOME}, "no other home's readings were taken out of turn"
    assert journal.position(detect.name) == 0, "the journal position is the batches' to move"
    with sessions() as s:
        assert s.get(DetectorCheckpoint, HOME).journal_seq == 3 * len(OTHERS) + 2  # type: ignore[union-attr]

    assert PressesFirst(journal, detect).step() == 0, "a second look finds the press taken: nothing raised again"
    entries = journal.read(detect.name, 10_000)
    detect.handle(entries)
    journal.advance(detect.name, entries[-1].seq)
    assert len(pendant_alerts(sessions)) == 1, "the batch that holds the press skips it: raised once"
    assert set(detect.detectors) == {HOME, *OTHERS}
    assert PressesFirst(journal, detect).step() == 0, "nothing left ahead of the detectors"


def test_presses_are_looked_for_only_after_the_last_handed_over(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    detect = consumer(sessions)
    journal.register(detect.name)
    backlog_with_a_press(journal)
    first = PressesFirst(journal, detect)
    assert first.step() == 1
    journal.append([state(HOME, "pendant", T0 + 60_000, {"action": "double"})], urgent=[0])
    assert first.step() == 0, "the pendant alert is open already: the same situation, not a second one"
    assert detect.seen_seq[HOME] == journal.last_seq, "the new press was taken ahead too"
    assert len(pendant_alerts(sessions)) == 1


def test_trimming_the_journal_forgets_its_presses(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("detect")
    backlog_with_a_press(journal)
    journal.advance("detect", journal.last_seq)
    journal.trim()
    assert journal.urgent_after(0) == []


class PressedDuringABatch(DetectorConsumer):
    """A consumer whose batch meets a press that the presses-first loop hands over (:meth:`press_now`)."""

    def __init__(self, sessions: sessionmaker[Session], journal: Journal, press_seq: int) -> None:
        clock = SimulatedClock()
        clock.tick(T0, 1.0)
        super().__init__(sessions, clock)
        self.journal, self.press_seq, self.sessions_for_check = journal, press_seq, sessions
        self.raised_by_catch_up: list[int] = []

    def press_now(self) -> None:
        """catch_up from another thread, as the presses-first loop calls it; returns once it is queued."""
        press = self.journal.read_home(HOME, 0, self.press_seq)
        self.thread = threading.Thread(target=lambda: self.raised_by_catch_up.append(self.catch_up(HOME, press)))
        self.thread.start()
        while not self._hurries:
            time.sleep(0.001)


class PressedMidBatch(PressedDuringABatch):
    """The press is found while the batch is being fed."""

    def __init__(self, sessions: sessionmaker[Session], journal: Journal, press_seq: int, last_seq: int) -> None:
        super().__init__(sessions, journal, press_seq)
        self.last_seq = last_seq
        self.alerts_before_the_batch_ended: int | None = None

    def _take(self, entry: Entry, touched: set[str]) -> list[AlertEvent]:
        if entry.seq == 10:
            self.press_now()
        if entry.seq == self.last_seq:
            self.alerts_before_the_batch_ended = len(pendant_alerts(self.sessions_for_check))
        return super()._take(entry, touched)


def test_a_batch_in_progress_takes_the_press_at_its_next_look_and_commits_it_at_once(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    for minute in range(20):  # 1,000 readings of other homes, more than a batch feeds between two looks
        journal.append([state(h, "hall_pir", T0 + minute * 1000, {"occupancy": True}) for h in OTHERS])
    backlog_with_a_press(journal)
    [(press_seq, _)] = journal.urgent_after(0)
    detect = PressedMidBatch(sessions, journal, press_seq, journal.last_seq)
    journal.register(detect.name)
    detect.handle(journal.read(detect.name, 10_000))
    detect.thread.join(timeout=10)
    assert detect.raised_by_catch_up == [1], "taken ahead: the batch had not reached the press"
    assert detect.alerts_before_the_batch_ended == 1, "committed at the batch's next look, not at its end"
    assert len(pendant_alerts(sessions)) == 1, "and not raised again when the batch reached the press"
    with sessions() as s:
        assert s.get(DetectorCheckpoint, "other0").journal_seq > 0  # type: ignore[union-attr]


class PressedAtTheBatchsEnd(PressedDuringABatch):
    """The press is found after the batch is fed, while it pickles its homes to commit them."""

    def __init__(self, sessions: sessionmaker[Session], journal: Journal, trigger_seq: int, press_seq: int) -> None:
        super().__init__(sessions, journal, press_seq)
        self.trigger_seq = trigger_seq
        self.commits: list[tuple[str, str]] = []

    def _take(self, entry: Entry, touched: set[str]) -> list[AlertEvent]:
        taken = super()._take(entry, touched)
        if entry.seq == self.trigger_seq:
            self.press_now()
        return taken

    def _commit(self, events: list[AlertEvent], touched: set[str], outcomes: Sequence[Feedback] = (), *,
                serving_hurries: bool = False) -> None:
        which = "batch" if serving_hurries else "press"
        self.commits.append(("start", which))
        super()._commit(events, touched, outcomes, serving_hurries=serving_hurries)
        self.commits.append(("end", which))


def test_a_batch_committing_takes_the_press_before_it_writes(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    backlog_with_a_press(journal)
    [(press_seq, _)] = journal.urgent_after(0)
    detect = PressedAtTheBatchsEnd(sessions, journal, trigger_seq=press_seq - 1, press_seq=press_seq)
    journal.register(detect.name)
    detect.handle([e for e in journal.read(detect.name, 10_000) if e.seq < press_seq])  # the press is not in it
    detect.thread.join(timeout=10)
    assert detect.raised_by_catch_up == [1]
    assert detect.commits == [("start", "batch"), ("start", "press"), ("end", "press"), ("end", "batch")]
    with sessions() as s:
        row = s.get(DetectorCheckpoint, HOME)
        assert row is not None and row.journal_seq == press_seq, \
            "the batch did not write its older checkpoint of the pressed home over the press's"
