"""Privacy (issue 12): a resident's subject access export, their erasure, and the organisation's retention settings.
On SQLite and PostgreSQL (``db_url``), with the embedded readings store the app creates in its data dir.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from gateway.db.models import (
    Absence,
    Alert,
    AlertLog,
    AuditEntry,
    DetectorCheckpoint,
    Home,
    Notification,
    Organisation,
    Resident,
    User,
)
from gateway.stores.readings.base import DailySummary, Point
from gateway.stores.readings.sqlite import SqliteReadingStore
from tests.api.conftest import CARE_START, T0, World, raise_alerts


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteReadingStore]:
    """The store the app's settings name (settings_for: data_dir = tmp_path/data)."""
    s = SqliteReadingStore(tmp_path / "data" / "readings.sqlite3")
    yield s
    s.close()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def raise_for(sessions: sessionmaker[Session], home: str, kind: AlertKind = AlertKind.INACTIVITY) -> int:
    (alert_id,) = raise_alerts(sessions, (home, kind, Severity.URGENT, ""))
    with sessions.begin() as s:  # the organisation caring for the home when it was raised
        s.execute(update(Alert).where(Alert.id == alert_id, Alert.organisation_id.is_(None)).values(
            organisation_id=select(Home.organisation_id).where(Home.id == home).scalar_subquery()))
    return alert_id


def resolve(client: TestClient, world: World, alert_id: int) -> None:
    r = client.post(f"/alerts/{alert_id}/resolve", headers=world.auth("cora"),
                    json={"note": "she was fine", "outcome": "false_alarm"})
    assert r.status_code == 200, r.text


def seed_readings(store: SqliteReadingStore) -> None:
    store.write([Point("reading", {"home": "h1", "device": "kitchen_pir"}, {"occupancy": True}, ms(T0)),
                 Point("reading", {"home": "h1", "device": "front_door"}, {"contact": False},
                       ms(T0 + timedelta(hours=1))),
                 # before the care period: another person's, or another organisation's
                 Point("reading", {"home": "h1", "device": "kitchen_pir"}, {"occupancy": True},
                       ms(CARE_START - timedelta(days=3))),
                 Point("reading", {"home": "h2", "device": "hall"}, {"occupancy": True}, ms(T0))])
    store.write_daily_summaries([DailySummary("h1", T0.date(), {"meals": 3}),
                                 DailySummary("h1", (CARE_START - timedelta(days=3)).date(), {"meals": 1}),
                                 DailySummary("h2", T0.date(), {"meals": 2})])


# --- export ----------------------------------------------------------------------------------------------------


