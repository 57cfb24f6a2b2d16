"""A home's device states (each device's last activity value, kept by ingest in the journal) are its resident's:
erased with them, and forgotten whenever the person cared for changes, from the journal's file and from ingest's
memory, so the home's next readings are judged afresh."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from analytics.activity import Change
from gateway.db.migrate import upgrade
from gateway.db.models import Home
from gateway.db.session import make_engine, make_session_factory
from gateway.ingest import Ingest
from gateway.journal import Journal
from gateway.metrics import IngestMetrics
from gateway.purge import forget_past_care, run_purge
from gateway.reading_facts import ReadingFacts
from tests.api.conftest import Clock, app_for
from tests.council import API_NOW, seed_council
from tests.gateway.test_ingest import StepClock


@dataclass
class Council:
    """h1 (Mrs Jones) and h2 (Mr Smith), both cared for by one council; its admin Ada signed in."""

    sessions: sessionmaker[Session]
    residents: dict[str, int]
    admin: dict[str, str]  # Ada's headers


@pytest.fixture
def council(db_url: str) -> Iterator[Council]:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    residents, admin = seed_council(sessions, front_doors=True)
    yield Council(sessions, residents, admin)
    engine.dispose()


def ingest_on(path: Path) -> Ingest:
    """Ingest as the gateway builds it: its device states read back from the journal's file."""
    journal = Journal(path)
    journal.register("t")
    return Ingest(journal, StepClock(), IngestMetrics(), batch_max=100, linger_s=0,
                  facts=ReadingFacts(states=journal.device_states()))


def door(ingest: Ingest, home: str, closed: bool) -> str | None:
    """A front-door report through ingest; the activity it was judged to show."""
    ingest.offer(1, 0, f"telecare/{home}/front_door", orjson.dumps({"contact": closed}))
    assert ingest.step() == 1
    [entry] = [e for e in ingest.journal.read("t", 1000) if e.seq == ingest.journal.last_seq]
    return entry.activity


