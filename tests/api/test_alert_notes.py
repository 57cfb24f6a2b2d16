"""The care team's record on an alert: notes with author and time, who is going round, and the outcome beside them
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from gateway.db.care_record import AlertAttendance, AlertNote
from gateway.db.models import Alert, AuditEntry
from tests.api.conftest import Clock, World, raise_alerts


def _alert(sessions: sessionmaker[Session], home: str = "h1") -> int:
    alert_id, = raise_alerts(sessions, (home, AlertKind.INACTIVITY, Severity.URGENT, ""))
    return alert_id


def test_notes_have_their_author_and_time_and_show_with_the_alert(
        client: TestClient, world: World, sessions: sessionmaker[Session], clock: Clock) -> None:
    alert_id = _alert(sessions)
    r = client.post(f"/alerts/{alert_id}/notes", json={"text": "  Rang her: no answer.\nGoing round.  "},
                    headers=world.auth("anne"))
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["author"] == "Anne" and first["author_user_id"] == world.users["anne"]
    assert first["at"] == "2026-12-01T10:00:00Z" and first["text"] == "Rang her: no answer.\nGoing round."
    clock.at += timedelta(minutes=20)
    r = client.post(f"/alerts/{alert_id}/notes", json={"text": "Found on the floor, GP called"},
                    headers=world.auth("cora"))
    assert r.status_code == 201
    notes = client.get(f"/alerts/{alert_id}/notes", headers=world.auth("cora")).json()
    assert [(n["author"], n["at"], n["text"][:5]) for n in notes] == [
        ("Anne", "2026-12-01T10:00:00Z", "Rang "), ("Cora", "2026-12-01T10:20:00Z", "Found")]
    detail = client.get(f"/alerts/{alert_id}", headers=world.auth("anne")).json()
    assert [n["id"] for n in detail["notes"]] == [n["id"] for n in notes]
    with sessions() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.resource.like("alert not%"))
                         .order_by(AuditEntry.id)).all()
        assert [(a.actor, a.action, a.resource, a.resident_id) for a in rows] == [
            ("Anne", "create", "alert note", world.residents["jones"]),
            ("Cora", "create", "alert note", world.residents["jones"]),
            ("Cora", "view", "alert notes", world.residents["jones"])]


def test_bad_notes_get_a_message_and_change_nothing(client: TestClient, world: World,
                                                    sessions: sessionmaker[Session]) -> None:
    alert_id = _alert(sessions)
    headers = world.auth("cora")
    for body in ({}, {"text": ""}, {"text": "   "}, {"text": "x" * 2001}, {"text": "a\x1b[31mred"},
                 {"text": "ok", "author": "Someone else"}, {"text": 5}):
        r = client.post(f"/alerts/{alert_id}/notes", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["message"], body
    assert client.post(f"/alerts/{alert_id}/notes", json={"text": "x" * 2000}, headers=headers).status_code == 201
    assert client.post("/alerts/999999/notes", json={"text": "hi"}, headers=headers).status_code == 404
    assert client.post("/alerts/0/notes", json={"text": "hi"}, headers=headers).status_code == 422
    with sessions() as s:
        assert len(s.scalars(select(AlertNote)).all()) == 1


def test_who_may_write_and_read_the_record(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    jones = _alert(sessions)  # Anne is in Mrs Jones's chain
    smith = _alert(sessions, "h2")  # Mr Smith's chain is Bob only
    brown = _alert(sessions, "h3")  # another organisation's
    note = {"text": "hello"}
    assert client.post(f"/alerts/{jones}/notes", json=note, headers=world.auth("anne")).status_code == 201
    for who, alert_id in (("anne", smith), ("ned", jones), ("bea", jones), ("cora", brown)):
        for method, path, body in (("POST", "notes", note), ("GET", "notes", None), ("GET", "record", None),
                                   ("PUT", "attendance", {}), ("DELETE", "attendance", None)):
            r = client.request(method, f"/alerts/{alert_id}/{path}", json=body, headers=world.auth(who))
            assert r.status_code == 404, (who, method, path, r.text)
            assert "no alert" in r.json()["error"]["message"]
    assert client.get(f"/alerts/{jones}/notes").status_code == 401
    with sessions() as s:
        assert len(s.scalars(select(AlertNote)).all()) == 1
        assert s.scalars(select(AlertAttendance)).all() == []


def test_going_round_is_recorded_replaced_and_cleared(client: TestClient, world: World,
                                                      sessions: sessionmaker[Session], clock: Clock) -> None:
    alert_id = _alert(sessions)
    expected = "2026-12-01T10:30:00Z"
    r = client.put(f"/alerts/{alert_id}/attendance", json={"expected_at": "2026-12-01T10:30:00+00:00"},
                   headers=world.auth("anne"))
    assert r.status_code == 200, r.text
    mine = r.json()
    assert (mine["name"], mine["user_id"], mine["said_at"], mine["expected_at"], mine["recorded_by"],
            mine["cleared_at"]) == ("Anne", world.users["anne"], "2026-12-01T10:00:00Z", expected, "Anne", None)
    # A coordinator sends a neighbour instead: Anne's is cleared, kept in the history.
    clock.at += timedelta(minutes=5)
    r = client.put(f"/alerts/{alert_id}/attendance", json={"name": "Mr Patel (neighbour)"},
                   headers=world.auth("cora"))
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["user_id"], r.json()["recorded_by"]) == ("Mr Patel (neighbour)", None, "Cora")
    record = client.get(f"/alerts/{alert_id}/record", headers=world.auth("anne")).json()
    assert record["attendance"]["name"] == "Mr Patel (neighbour)"
    assert [(a["name"], a["cleared_at"], a["cleared_by"]) for a in record["attendance_history"]] == [
        ("Anne", "2026-12-01T10:05:00Z", "Cora"), ("Mr Patel (neighbour)", None, None)]
    # A coordinator names a user.
    r = client.put(f"/alerts/{alert_id}/attendance", json={"user_id": world.users["ned"]},
                   headers=world.auth("cora"))
    assert (r.status_code, r.json()["name"], r.json()["user_id"]) == (200, "Ned", world.users["ned"])
    clock.at += timedelta(minutes=25)
    r = client.delete(f"/alerts/{alert_id}/attendance", headers=world.auth("anne"))
    assert r.status_code == 200 and r.json()["cleared_at"] == "2026-12-01T10:30:00Z"
    assert r.json()["cleared_by"] == "Anne"
    r = client.delete(f"/alerts/{alert_id}/attendance", headers=world.auth("anne"))
    assert r.status_code == 409 and "nobody is going round" in r.json()["error"]["message"]
    detail = client.get(f"/alerts/{alert_id}", headers=world.auth("cora")).json()
    assert detail["attendance"] is None and len(detail["attendance_history"]) == 3
    assert [(e["what"], e["who"]) for e in detail["timeline"]][1:] == [
        ("attending", "Anne"), ("attending", "Cora"), ("attending", "Cora"), ("attendance_cleared", "Anne")]
    assert detail["timeline"][1]["detail"] == "Anne is going round, expected 2026-12-01T10:30:00+00:00"
    with sessions() as s:
        actions = s.execute(select(AuditEntry.actor, AuditEntry.action).where(
            AuditEntry.resource == "alert attendance").order_by(AuditEntry.id)).all()
        assert [tuple(a) for a in actions] == [("Anne", "update"), ("Cora", "update"), ("Cora", "update"),
                                               ("Anne", "delete")]


def test_bad_attendance_gets_a_message_and_changes_nothing(client: TestClient, world: World,
                                                           sessions: sessionmaker[Session]) -> None:
    alert_id = _alert(sessions)
    headers = world.auth("cora")
    cases = [({"user_id": world.users["cora"], "name": "Bob"}, "not both"),
             ({"user_id": world.users["bea"]}, "no active user"),  # another organisation's
             ({"user_id": 999999}, "no active user"),
             ({"name": ""}, "name"),
             ({"expected_at": "2026-12-01T09:00:00Z"}, "in the past"),
             ({"expected_at": "2026-12-03T10:00:00Z"}, "more than a day ahead"),
             ({"expected_at": "2026-12-01T10:30:00"}, "expected_at"),  # no offset
             ({"who": "me"}, "who")]
    for body, message in cases:
        r = client.put(f"/alerts/{alert_id}/attendance", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
        assert message in r.text, (body, r.text)
    with sessions() as s:
        assert s.scalars(select(AlertAttendance)).all() == []


def test_a_resolved_alert_keeps_its_record_and_shows_the_outcome(client: TestClient, world: World,
                                                                 sessions: sessionmaker[Session]) -> None:
    alert_id = _alert(sessions)
    headers = world.auth("anne")
    assert client.put(f"/alerts/{alert_id}/attendance", headers=headers).status_code == 200
    r = client.post(f"/alerts/{alert_id}/resolve", json={"note": "She was in the garden", "outcome": "out"},
                    headers=headers)
    assert r.status_code == 200, r.text
    r = client.put(f"/alerts/{alert_id}/attendance", json={"name": "Bob"}, headers=headers)
    assert r.status_code == 409 and "resolved" in r.json()["error"]["message"]
    # Notes may still be added afterwards (a follow-up), and the attendance cleared.
    assert client.post(f"/alerts/{alert_id}/notes", json={"text": "Daughter told"}, headers=headers).status_code == 201
    record = client.get(f"/alerts/{alert_id}/record", headers=headers).json()
    assert (record["state"], record["outcome"], record["resolution_note"], record["resolved_by"]) == (
        "resolved", "out", "She was in the garden", "Anne")
    assert record["attendance"]["name"] == "Anne" and [n["text"] for n in record["notes"]] == ["Daughter told"]
    assert client.delete(f"/alerts/{alert_id}/attendance", headers=headers).status_code == 200


def test_an_api_key_must_say_who_goes(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    alert_id = _alert(sessions)
    r = client.post("/api-keys", json={"name": "Call centre", "role": "coordinator"}, headers=world.auth("ada"))
    assert r.status_code == 201, r.text
    key = {"X-API-Key": r.json()["key"]}
    r = client.put(f"/alerts/{alert_id}/attendance", headers=key)
    assert r.status_code == 422 and "say who is going round" in r.json()["error"]["message"]
    r = client.post(f"/alerts/{alert_id}/notes", json={"text": "Ambulance booked"}, headers=key)
    assert r.status_code == 201 and (r.json()["author"], r.json()["author_user_id"]) == ("API key Call centre", None)


def test_the_record_goes_with_its_alert(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    alert_id = _alert(sessions)
    headers = world.auth("cora")
    client.post(f"/alerts/{alert_id}/notes", json={"text": "x"}, headers=headers)
    client.put(f"/alerts/{alert_id}/attendance", headers=headers)
    with sessions.begin() as s:
        s.execute(delete(Alert).where(Alert.id == alert_id))  # as the purge and an erasure do
    with sessions() as s:
        assert s.scalars(select(AlertNote)).all() == [] and s.scalars(select(AlertAttendance)).all() == []
