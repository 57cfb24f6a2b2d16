"""Alerts through the API: filters, the full timeline, acknowledging and resolving via the alerting service."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from gateway.db.models import AuditEntry, Notification
from tests.api.conftest import T0, World, raise_alerts


def test_filter_alerts(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    old, = raise_alerts(sessions, ("h1", AlertKind.LOW_BATTERY, Severity.LOW, "kitchen_pir"),
                        at=T0 - timedelta(days=2))
    inactivity, meals = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""),
                                     ("h2", AlertKind.NO_MEALS, Severity.WARNING, ""))
    headers = world.auth("cora")

    def ids(**params: object) -> list[int]:
        r = client.get("/alerts", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert ids() == [meals, inactivity, old]  # newest first
    assert ids(kind="inactivity") == [inactivity]
    assert ids(kind=["inactivity", "low_battery"]) == [inactivity, old]
    assert ids(resident_id=world.residents["smith"]) == [meals]
    assert ids(home_id="h1") == [inactivity, old]
    assert ids(since=(T0 - timedelta(days=1)).isoformat()) == [meals, inactivity]
    assert ids(until="2026-11-30T00:00:00Z") == [old]
    assert ids(state="raised") == ids()
    assert ids(open="false") == []
    alert = client.get("/alerts", params={"kind": "inactivity"}, headers=headers).json()["items"][0]
    assert alert["severity_name"] == "URGENT" and alert["details"] == {"since": int(T0.timestamp() * 1000)}
    for bad in ({"kind": "earthquake"}, {"state": "lost"}, {"since": "yesterday"}, {"since": "2026-12-01T00:00"},
                {"resident_id": "0"}, {"limit": "0"}, {"limit": "501"}, {"offset": "-1"}):
        r = client.get("/alerts", params=bad, headers=headers)
        assert r.status_code == 422, (bad, r.text)
    assert "inactivity" in client.get("/alerts", params={"kind": "x"}, headers=headers).json()["error"]["message"]


def test_alert_detail_has_the_timeline_and_notifications(client: TestClient, world: World,
                                                         sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    r = client.get(f"/alerts/{alert_id}", headers=world.auth("anne"))
    assert r.status_code == 200
    alert = r.json()
    assert [e["what"] for e in alert["timeline"]] == ["raised"]
    assert [(n["recipient_name"], n["purpose"], n["state"], n["priority"]) for n in alert["notifications"]] == [
        ("Anne", "alert", "pending", 2)]
    with sessions() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.resource == "alert")).all()
        assert [(a.actor, a.action, a.resident_id) for a in rows] == [("Anne", "view", world.residents["jones"])]


def test_acknowledge_then_resolve(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    with sessions.begin() as s:  # the dispatcher sent the first step
        for n in s.scalars(select(Notification)):
            n.state = "sent"
    r = client.post(f"/alerts/{alert_id}/acknowledge", json={"note": "calling her"}, headers=world.auth("cora"))
    assert r.status_code == 200, r.text
    alert = r.json()
    assert alert["state"] == "acknowledged" and alert["acknowledged_by"] == "Cora"
    assert alert["acknowledged_at"] == "2026-12-01T10:00:00Z"
    assert alert["timeline"][-1] == {"at": "2026-12-01T10:00:00Z", "what": "acknowledged", "who": "Cora",
                                     "detail": "calling her"}
    # Anne, who was alerted, is told who is dealing with it.
    assert [(n["recipient_name"], n["purpose"]) for n in alert["notifications"]][-1] == ("Anne", "acknowledged")
    r = client.post(f"/alerts/{alert_id}/acknowledge", headers=world.auth("anne"))
    assert r.status_code == 409 and "acknowledged by Cora" in r.json()["error"]["message"]

    assert client.post(f"/alerts/{alert_id}/resolve", json={}, headers=world.auth("anne")).status_code == 422
    assert client.post(f"/alerts/{alert_id}/resolve", json={"note": "  "},
                       headers=world.auth("anne")).status_code == 422
    r = client.post(f"/alerts/{alert_id}/resolve", json={"note": "She had fallen asleep in the garden"},
                    headers=world.auth("anne"))
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["resolved_by"], r.json()["resolution_note"]) == (
        "resolved", "Anne", "She had fallen asleep in the garden")
    r = client.post(f"/alerts/{alert_id}/resolve", json={"note": "again"}, headers=world.auth("cora"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert client.get("/alerts", params={"open": "true"}, headers=world.auth("cora")).json()["total"] == 0
    with sessions() as s:
        actions = [(a.actor, a.action) for a in s.scalars(select(AuditEntry).where(AuditEntry.resource == "alert")
                                                          .order_by(AuditEntry.id))]
    assert actions == [("Cora", "acknowledge"), ("Anne", "resolve")]


def test_unknown_alert_is_404(client: TestClient, world: World) -> None:
    assert client.get("/alerts/4242", headers=world.auth("cora")).json()["error"]["code"] == "not_found"
    assert client.post("/alerts/4242/acknowledge", headers=world.auth("cora")).status_code == 404
