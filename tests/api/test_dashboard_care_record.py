"""The care team's record on the resident's page: notes with author and time, who is going round (and who went),
beside the outcome; posted as the page's forms (CSRF, audited like the API). And "Recent alerts" never says
"None." while an alert is open."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from api.dashboard.csrf import token_for_session
from gateway.db.care_record import AlertAttendance, AlertNote
from gateway.db.models import AlertLog, AuditEntry
from tests.api.conftest import Clock, World, raise_alerts


def signed_in(client: TestClient, world: World, who: str = "anne") -> TestClient:
    client.cookies.set("telecare_token", world.tokens[who])
    return client


def post(client: TestClient, url: str, data: dict[str, str]) -> str:
    """The form's post with the session's CSRF token; the notice code of the page it leads back to."""
    r = client.post(url, data={**data, "csrf": token_for_session(client.cookies["telecare_token"])},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("notice=", 1)[-1]


def page(client: TestClient, world: World) -> str:
    return unescape(client.get(f"/dashboard/residents/{world.residents['jones']}").text)


def test_notes_with_author_and_local_time(client: TestClient, world: World, sessions: sessionmaker[Session],
                                          clock: Clock) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    c = signed_in(client, world)
    assert post(c, f"/dashboard/alerts/{alert_id}/notes", {"text": "  Rang her: no answer  "}) == "noted"
    clock.at += timedelta(minutes=20)
    assert post(c, f"/dashboard/alerts/{alert_id}/notes", {"text": "Found her in the garden, fine"}) == "noted"
    assert post(c, f"/dashboard/alerts/{alert_id}/notes", {"text": "   "}) == "not_noted"
    html = page(c, world)
    notes = re.findall(r'data-note-author="(\w+)"><span class="note-meta">([^<]+)</span> ([^<]+)</li>', html)
    assert notes == [("Anne", "Anne · 10:00 GMT", "Rang her: no answer"),
                     ("Anne", "Anne · 10:20 GMT", "Found her in the garden, fine")]
    assert "Note added." in c.get(f"/dashboard/residents/{world.residents['jones']}?notice=noted").text
    with sessions() as s:
        assert s.scalar(select(AlertNote.author_user_id).limit(1)) == world.users["anne"]
        assert s.scalars(select(AuditEntry.resource).where(AuditEntry.action == "create")).all() == [
            "alert note", "alert note"], "audited as the API's POST /alerts/{id}/notes is"


def test_going_round_myself_or_someone_named_and_clearing_it(client: TestClient, world: World,
                                                             sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    c = signed_in(client, world)
    assert post(c, f"/dashboard/alerts/{alert_id}/going-round", {"arriving_in": "20"}) == "going_round"
    html = page(c, world)
    assert "Anne is going round" in html and "said 10:00 GMT" in html and "expected by 10:20 GMT" in html
    assert 'name="not_going_round"' in html
    assert post(c, f"/dashboard/alerts/{alert_id}/going-round", {"name": "Mrs Patel (neighbour)"}) == "going_round"
    html = page(c, world)
    assert "Mrs Patel (neighbour) is going round" in html and "by Anne" in html
    assert "Went round: Anne (said 10:00 GMT; cleared 10:00 GMT by Anne)" in html
    assert post(c, f"/dashboard/alerts/{alert_id}/going-round/clear", {}) == "going_round_cleared"
    assert post(c, f"/dashboard/alerts/{alert_id}/going-round/clear", {}) == "nobody_going_round"
    assert post(c, f"/dashboard/alerts/{alert_id}/going-round", {"arriving_in": "-5"}) == "not_going_round"
    assert post(c, f"/dashboard/alerts/{alert_id}/going-round", {"arriving_in": "9999"}) == "not_going_round"
    with sessions() as s:
        rows = s.scalars(select(AlertAttendance).order_by(AlertAttendance.id)).all()
        assert [(r.name, r.cleared_by) for r in rows] == [("Anne", "Anne"), ("Mrs Patel (neighbour)", "Anne")]
        assert "attending" in s.scalars(select(AlertLog.what).where(AlertLog.alert_id == alert_id)).all()
        assert s.scalars(select(AuditEntry.resource).where(AuditEntry.resource == "alert attendance")).all()


def test_a_resolved_alert_keeps_its_record_and_takes_no_one_going_round(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    c = signed_in(client, world)
    post(c, f"/dashboard/alerts/{alert_id}/going-round", {})
    post(c, f"/dashboard/alerts/{alert_id}/notes", {"text": "On my way"})
    assert post(c, f"/dashboard/alerts/{alert_id}/resolve", {"outcome": "false_alarm", "note": "Asleep"}) == "resolved"
    assert post(c, f"/dashboard/alerts/{alert_id}/going-round", {}) == "not_going_round"
    assert post(c, f"/dashboard/alerts/{alert_id}/notes", {"text": "Daughter told"}) == "noted", "notes go on"
    history = page(c, world)
    history = history[history.index('id="history"'):]
    assert "On my way" in history and "Daughter told" in history and "Anne is going round" in history
    assert 'data-outcome="false_alarm"' in history and "resolved 10:00 GMT by Anne: Asleep" in history


def test_the_forms_need_the_sessions_csrf_token_and_the_alert_to_be_visible(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    brown, = raise_alerts(sessions, ("h3", AlertKind.INACTIVITY, Severity.URGENT, ""))
    c = signed_in(client, world)
    for url in (f"/dashboard/alerts/{alert_id}/notes", f"/dashboard/alerts/{alert_id}/going-round",
                f"/dashboard/alerts/{alert_id}/going-round/clear"):
        assert c.post(url, data={"text": "x", "csrf": "forged"}).status_code == 403, url
    csrf = token_for_session(world.tokens["anne"])
    assert c.post(f"/dashboard/alerts/{brown}/notes", data={"text": "x", "csrf": csrf}).status_code == 404
    with sessions() as s:
        assert s.scalar(select(AlertNote.id)) is None and s.scalar(select(AlertAttendance.id)) is None


def test_recent_alerts_never_says_none_while_one_is_open(client: TestClient, world: World,
                                                         sessions: sessionmaker[Session]) -> None:
    c = signed_in(client, world)
    assert ">None.</td>" in page(c, world), "no alerts at all"
    raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    html = page(c, world)
    assert ">None.</td>" not in html and "No resolved alerts yet: the open one is above." in html
