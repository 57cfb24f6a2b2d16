"""Each reading's device kind and activity, decided once at ingest and journaled with it (gateway.reading_facts):
what the writer, the registry, the detectors and the API then all take as it was decided."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from analytics.detector import HomeDetector
from gateway.clock import SimulatedClock
from gateway.device_table import DeviceInfo, DeviceTable
from gateway.ingest import Ingest
from gateway.journal import Entry, Journal
from gateway.metrics import IngestMetrics
from gateway.reading_facts import ReadingFacts

T = 1_764_000_000_000


def test_the_described_kind_wins_and_an_inferred_kind_is_kept_for_reports_that_reveal_none() -> None:
    facts = ReadingFacts(DeviceTable(devices={("h1", "pad"): DeviceInfo("presence", "bedroom", "bed")}))
    assert facts.judge("h1", "pad", {"occupancy": True}) == ("presence", None), "described: a pad, not a PIR"
    assert facts.judge("h1", "pir", {"occupancy": True}) == ("motion", "motion")
    assert facts.judge("h1", "pir", {"battery": 80}) == ("motion", None), "a battery report keeps the kind"
    assert facts.judge("h1", "thing", {"battery": 80}) == (None, None)


def test_activity_is_a_change_and_the_first_state_of_a_contact_is_only_learned() -> None:
    facts = ReadingFacts()
    decided = [facts.judge("h1", device, fields)[1] for device, fields in [
        ("door", {"contact": True}), ("door", {"contact": True}), ("door", {"contact": False}),
        ("pir", {"occupancy": True}), ("pir", {"occupancy": True, "battery": 70}), ("pir", {"occupancy": False}),
        ("pir", {"occupancy": True}), ("kettle", {"power": 2000}), ("kettle", {"power": 1900})]]
    assert decided == [None, None, "opened", "motion", None, None, "motion", "power_on", None]
    assert facts.judge("h2", "door", {"contact": False})[1] is None, "another home's door is its own"


def test_a_state_counts_once_its_batch_committed_and_goes_with_its_forgotten_home() -> None:
    facts = ReadingFacts()
    facts.judge("h1", "pir", {"occupancy": True})
    assert facts.committed_state("h1", "pir") is None, "decided in the batch being built"
    facts.rolled_back()
    assert facts.committed_state("h1", "pir") is None and facts.pending() == {}
    facts.judge("h1", "pir", {"occupancy": True})
    facts.judge("h2", "pir", {"occupancy": True})
    facts.committed()
    assert facts.committed_state("h1", "pir") == ("motion", True)
    facts.forget({"h1"})
    assert facts.committed_state("h1", "pir") is None and facts.committed_state("h2", "pir") == ("motion", True)
    assert facts.judge("h1", "pir", {"occupancy": True})[1] == "motion", "judged afresh, as a new home's"


def ingest_at(tmp_path: Path) -> tuple[Ingest, Journal]:
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.register("t")
    clock = SimulatedClock()
    clock.tick(T, 1.0)
    return Ingest(journal, clock, IngestMetrics(), linger_s=0), journal


def states_of(journal: Journal) -> list[tuple[str | None, str | None, str | None]]:
    entries: list[Entry] = journal.read("t", 1000)
    journal.advance("t", entries[-1].seq)
    return [(e.device, e.device_kind, e.activity) for e in entries]


def test_ingest_journals_the_decision_and_a_restart_decides_the_next_reading_from_the_committed_state(
        tmp_path: Path) -> None:
    ingest, journal = ingest_at(tmp_path)
    ingest.offer(1, 1, "telecare/h1/front_door", b'{"contact": true}')
    ingest.offer(2, 1, "telecare/h1/hall_pir", b'{"occupancy": true}')
    ingest.offer(3, 1, "telecare/h1/hall_pir/availability", b'online')
    ingest.step()
    assert states_of(journal) == [("front_door", "contact", None), ("hall_pir", "motion", "motion"),
                                  ("hall_pir", None, "")]
    journal.close()

    ingest, journal = ingest_at(tmp_path)  # a restart: the door's last state comes back from the journal's file
    ingest.offer(4, 1, "telecare/h1/front_door", b'{"contact": false}')
    ingest.offer(5, 1, "telecare/h1/hall_pir", b'{"occupancy": true}')
    ingest.step()
    assert states_of(journal) == [("front_door", "contact", "opened"), ("hall_pir", "motion", None)]


def test_a_batch_that_fails_to_commit_is_decided_again_from_the_state_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest, journal = ingest_at(tmp_path)
    append = journal.append
    failures = iter([True])

    def fail_once(*args: object) -> int:
        if next(failures, False):
            raise OSError("disk full")
        return append(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(journal, "append", fail_once)
    ingest.offer(1, 1, "telecare/h1/hall_pir", b'{"occupancy": true}')
    with pytest.raises(OSError):
        ingest.step()
    ingest.step()
    assert states_of(journal) == [("hall_pir", "motion", "motion")], "not taken for a repeat of the failed batch"
    assert journal.device_states() == {("h1", "hall_pir"): ("motion", True)}


def test_the_detectors_take_the_activity_as_decided_not_as_their_own_tracker_would() -> None:
    detector = HomeDetector("h1", ZoneInfo("Europe/London"))
    detector.observe(T, "hall_pir", "motion", True, change=None)  # ingest saw this PIR's motion before a restart
    assert detector.state.last_activity_ms is None
    detector.observe(T + 1000, "hall_pir", "motion", False)
    detector.observe(T + 2000, "hall_pir", "motion", True)  # not judged: the tracker knows the last state
    assert detector.state.last_activity_ms == T + 2000