def test_export_holds_the_residents_data_and_nothing_of_another(
        client: TestClient, world: World, sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    jones, smith = world.residents["jones"], world.residents["smith"]
    seed_readings(store)
    mine = raise_for(sessions, "h1")
    raise_for(sessions, "h2")
    with sessions.begin() as s:
        s.add(Absence(resident_id=jones, starts_at=T0, ends_at=T0 + timedelta(days=2), reason="hospital"))
    assert client.get(f"/residents/{smith}", headers=world.auth("cora")).status_code == 200
    assert client.get(f"/residents/{jones}", headers=world.auth("cora")).status_code == 200

    r = client.get(f"/residents/{jones}/export", headers=world.auth("cora"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resident"]["name"] == "Mrs Jones" and body["resident"]["home"]["id"] == "h1"
    assert body["care_period"]["start"].startswith("2026-01-01")
    assert [a["reason"] for a in body["absences"]] == ["hospital"]
    assert [s["recipient_name"] for s in body["escalation_chain"]] == ["Anne", "Bob"]
    assert [a["id"] for a in body["alerts"]] == [mine]
    assert body["alerts"][0]["timeline"], "the alert's timeline is part of it"
    assert [d["day"] for d in body["daily_summaries"]] == [T0.date().isoformat()]
    assert body["readings"] == f"/residents/{jones}/export/readings"
    assert {e["resident_id"] for e in body["audit"]} == {jones} and any(e["action"] == "view" for e in body["audit"])
    assert "Mr Smith" not in r.text, r.text
    assert '"h2"' not in r.text
    with sessions() as s:
        exports = s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "export",
                                                            AuditEntry.resident_id == jones)).all()
    assert exports == ["subject access export"]


def test_export_readings_are_the_care_periods_as_json_lines(
        client: TestClient, world: World, store: SqliteReadingStore, sessions: sessionmaker[Session]) -> None:
    seed_readings(store)
    r = client.get(f"/residents/{world.residents['jones']}/export/readings", headers=world.auth("ada"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert r.headers["cache-control"] == "no-store"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [(p["time_ms"], p["device"]) for p in lines] == [(ms(T0), "kitchen_pir"),
                                                           (ms(T0 + timedelta(hours=1)), "front_door")]
    assert lines[0]["fields"] == {"occupancy": True} and lines[0]["tags"]["home"] == "h1"
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "export", AuditEntry.resource == "activity.readings")) == 1


def test_export_readings_page_through_full_batches(
        client: TestClient, world: World, store: SqliteReadingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.routers import privacy

    monkeypatch.setattr(privacy, "READINGS_BATCH", 3)
    times = [ms(T0 - timedelta(days=2))] + [ms(T0) + i for i in range(5)]  # two windows, full batches
    store.write([Point("reading", {"home": "h1", "device": d}, {"n": float(i)}, t)
                 for i, t in enumerate(times) for d in ("a", "b")])
    r = client.get(f"/residents/{world.residents['jones']}/export/readings", headers=world.auth("cora"))
    got = [(p["time_ms"], p["device"]) for p in map(json.loads, r.text.splitlines())]
    assert got == sorted((t, d) for t in times for d in ("a", "b"))


@pytest.mark.parametrize("who,status", [("anne", 403), ("ned", 403), ("bea", 404)])
def test_export_is_for_the_residents_organisations_staff(client: TestClient, world: World, who: str,
                                                         status: int) -> None:
    jones = world.residents["jones"]
    assert client.get(f"/residents/{jones}/export", headers=world.auth(who)).status_code == status
    assert client.get(f"/residents/{jones}/export/readings", headers=world.auth(who)).status_code == status


# --- erasure ---------------------------------------------------------------------------------------------------


def test_erasure_removes_the_resident_and_their_data_and_keeps_a_scrubbed_trail(
        client: TestClient, world: World, sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    jones, smith = world.residents["jones"], world.residents["smith"]
    seed_readings(store)
    mine, theirs = raise_for(sessions, "h1"), raise_for(sessions, "h2")
    resolve(client, world, mine)
    with sessions.begin() as s:
        s.add(Absence(resident_id=jones, starts_at=T0, ends_at=None, reason="holiday"))
        s.add(DetectorCheckpoint(home_id="h1", journal_seq=1, version=1, state=b"x", saved_at=T0))
        epoch = s.get_one(Home, "h1").care_epoch
    client.patch(f"/residents/{jones}", headers=world.auth("cora"), json={"notes": "lives with a cat"})

    r = client.post(f"/residents/{jones}/erase", headers=world.auth("ada"), json={"confirm": "Mrs Jones"})
    assert r.status_code == 200, r.text
    assert r.json()["alerts"] == 1 and r.json()["absences"] == 1 and r.json()["audit_entries_scrubbed"] >= 2

    assert client.get(f"/residents/{jones}", headers=world.auth("ada")).status_code == 404
    assert client.get(f"/residents/{jones}/export", headers=world.auth("ada")).status_code == 404
    assert client.post(f"/residents/{jones}/erase", headers=world.auth("ada"),
                       json={"confirm": "Mrs Jones"}).status_code == 404
    with sessions() as s:
        assert s.get(Alert, mine) is None and s.get(Alert, theirs) is not None
        assert s.scalar(select(func.count()).select_from(Notification).where(Notification.alert_id == mine)) == 0
        assert s.scalar(select(func.count()).select_from(AlertLog).where(AlertLog.alert_id == mine)) == 0
        assert s.scalar(select(func.count()).select_from(Absence).where(Absence.resident_id == jones)) == 0
        assert s.get(Resident, smith) is not None
        assert s.get(DetectorCheckpoint, "h1") is None and s.get_one(Home, "h1").care_epoch == epoch + 1
        about = s.execute(select(AuditEntry.action, AuditEntry.detail).where(AuditEntry.resident_id == jones)).all()
        assert [action for action, _ in about] == ["erase"]
        assert f"resident {jones} erased by Ada" in about[0][1] and "Jones" not in about[0][1]
        assert not s.scalars(select(AuditEntry.detail).where(AuditEntry.detail.contains("cat"))).all()
        assert not s.scalars(select(AuditEntry.detail).where(AuditEntry.detail.contains("Jones"))).all()
    # The care period's readings and summaries went; those before it, and the other home's, stay.
    assert [p.time_ms for p in store.timeline("h1", 0, ms(T0 + timedelta(days=1)))] == [
        ms(CARE_START - timedelta(days=3))]
    assert len(store.timeline("h2", 0, ms(T0 + timedelta(days=1)))) == 1
    assert [s.day for s in store.daily_summaries("h1", CARE_START.date() - timedelta(days=5), T0.date())] == [
        (CARE_START - timedelta(days=3)).date()]
    assert store.daily_summaries("h2", T0.date(), T0.date())


def test_erasure_refuses_open_alerts(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    jones = world.residents["jones"]
    alert_id = raise_for(sessions, "h1")
    r = client.post(f"/residents/{jones}/erase", headers=world.auth("ada"), json={"confirm": "Mrs Jones"})
    assert r.status_code == 409
    assert "open alert" in r.json()["error"]["message"] and "resolve" in r.json()["error"]["message"]
    with sessions() as s:
        assert s.get(Resident, jones) is not None and s.get(Alert, alert_id) is not None
    resolve(client, world, alert_id)
    assert client.post(f"/residents/{jones}/erase", headers=world.auth("ada"),
                       json={"confirm": "Mrs Jones"}).status_code == 200


@pytest.mark.parametrize("body", [{"confirm": "mrs jones"}, {"confirm": "Mr Smith"}, {}, {"confirm": ""},
                                  {"confirm": "Mrs Jones", "also": 1}])
def test_erasure_needs_the_name_as_confirmation(client: TestClient, world: World, sessions: sessionmaker[Session],
                                                body: dict[str, object]) -> None:
    jones = world.residents["jones"]
    r = client.post(f"/residents/{jones}/erase", headers=world.auth("ada"), json=body)
    assert r.status_code == 422, r.text
    with sessions() as s:
        assert s.get(Resident, jones) is not None


@pytest.mark.parametrize("who,status", [("cora", 403), ("anne", 403), ("bea", 404)])
def test_erasure_is_for_admins_of_the_residents_organisation(client: TestClient, world: World,
                                                             sessions: sessionmaker[Session], who: str,
                                                             status: int) -> None:
    jones = world.residents["jones"]
    if who == "bea":  # made an admin of the other organisation: still not found
        with sessions.begin() as s:
            s.execute(update(User).where(User.id == world.users["bea"]).values(role="admin"))
    r = client.post(f"/residents/{jones}/erase", headers=world.auth(who), json={"confirm": "Mrs Jones"})
    assert r.status_code == status
    with sessions() as s:
        assert s.get(Resident, jones) is not None


# --- retention settings ---------------------------------------------------------------------------------------


def test_retention_settings_default_change_and_validate(client: TestClient, world: World,
                                                        sessions: sessionmaker[Session]) -> None:
    r = client.get("/organisation/retention", headers=world.auth("ada"))
    assert r.status_code == 200
    assert r.json() == {"care_record_retention_days": 2922, "audit_retention_days": 2922,
                        "dead_letter_retention_days": None, "dead_letter_default_days": 14.0}
    r = client.patch("/organisation/retention", headers=world.auth("ada"),
                     json={"care_record_retention_days": 3653, "dead_letter_retention_days": 7})
    assert r.status_code == 200, r.text
    assert (r.json()["care_record_retention_days"], r.json()["audit_retention_days"],
            r.json()["dead_letter_retention_days"]) == (3653, 2922, 7)
    r = client.patch("/organisation/retention", headers=world.auth("ada"), json={"dead_letter_retention_days": None})
    assert r.json()["dead_letter_retention_days"] is None
    for bad in ({"care_record_retention_days": 0}, {"audit_retention_days": 36_526},
                {"care_record_retention_days": None}, {"audit_retention_days": "forever"},
                {"dead_letter_retention_days": -1}, {"care_record_retention_days": 1.5}, {"nonsense": 1}):
        r = client.patch("/organisation/retention", headers=world.auth("ada"), json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["message"]
    r = client.patch("/organisation/retention", headers=world.auth("ada"), json={"audit_retention_days": 0})
    assert "at least 1 day and at most 100 years" in r.text
    # Organisation B's settings are its own.
    with sessions.begin() as s:
        assert s.get_one(Organisation, world.org_b).care_record_retention_days == 2922
        assert s.get_one(Organisation, world.org_a).care_record_retention_days == 3653
        changes = s.scalars(select(AuditEntry.detail).where(AuditEntry.resource == "retention")
                            .order_by(AuditEntry.id)).all()
    assert changes[0] == "care_record_retention_days 2922 → 3653; dead_letter_retention_days None → 7"


@pytest.mark.parametrize("who", ["cora", "anne", "bea"])
def test_retention_settings_are_for_admins(client: TestClient, world: World, who: str) -> None:
    assert client.get("/organisation/retention", headers=world.auth(who)).status_code == 403
    assert client.patch("/organisation/retention", headers=world.auth(who),
                        json={"audit_retention_days": 1}).status_code == 403


def test_export_and_erasure_answer_503_when_the_store_is_away(
        tmp_path: Path, sessions: sessionmaker[Session], world: World) -> None:
    from api.app import create_app
    from tests.api.conftest import settings_for

    app = create_app(settings_for(tmp_path, influx_url="http://127.0.0.1:9", influx_token="t", influx_org="o",
                                  influx_bucket="b", influx_timeout_s=1.0), sessions=sessions)
    app.state.now = lambda: T0.replace(hour=10).astimezone(UTC)
    jones = world.residents["jones"]
    with TestClient(app) as client:
        assert client.get(f"/residents/{jones}/export", headers=world.auth("cora")).status_code == 503
        r = client.post(f"/residents/{jones}/erase", headers=world.auth("ada"), json={"confirm": "Mrs Jones"})
        assert r.status_code == 503 and "nothing was erased" in r.text
    with sessions() as s:
        assert s.get(Resident, jones) is not None


def test_removing_a_resident_ends_their_care_for_the_retention_to_count_from(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    from gateway.db.models import EndedCare

    smith = world.residents["smith"]
    assert client.delete(f"/residents/{smith}", headers=world.auth("cora")).status_code == 204
    with sessions() as s:
        ended = s.execute(select(EndedCare.organisation_id, EndedCare.home_id, EndedCare.resident_id,
                                 EndedCare.started_at, EndedCare.ended_at)).all()
    assert ended == [(world.org_a, "h2", smith, CARE_START, T0.replace(hour=10))]
