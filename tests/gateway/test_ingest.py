"""Ingest without a broker: parse, commit, then acknowledge; bad messages become dead letters in place."""

import sqlite3
import threading
from pathlib import Path

import orjson
import pytest

from gateway.ingest import Ingest
from gateway.journal import Journal
from gateway.metrics import IngestMetrics

NOW = 1_764_000_000_000


class StepClock:
    def now_ms(self) -> int:
        return NOW

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.is_set()


def make(tmp_path: Path) -> tuple[Ingest, Journal, list[tuple[int, int]], IngestMetrics]:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.register("t")
    metrics = IngestMetrics()
    ingest = Ingest(journal, StepClock(), metrics, batch_max=100)
    acks: list[tuple[int, int]] = []

    def ack(mid: int, qos: int) -> None:
        assert journal.last_seq >= 1, "acknowledged before the journal commit"
        acks.append((mid, qos))

    ingest.ack = ack
    return ingest, journal, acks, metrics


def test_bad_messages_are_dead_lettered_between_good_ones_and_all_are_acknowledged(tmp_path: Path) -> None:
    ingest, journal, acks, metrics = make(tmp_path)
    ingest.offer(1, 1, "telecare/h1/hall_pir", b'{"occupancy": true, "last_seen": 1764000000000}')
    ingest.offer(2, 1, "telecare/h1/hall_pir", b"{not json")
    ingest.offer(3, 1, "elsewhere/h1/x", b"{}")
    ingest.offer(4, 1, "telecare/h1/hall_pir/set", b'{"state": "ON"}')
    ingest.offer(5, 1, "telecare/h1/kettle", b'{"power": 1800.5, "state": "ON"}')
    assert ingest.step() == 5
    assert acks == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]
    entries = journal.read("t", 10)
    assert [(e.kind, e.device) for e in entries] == [
        ("state", "hall_pir"), ("dead", "hall_pir"), ("dead", None), ("state", "kettle")]
    assert entries[0].time_ms == 1764000000000 and entries[0].timed
    assert entries[1].body["reason"] == "invalid_json" and entries[1].body["topic"] == "telecare/h1/hall_pir"
    assert entries[2].body["reason"] == "bad_topic"
    assert entries[3].body == {"power": 1800.5, "state": True} and entries[3].time_ms == NOW
    assert metrics.rejected.labels("invalid_json")._value.get() == 1
    assert metrics.ignored._value.get() == 1


def test_qos0_messages_need_no_acknowledgement(tmp_path: Path) -> None:
    ingest, journal, acks, _ = make(tmp_path)
    ingest.offer(0, 0, "telecare/h1/hall_pir", b'{"occupancy": false}')
    ingest.step()
    assert acks == [] and journal.last_seq == 1


def test_a_batch_is_bounded(tmp_path: Path) -> None:
    ingest, _, acks, _ = make(tmp_path)
    for i in range(250):
        ingest.offer(i + 1, 1, "telecare/h1/t", orjson.dumps({"temperature": 20 + i / 100}))
    assert ingest.step() == 100 and len(acks) == 100 and ingest.pending == 150


def test_nothing_is_acknowledged_when_the_commit_fails(tmp_path: Path) -> None:
    ingest, journal, acks, _ = make(tmp_path)
    ingest.offer(1, 1, "telecare/h1/t", b'{"temperature": 20}')
    journal.close()
    (tmp_path / "j.sqlite3").chmod(0o400)
    journal.path = tmp_path / "missing-dir" / "j.sqlite3"  # the next connection cannot open
    with pytest.raises(sqlite3.OperationalError):
        ingest.step()
    assert acks == [] and ingest.pending == 1, "an uncommitted message is kept for the next try"


def test_simulated_clock_moves_only_forward_and_waits_in_simulated_time() -> None:
    from gateway.clock import SimulatedClock

    clock = SimulatedClock()
    clock.tick(1_000_000, 600)
    clock.tick(999_000, 600)
    assert clock.now_ms() == 1_000_000
    stop = threading.Event()
    done = threading.Event()
    threading.Thread(target=lambda: (clock.wait(stop, 60), done.set()), daemon=True).start()
    clock.tick(1_030_000, 600)
    assert not done.wait(0.1), "half a simulated minute is not a minute"
    clock.tick(1_060_000, 600)
    assert done.wait(2)