def states_in_file(path: Path) -> list[tuple[str, str]]:
    """The device states' rows, read from the file as anyone with the disk could."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT home, device FROM device_states ORDER BY home, device").fetchall()


def test_an_erased_residents_device_states_go_and_the_home_is_judged_afresh(tmp_path: Path,
                                                                          council: Council) -> None:
    path = tmp_path / "journal.sqlite3"
    ingest = ingest_on(path)
    for home in ("h1", "h2"):
        assert door(ingest, home, closed=True) is None  # the first state seen is only learned
    assert door(ingest, "h1", closed=False) == Change.OPENED
    assert states_in_file(path) == [("h1", "front_door"), ("h2", "front_door")]
    # The worker first sees them under the residents' care (epoch 1, not a new home's 0): whose they are cannot be
    # told, so they go once; after that the same care keeps them.
    assert forget_past_care(ingest.journal, council.sessions) == ["h1", "h2"]
    ingest.forget_when_asked()
    assert states_in_file(path) == []
    for home in ("h1", "h2"):
        assert door(ingest, home, closed=True) is None
    assert door(ingest, "h1", closed=False) == Change.OPENED
    assert forget_past_care(ingest.journal, council.sessions) == []
    assert states_in_file(path) == [("h1", "front_door"), ("h2", "front_door")]

    with TestClient(app_for(tmp_path, council.sessions, Clock(API_NOW))) as client:  # as an admin erases
        r = client.post(f"/residents/{council.residents['Mrs Jones']}/erase", json={"confirm": "Mrs Jones"},
                        headers=council.admin)
        assert r.status_code == 200, r.text

    # The worker notices the erasure (the home's care epoch moved on) and asks; a quiet ingest applies it.
    assert forget_past_care(ingest.journal, council.sessions) == ["h1"]
    assert forget_past_care(ingest.journal, council.sessions) == [], "asked once"
    ingest.forget_when_asked()
    assert states_in_file(path) == [("h2", "front_door")]
    assert ingest.journal.forget_requests() == []

    # Mrs Jones's last state is not judged against: the door's next report is learned, as a new home's; the
    # other home still remembers its door. A restarted ingest (states read from the file) judges alike.
    assert door(ingest, "h1", closed=True) is None
    assert door(ingest, "h2", closed=False) == Change.OPENED
    ingest.journal.close()
    restarted = ingest_on(path)
    assert door(restarted, "h1", closed=False) == Change.OPENED  # the new state, learned after the erasure


def test_a_request_met_while_readings_stream_is_applied_before_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    ingest = ingest_on(path)
    door(ingest, "h1", closed=True)
    ingest.journal.request_forget({"h1": 3})  # as the worker asks while readings stream in
    ingest.offer(1, 0, "telecare/h1/front_door", orjson.dumps({"contact": False}))
    ingest.offer(2, 0, "telecare/h1/front_door", orjson.dumps({"contact": True}))
    assert ingest.step() == 2
    first, second = ingest.journal.read("t", 10)[-2:]
    assert (first.activity, second.activity) == (None, Change.CLOSED), "the open door learned afresh, then judged"
    assert states_in_file(path) == [("h1", "front_door")]  # the state after the forgetting, the new person's
    assert ingest.journal.forget_requests() == []
    assert ingest.journal.state_epochs() == {"h1": 3}


def test_forgetting_that_fails_to_commit_is_done_again_and_holds_no_reading(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal.sqlite3"
    ingest = ingest_on(path)
    door(ingest, "h1", closed=True)
    ingest.journal.request_forget({"h1": 1})
    commit = ingest.journal.forget

    def disk_full(requests: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ingest.journal, "forget", disk_full)
    ingest.offer(1, 0, "telecare/h1/front_door", orjson.dumps({"contact": False}))
    with pytest.raises(OSError):
        ingest.step()
    assert ingest.pending == 1, "the reading waits, to be judged once the forgetting is committed"
    assert len(ingest.journal.forget_requests()) == 1 and states_in_file(path) == [("h1", "front_door")]
    monkeypatch.setattr(ingest.journal, "forget", commit)
    assert ingest.step() == 1
    assert ingest.journal.read("t", 10)[-1].activity is None  # judged afresh
    assert ingest.journal.forget_requests() == [] and ingest.journal.device_states() == {
        ("h1", "front_door"): ("contact", False)}


def test_a_new_care_is_forgotten_and_an_unregistered_home_is_left_alone(tmp_path: Path, council: Council) -> None:
    ingest = ingest_on(tmp_path / "journal.sqlite3")
    for home in ("h1", "h2", "h7"):  # h7: discovered over MQTT, not in the database yet
        door(ingest, home, closed=True)
    assert forget_past_care(ingest.journal, council.sessions) == ["h1", "h2"]  # first seen under a care
    ingest.forget_when_asked()
    door(ingest, "h2", closed=True)
    with council.sessions.begin() as s:  # as a claim, a release, or a resident added or removed does
        s.execute(update(Home).where(Home.id == "h2").values(care_epoch=Home.care_epoch + 1))
    assert forget_past_care(ingest.journal, council.sessions) == ["h2"]
    ingest.forget_when_asked()
    assert ingest.journal.device_states().keys() == {("h7", "front_door")}
    assert door(ingest, "h7", closed=False) == Change.OPENED, "h7 remembers its door"


def test_the_worker_asks_within_seconds_while_its_hourly_purge_runs(tmp_path: Path, council: Council) -> None:
    ingest = ingest_on(tmp_path / "journal.sqlite3")
    door(ingest, "h1", closed=True)
    worker = SimpleNamespace(journal=Journal(ingest.journal.path), sessions=council.sessions, clock=StepClock(),
                             store=None, metrics=None, settings=SimpleNamespace(dead_letter_max_age_days=30.0))
    stop = threading.Event()
    thread = threading.Thread(target=run_purge, args=(worker, stop), kwargs={"forget_every_s": 0.05}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not ingest.journal.forget_requests() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [home for _, home in ingest.journal.forget_requests()] == ["h1"]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
