"""The dashboard's outcome controls, as forms posted to the served pages: resolving offers the outcomes, a resolved
alert shows its own, and one that cleared by itself can be given one (or corrected). The browser test
(test_dashboard.py) goes through the same form in chromium."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertEvent, AlertKind, Outcome, Severity
from api.dashboard.csrf import token_for_session
from gateway.alerting.record import apply_events
from gateway.db.models import Alert, AuditEntry
from tests.api.conftest import T0, World, raise_alerts


def signed_in(client: TestClient, world: World, who: str = "anne") -> TestClient:
    client.cookies.set("telecare_token", world.tokens[who])
    return client


def post(client: TestClient, url: str, data: dict[str, str], *, follow_redirects: bool = True) -> Response:
    """A form post as the page's form sends it: with the signed-in session's CSRF token."""
    csrf = token_for_session(client.cookies["telecare_token"])
    return client.post(url, data={**data, "csrf": csrf}, follow_redirects=follow_redirects)


def stored(sessions: sessionmaker[Session], alert_id: int) -> Alert:
    with sessions() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None
        return alert


def test_the_resolve_form_offers_every_outcome_and_records_the_one_chosen(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    resident = world.residents["jones"]
    html = signed_in(client, world).get(f"/dashboard/residents/{resident}").text
    form = html[html.index(f'action="/dashboard/alerts/{alert_id}/resolve"'):]
    form = form[:form.index("</form>")]
    assert re.findall(r'<option value="(\w+)">', form) == [o.value for o in Outcome]
    assert '<select name="outcome" required' in form
    r = post(client, f"/dashboard/alerts/{alert_id}/resolve", data={"note": "Asleep in the chair",
                                                                  "outcome": "false_alarm"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/dashboard/residents/{resident}?notice=")
    alert = stored(sessions, alert_id)
    assert (alert.state, alert.outcome, alert.outcome_by) == ("resolved", "false_alarm", "Anne")
    history = client.get(f"/dashboard/residents/{resident}").text
    history = history[history.index('id="history"'):]
    assert 'data-outcome="false_alarm"' in history and "False alarm: the resident was fine" in history
    assert "Correct it" in history  # a resolved alert's outcome can be corrected
    with sessions() as s:
        assert s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "resolve")).all() == [
            f"alert {alert_id}: false_alarm"]


def test_an_alert_that_cleared_by_itself_is_given_its_outcome(client: TestClient, world: World,
                                                              sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    cleared = T0 + timedelta(minutes=20)
    with sessions.begin() as s:
        apply_events(s, [AlertEvent(Action.CLEAR, AlertKind.INACTIVITY, "h1", int(cleared.timestamp() * 1000),
                                    Severity.URGENT, "Movement in the hall")], cleared)
    resident = world.residents["jones"]
    html = signed_in(client, world).get(f"/dashboard/residents/{resident}").text
    row = html[html.index(f'<tr data-alert="{alert_id}"'):]
    row = row[:row.index("</tr>")]
    assert "(cleared by itself)" in row and "Record what was found" in row
    assert f'action="/dashboard/alerts/{alert_id}/outcome"' in row
    r = post(client, f"/dashboard/alerts/{alert_id}/outcome", data={"outcome": "false_alarm", "note": "Reading"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=recorded_false_alarm")
    alert = stored(sessions, alert_id)
    assert (alert.resolved_by, alert.outcome, alert.outcome_note) == ("auto", "false_alarm", "Reading")
    r = post(client, f"/dashboard/alerts/{alert_id}/outcome", data={"outcome": "unwell"}, follow_redirects=True)
    assert r.status_code == 200 and "Recorded: Unwell." in r.text
    assert (stored(sessions, alert_id).outcome, stored(sessions, alert_id).outcome_note) == ("unwell", None)


def test_a_bad_outcome_from_the_form_says_so_and_changes_nothing(client: TestClient, world: World,
                                                                 sessions: sessionmaker[Session]) -> None:
    open_id, done_id = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""),
                                    ("h1", AlertKind.NOT_UP, Severity.WARNING, ""))
    signed_in(client, world)
    r = post(client, f"/dashboard/alerts/{open_id}/resolve", data={"note": "x", "outcome": "fine"})
    assert r.status_code == 200 and "Not resolved: choose what was found from the list." in r.text
    assert stored(sessions, open_id).state == "raised"
    post(client, f"/dashboard/alerts/{done_id}/resolve", data={"note": "seen"})  # no outcome: still resolves
    assert (stored(sessions, done_id).state, stored(sessions, done_id).outcome) == ("resolved", None)
    r = post(client, f"/dashboard/alerts/{done_id}/outcome", data={"outcome": "earthquake"})
    assert "Not recorded: choose what was found from the list." in r.text and stored(sessions, done_id).outcome is None
    r = post(client, f"/dashboard/alerts/{open_id}/outcome", data={"outcome": "fall"})
    assert r.status_code == 409 and "still open" in r.json()["error"]["message"]
    # Not one of Anne's residents: as on the API, not found.
    other, = raise_alerts(sessions, ("h2", AlertKind.INACTIVITY, Severity.URGENT, ""))
    assert post(client, f"/dashboard/alerts/{other}/resolve", data={"note": "x", "outcome": "fall"}).status_code == 404
