"""Activity endpoints: a resident's timeline, daily summaries and learned baseline, read through the real readings
store (the embedded SQLite one; InfluxDB at a closed port for "store down"), with a detector checkpoint learned
from simulated days. Also a smoke run of bench/bulk.py, read back through the API."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from analytics.activity import ActivityTracker
from analytics.detector import HomeDetector
from analytics.replay import feed
from api.app import create_app
from api.security import sha256
from gateway.clock import WallClock
from gateway.config import Settings
from gateway.contract import Kind, state_fields
from gateway.db.migrate import upgrade
from gateway.db.models import (
    AuditEntry,
    AuthToken,
    DetectorCheckpoint,
    Device,
    Home,
    HomeClaim,
    Organisation,
    Resident,
    User,
)
from gateway.db.session import make_engine, make_session_factory
from gateway.detector_checkpoints import CHECKPOINT_VERSION, dump_detector, store_baseline
from gateway.device_table import DeviceInfo, DeviceTable
from gateway.journal import Entry, Journal
from gateway.metrics import WorkerMetrics
from gateway.reading_facts import ReadingFacts
from gateway.stores.readings.base import DailySummary, ReadingStore
from gateway.stores.readings.sqlite import SqliteReadingStore
from gateway.writer import StoreWriter
from sensors_sim.events import Observation
from sensors_sim.generate import Simulation
from sensors_sim.scenario import default_home
from sensors_sim.sensors import Radio, payload

START = datetime(2026, 11, 2, tzinfo=UTC)  # Europe/London is on UTC in November
DAYS = 4
HOME, OTHER_HOME, BARE_HOME = "act-home", "act-other", "act-bare"


@dataclass
class Activity:
    dir: Path
    url: str
    sessions: sessionmaker[Session]
    store: SqliteReadingStore
    token: str  # a coordinator of organisation A
    resident: int  # in A, with readings, summaries and a checkpoint
    bare: int  # in A, nothing learned
    other: int  # in organisation B
    observations: list[Observation]


def _org(session: Session, name: str, homes: list[str]) -> tuple[str, list[int]]:
    org = Organisation(name=name)
    session.add(org)
    session.flush()
    now = datetime.now(UTC)
    user = User(organisation_id=org.id, email=f"{secrets.token_hex(4)}@{name.lower()}.example", name=f"{name} coord",
                role="coordinator", password_hash="not-used")
    session.add(user)
    session.flush()
    token = secrets.token_urlsafe(24)
    session.add(AuthToken(user_id=user.id, token_hash=sha256(token), created_at=now,
                          expires_at=now + timedelta(hours=1)))
    ids = []
    for home in homes:
        session.add(Home(id=home, name=home, organisation_id=org.id, timezone="Europe/London"))
        # Claimed, and the resident created, before the simulated days: all of them are the resident's.
        session.add(HomeClaim(home_id=home, organisation_id=org.id, claimed_at=START - timedelta(days=1)))
        session.add_all(Device(home_id=home, name=d.name, kind=d.kind, room=d.room, role=d.role)
                        for d in default_home(home).devices)
        resident = Resident(home_id=home, name=f"Resident of {home}", created_at=START - timedelta(days=1))
        session.add(resident)
        session.flush()
        ids.append(resident.id)
    return token, ids


@pytest.fixture(scope="module")
def act(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Activity]:
    root = tmp_path_factory.mktemp("activity")
    url = f"sqlite:///{root / 'telecare.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    store = SqliteReadingStore(root / "readings.sqlite3")

    # A few simulated days: readings judged as ingest judges them and stored by the gateway's writer, and a
    # detector fed the same rows.
    sim_home = default_home(HOME)
    sim = Simulation([sim_home], int(START.timestamp() * 1000), DAYS, seed=3)
    radio = Radio(sim_home, np.random.default_rng(3))
    detector = HomeDetector(HOME, ZoneInfo("Europe/London"))
    observations = list(sim.observations())
    devices = DeviceTable(devices={(HOME, d.name): DeviceInfo(d.kind, d.room, d.role) for d in sim_home.devices})
    facts = ReadingFacts(devices)
    entries = []
    for seq, o in enumerate(observations, 1):
        feed(detector, o)
        fields = state_fields(payload(o, *radio.report(o.device, o.kind)))  # as the gateway keeps them
        kind, change = facts.judge(HOME, o.device, fields)
        entries.append(Entry(seq, Kind.STATE, HOME, o.device, o.time_ms, o.time_ms, True, fields, kind, change))
    writer = StoreWriter(store, Journal(root / "journal.sqlite3"), WorkerMetrics(), WallClock(), devices)
    writer.handle(entries)
    store.write_daily_summaries([
        DailySummary(HOME, date(2026, 11, 1) + timedelta(days=i), {
            "activities": 300 + i, "first_activity_min": 410 + i, "last_activity_min": 1385 + 40 * i,
            "up_min": 425, "bed_minutes": 470, "out_minutes": 60 * i, "bathroom_visits": 6, "meals": 3,
            "night_getups": i % 2}) for i in range(5)])

    with sessions() as session:
        token, (resident, bare) = _org(session, "Acacia", [HOME, BARE_HOME])
        _, (other,) = _org(session, "Birch", [OTHER_HOME])
        row = DetectorCheckpoint(home_id=HOME, journal_seq=0, version=CHECKPOINT_VERSION,
                                 state=dump_detector(detector), saved_at=datetime.now(UTC))
        store_baseline(row, detector, force=True)  # as the gateway stores it beside the state
        session.add(row)
        session.commit()
    yield Activity(root, url, sessions, store, token, resident, bare, other, observations)
    store.close()
    engine.dispose()


def make_app(act: Activity, store: ReadingStore | None = None) -> FastAPI:
    settings = Settings(data_dir=act.dir, db_url=act.url)  # type: ignore[call-arg]
    return create_app(settings, sessions=act.sessions, store=store or act.store)


@pytest.fixture
def client(act: Activity) -> Iterator[TestClient]:
    with TestClient(make_app(act), headers={"Authorization": f"Bearer {act.token}"}) as c:
        yield c


def audits(act: Activity, resident: int, resource: str) -> int:
    with act.sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.resident_id == resident, AuditEntry.resource == resource)) or 0


# --- timeline -------------------------------------------------------------------------------------------------

DAY3 = "start=2026-11-04T00:00:00Z&end=2026-11-05T00:00:00Z"


def expected_changes(observations: list[Observation], start: datetime, end: datetime) -> list[tuple[int, str]]:
    """The activity the detectors see in the period, from the whole stream (not only the period)."""
    tracker = ActivityTracker()
    out = []
    for o in observations:
        value = o.value if o.kind != "climate" else None
        change = tracker.update(o.device, o.kind, value) if value is not None else None
        if change is not None and start.timestamp() * 1000 <= o.time_ms < end.timestamp() * 1000:
            out.append((o.time_ms, o.device))
    return out


def test_the_timeline_is_the_activity_the_detectors_see(client: TestClient, act: Activity) -> None:
    before = audits(act, act.resident, "activity.timeline")
    r = client.get(f"/residents/{act.resident}/timeline?{DAY3}&limit=500")
    assert r.status_code == 200, r.text
    body = r.json()
    want = expected_changes(act.observations, datetime(2026, 11, 4, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC))
    assert body["total"] == len(want) > 20
    assert body["timezone"] == "Europe/London" and body["include"] == "activity"
    items = body["items"]
    assert all(e["activity"] and e["change"] for e in items)
    assert [(int(datetime.fromisoformat(e["time"]).timestamp() * 1000), e["device"]) for e in items] == \
        want[:len(items)]
    rooms = {e["room"] for e in items}
    assert {"kitchen", "bedroom"} <= rooms
    door = next(e for e in items if e["role"] == "fridge")
    assert door["kind"] == "contact" and door["change"] in ("opened", "closed") and door["fields"] is None
    assert audits(act, act.resident, "activity.timeline") == before + 1


def test_every_reading_with_a_flag_a_room_and_pages(client: TestClient, act: Activity) -> None:
    everything = client.get(f"/residents/{act.resident}/timeline?{DAY3}&include=all&limit=500").json()
    activity_only = client.get(f"/residents/{act.resident}/timeline?{DAY3}").json()
    assert everything["total"] > activity_only["total"]
    flags = {e["activity"] for e in everything["items"]}
    assert flags == {True, False}
    climate = next(e for e in everything["items"] if e["kind"] == "climate")
    assert not climate["activity"] and isinstance(climate["value"], float) and "temperature" in climate["fields"]

    kitchen = client.get(f"/residents/{act.resident}/timeline?{DAY3}&room=Kitchen&limit=500").json()
    assert kitchen["total"] > 0 and {e["room"] for e in kitchen["items"]} == {"kitchen"}

    first = client.get(f"/residents/{act.resident}/timeline?{DAY3}&limit=10").json()
    second = client.get(f"/residents/{act.resident}/timeline?{DAY3}&limit=10&offset=10").json()
    assert len(first["items"]) == 10 and first["next_offset"] == 10
    assert first["items"][-1]["time"] <= second["items"][0]["time"]


def test_the_timeline_defaults_to_the_last_24_hours(client: TestClient, act: Activity) -> None:
    client.app.state.now = lambda: datetime(2026, 11, 4, 12, tzinfo=UTC)  # type: ignore[attr-defined]
    body = client.get(f"/residents/{act.resident}/timeline").json()
    assert body["start"].startswith("2026-11-03T12:00:00") and body["end"].startswith("2026-11-04T12:00:00")
    assert body["total"] > 0


@pytest.mark.parametrize(("query", "message"), [
    ("start=2026-11-04T00:00:00Z&end=2026-11-12T00:00:00Z", "at most 7 days"),
    ("start=2026-11-04T00:00:00Z&end=2026-11-03T00:00:00Z", "end must be after start"),
    ("start=2026-11-04T00:00:00", "timezone"),
    ("start=yesterday", "start"),
    ("include=some", "include"),
])
def test_a_bad_period_is_a_422_that_says_why(client: TestClient, act: Activity, query: str, message: str) -> None:
    r = client.get(f"/residents/{act.resident}/timeline?{query}")
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]


# --- daily summaries ------------------------------------------------------------------------------------------


def test_daily_summaries_as_stored_with_the_days_missing(client: TestClient, act: Activity) -> None:
    before = audits(act, act.resident, "activity.daily")
    r = client.get(f"/residents/{act.resident}/daily?from=2026-11-01&to=2026-11-07")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == "2026-11-01" and body["to"] == "2026-11-07"
    assert [d["day"] for d in body["days"]] == [f"2026-11-0{i}" for i in range(1, 6)]
    assert body["missing_days"] == ["2026-11-06", "2026-11-07"]
    first, second = body["days"][0], body["days"][1]
    assert first["first_activity_min"] == 410 and first["first_activity"] == "06:50"
    assert first["bed_minutes"] == 470 and first["meals"] == 3 and first["bathroom_visits"] == 6
    assert first["night_disturbed"] is False and second["night_disturbed"] is True
    assert body["days"][2]["last_activity"] == "00:25 (+1 day)"  # 1465 min: the small hours after the day
    assert audits(act, act.resident, "activity.daily") == before + 1


def test_daily_defaults_to_the_last_30_closed_days(client: TestClient, act: Activity) -> None:
    client.app.state.now = lambda: datetime(2026, 11, 4, 12, tzinfo=UTC)  # type: ignore[attr-defined]
    body = client.get(f"/residents/{act.resident}/daily").json()
    assert body["to"] == "2026-11-03" and body["from"] == "2026-10-05"
    assert [d["day"] for d in body["days"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]


@pytest.mark.parametrize(("query", "message"), [
    ("from=2026-01-01&to=2026-06-01", "at most 92 days"),
    ("from=2026-11-05&to=2026-11-01", "'to' must not be before 'from'"),
    ("from=2026-11-31", "from"),
])
def test_a_bad_range_of_days_is_a_422(client: TestClient, act: Activity, query: str, message: str) -> None:
    r = client.get(f"/residents/{act.resident}/daily?{query}")
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]


# --- baseline -------------------------------------------------------------------------------------------------


def test_the_baseline_is_the_checkpointed_detectors(client: TestClient, act: Activity) -> None:
    before = audits(act, act.resident, "activity.baseline")
    r = client.get(f"/residents/{act.resident}/baseline")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["home_id"] == HOME and body["days_learned"] >= DAYS - 1
    assert len(body["half_hours"]) == 48 and body["half_hours"][15] == "07:30"
    assert set(body["stillness"]) == {"up", "bed", "chair"}
    assert all(len(v["limit_min"]) == 48 for v in body["stillness"].values())
    assert body["not_up_after"] is not None and body["activities_per_day"] > 0
    assert audits(act, act.resident, "activity.baseline") == before + 1


def test_nothing_learned_yet_is_a_404_that_says_so(client: TestClient, act: Activity) -> None:
    r = client.get(f"/residents/{act.bare}/baseline")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_baseline" and "nothing learned yet" in r.json()["error"]["message"]


# --- isolation, outages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["timeline", "daily", "baseline"])
def test_another_organisations_resident_is_not_found(client: TestClient, act: Activity, path: str) -> None:
    r = client.get(f"/residents/{act.other}/{path}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert audits(act, act.other, f"activity.{path}") == 0
    assert client.get(f"/residents/{act.resident}/{path}", headers={"Authorization": ""}).status_code == 401


@pytest.fixture(params=["sqlite-closed", "influx-refused"])
def down_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadingStore]:
    if request.param == "sqlite-closed":
        store: ReadingStore = SqliteReadingStore(tmp_path / "gone.sqlite3")
        store.close()
    else:
        from gateway.stores.readings.influx import InfluxReadingStore

        store = InfluxReadingStore("http://127.0.0.1:9", "token", "org", "bucket", timeout_s=2)
    yield store
    store.close()


@pytest.mark.parametrize("path", ["timeline", "daily"])
def test_a_store_that_is_down_is_a_503(act: Activity, down_store: ReadingStore, path: str) -> None:
    before = audits(act, act.resident, f"activity.{path}")
    with TestClient(make_app(act, down_store), headers={"Authorization": f"Bearer {act.token}"}) as c:
        r = c.get(f"/residents/{act.resident}/{path}")
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "unavailable" and "readings store" in error["message"]
        assert "127.0.0.1" not in error["message"] and "sqlite3" not in error["message"]
        assert c.get(f"/residents/{act.resident}/baseline").status_code == 200  # needs no readings store
    assert audits(act, act.resident, f"activity.{path}") == before  # nothing was shown


# --- bench/bulk.py --------------------------------------------------------------------------------------------


def test_bulk_history_smoke(tmp_path: Path) -> None:
    from bench.bulk import generate

    url = f"sqlite:///{tmp_path / 'bulk.db'}"
    upgrade(url)
    engine = make_engine(url)
    store = SqliteReadingStore(tmp_path / "readings.sqlite3")
    try:
        history = generate(engine, store, residents=5, days=3, timeline_residents=1, timeline_days=1,
                           last_day=date(2026, 11, 3))
        assert history.counts["daily_summaries"] == 15 and history.counts["devices"] == 5 * 17
        assert history.counts["readings"] > 500
        settings = Settings(data_dir=tmp_path, db_url=url)  # type: ignore[call-arg]
        app = create_app(settings, sessions=make_session_factory(engine), store=store)
        with TestClient(app, headers={"Authorization": f"Bearer {history.token}"}) as c:
            resident = history.timeline_residents[0]
            daily = c.get(f"/residents/{resident}/daily?from=2026-11-01&to=2026-11-03").json()
            assert len(daily["days"]) == 3 and all(d["bed_minutes"] > 0 for d in daily["days"])
            timeline = c.get(f"/residents/{resident}/timeline?start=2026-11-03T00:00:00Z").json()
            assert timeline["total"] > 20
            assert c.get(f"/residents/{resident}/baseline").status_code == 200
            assert c.get(f"/residents/{history.resident_ids[-1]}/baseline").status_code == 404  # no readings
    finally:
        store.close()
        engine.dispose()
