"""Alerts through the API: filters, the full timeline, acknowledging and resolving via the alerting service."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertEvent, AlertKind, Severity
from gateway.alerting.record import apply_events
from gateway.db.models import Alert, AuditEntry, Notification
from tests.api.conftest import T0, Clock, World, raise_alerts


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


# --- outcomes -------------------------------------------------------------------------------------------------


def clear(sessions: sessionmaker[Session], home: str, kind: AlertKind, at: datetime) -> None:
    """The detectors clear the alert: activity resumed."""
    with sessions.begin() as s:
        apply_events(s, [AlertEvent(Action.CLEAR, kind, home, int(at.timestamp() * 1000), Severity.URGENT,
                                    "Movement in the kitchen")], at)


def test_resolve_with_an_outcome(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    r = client.post(f"/alerts/{alert_id}/resolve", json={"note": "Asleep in her chair", "outcome": "false_alarm"},
                    headers=world.auth("anne"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["outcome"], body["outcome_by"], body["outcome_note"], body["outcome_at"]) == (
        "false_alarm", "Anne", "Asleep in her chair", "2026-12-01T10:00:00Z")
    assert body["outcome_learned_at"] is None
    assert ("outcome", "false_alarm: Asleep in her chair") in [(e["what"], e["detail"]) for e in body["timeline"]]
    # Without an outcome, as before: recorded as not known.
    other, = raise_alerts(sessions, ("h1", AlertKind.NOT_UP, Severity.WARNING, ""))
    r = client.post(f"/alerts/{other}/resolve", json={"note": "seen"}, headers=world.auth("cora"))
    assert r.status_code == 200 and r.json()["outcome"] is None
    with sessions() as s:
        details = [a.detail for a in s.scalars(select(AuditEntry).where(AuditEntry.action == "resolve")
                                               .order_by(AuditEntry.id))]
    assert details == [f"alert {alert_id}: false_alarm", f"alert {other}"]


def test_the_outcome_of_an_alert_that_cleared_by_itself(client: TestClient, world: World,
                                                        sessions: sessionmaker[Session], clock: Clock) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    clear(sessions, "h1", AlertKind.INACTIVITY, T0 + timedelta(minutes=20))
    r = client.post(f"/alerts/{alert_id}/outcome", json={"outcome": "false_alarm", "note": "She was upstairs"},
                    headers=world.auth("anne"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["resolved_by"], body["resolution_note"]) == ("auto", "Movement in the kitchen")
    assert (body["outcome"], body["outcome_by"], body["outcome_note"]) == ("false_alarm", "Anne", "She was upstairs")
    clock.at += timedelta(minutes=5)
    r = client.post(f"/alerts/{alert_id}/outcome", json={"outcome": "fall"}, headers=world.auth("cora"))
    assert r.status_code == 200
    assert (r.json()["outcome"], r.json()["outcome_by"], r.json()["outcome_note"]) == ("fall", "Cora", None)
    assert r.json()["timeline"][-1] == {"at": "2026-12-01T10:05:00Z", "what": "outcome corrected", "who": "Cora",
                                        "detail": "false_alarm → fall"}
    with sessions() as s:
        assert [(a.actor, a.detail) for a in s.scalars(select(AuditEntry).where(AuditEntry.action == "outcome")
                                                       .order_by(AuditEntry.id))] == [
            ("Anne", f"alert {alert_id}: false_alarm"), ("Cora", f"alert {alert_id}: fall")]


def test_filter_on_outcomes(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    fine, fallen, unknown, still_open = raise_alerts(
        sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""), ("h1", AlertKind.NOT_UP, Severity.WARNING, ""),
        ("h2", AlertKind.NO_MEALS, Severity.WARNING, ""), ("h2", AlertKind.INACTIVITY, Severity.URGENT, ""))
    headers = world.auth("cora")
    for alert_id, outcome in ((fine, "false_alarm"), (fallen, "fall"), (unknown, None)):
        body = {"note": "done"} | ({"outcome": outcome} if outcome else {})
        assert client.post(f"/alerts/{alert_id}/resolve", json=body, headers=headers).status_code == 200

    def ids(**params: object) -> set[int]:
        r = client.get("/alerts", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return {a["id"] for a in r.json()["items"]}

    assert ids(outcome="false_alarm") == {fine}
    assert ids(outcome=["false_alarm", "fall"]) == {fine, fallen}
    assert ids(has_outcome="true") == {fine, fallen}
    with sessions.begin() as s:  # a notice: resolved at once, nobody owes it an outcome
        apply_events(s, [AlertEvent(Action.NOTICE, AlertKind.RETURNED, "h1", int(T0.timestamp() * 1000),
                                    Severity.INFO, "Back home")], T0)
    assert ids(has_outcome="false", open="false") == {unknown}  # resolved, awaiting what was found
    assert ids(has_outcome="false") == {unknown, still_open}
    assert [a["outcome"] for a in client.get("/alerts", params={"outcome": "fall"}, headers=headers)
            .json()["items"]] == ["fall"]


def test_a_bad_outcome_is_a_422_that_lists_the_choices(client: TestClient, world: World,
                                                       sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    headers = world.auth("cora")
    for path, body in ((f"/alerts/{alert_id}/resolve", {"note": "x", "outcome": "fine"}),
                       (f"/alerts/{alert_id}/outcome", {"outcome": "fine"}),
                       (f"/alerts/{alert_id}/outcome", {}),
                       (f"/alerts/{alert_id}/outcome", {"outcome": "fall", "note": "x" * 2001}),
                       (f"/alerts/{alert_id}/outcome", {"outcome": "fall", "who": "me"})):
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == 422, (path, body, r.text)
    r = client.post(f"/alerts/{alert_id}/outcome", json={"outcome": "fine"}, headers=headers)
    message = r.json()["error"]["message"]
    assert message.startswith("body.outcome:") and "'false_alarm'" in message and "'sensor_problem'" in message
    r = client.get("/alerts", params={"outcome": "fine"}, headers=headers)
    assert r.status_code == 422 and "'false_alarm'" in r.json()["error"]["message"]
    # The alert is still open: the outcome goes with resolving it.
    r = client.post(f"/alerts/{alert_id}/outcome", json={"outcome": "fall"}, headers=headers)
    assert r.status_code == 409 and "still open" in r.json()["error"]["message"]
    assert client.get(f"/alerts/{alert_id}", headers=headers).json()["outcome"] is None


def test_who_may_record_an_outcome(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    jones, smith, brown = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""),
                                       ("h2", AlertKind.INACTIVITY, Severity.URGENT, ""),
                                       ("h3", AlertKind.INACTIVITY, Severity.URGENT, ""))
    for home in ("h1", "h2", "h3"):
        clear(sessions, home, AlertKind.INACTIVITY, T0 + timedelta(minutes=20))
    body = {"outcome": "false_alarm"}
    # As for resolving: whoever may see the alert (staff of the organisation, carers in the resident's chain).
    assert client.post(f"/alerts/{jones}/outcome", json=body, headers=world.auth("anne")).status_code == 200
    assert client.post(f"/alerts/{smith}/outcome", json=body, headers=world.auth("ada")).status_code == 200
    for who, alert_id in (("anne", smith), ("ned", jones), ("bea", jones), ("cora", brown)):
        r = client.post(f"/alerts/{alert_id}/outcome", json=body, headers=world.auth(who))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (who, alert_id)
        r = client.post(f"/alerts/{alert_id}/resolve", json={"note": "x", "outcome": "fall"},
                        headers=world.auth(who))
        assert r.status_code == 404, (who, alert_id)
    assert client.post(f"/alerts/{jones}/outcome", json=body).status_code == 401
    with sessions() as s:
        assert s.get(Alert, brown).outcome is None  # type: ignore[union-attr]
