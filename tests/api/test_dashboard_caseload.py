"""The caseload page's parameters (a GET form: search, filters, sort, paging), its wording and time zones, bad
parameters, the audit rows it writes, and the root address. The browser tests are in test_dashboard_browser.py."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from gateway.db.models import AuditEntry, Home, HomeClaim, Resident
from tests.api.conftest import CARE_START, T0, World, raise_alerts


def signed_in(client: TestClient, world: World, who: str = "cora") -> TestClient:
    client.cookies.set("telecare_token", world.tokens[who])
    return client


def shown(html: str) -> list[str]:
    """The residents' names, in the caseload's order."""
    return re.findall(r'<a href="/dashboard/residents/\d+">([^<]+)</a>', html)


def test_the_root_address_leads_to_the_dashboard(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/dashboard"
    assert client.get("/").url.path == "/dashboard/login", "signed out: on to the login form"


def test_plurals_and_labelled_local_times(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    with sessions.begin() as s:
        s.get_one(Home, "h2").last_seen = T0.replace(month=7, day=1, hour=12)  # summer: BST
        s.get_one(Home, "h1").timezone = "America/Sao_Paulo"  # no letter abbreviation: named
    html = unescape(signed_in(client, world).get("/dashboard").text)
    summary = re.sub(r"\s+", " ", html[html.index('id="summary"'):html.index("</p>", html.index('id="summary"'))])
    assert "2 residents · 1 open alert · 0 homes that can't be seen" in summary
    assert "1 open alert</span>" in html
    assert "01 Jul 13:00 BST" in html, "h2 last heard at 12:00 UTC in July: 13:00 in London"
    assert "since 06:00 (America/Sao_Paulo)" in html, "raised 09:00 UTC: 06:00 in São Paulo, zone named"
    assert re.search(r"updated \d\d:\d\d (GMT|\(America/Sao_Paulo\))", html)


def test_search_filter_sort_and_pages_are_query_parameters(client: TestClient, world: World,
                                                          sessions: sessionmaker[Session]) -> None:
    raise_alerts(sessions, ("h2", AlertKind.NOT_UP, Severity.WARNING, ""),
                 ("h1", AlertKind.CANT_SEE, Severity.LOW, "hub"))
    c = signed_in(client, world)
    assert shown(c.get("/dashboard").text) == ["Mr Smith", "Mrs Jones"], "warning (2) before device health (1)"
    assert shown(c.get("/dashboard?q=acacia").text) == ["Mrs Jones"], "by address"
    assert shown(c.get("/dashboard?cant_see=1").text) == ["Mrs Jones"]
    assert shown(c.get("/dashboard?state=none").text) == []
    assert "No resident matches these filters" in c.get("/dashboard?state=none").text
    assert shown(c.get(f"/dashboard?carer={world.recipients['anne']}").text) == ["Mrs Jones"]
    assert shown(c.get("/dashboard?sort=name").text) == ["Mr Smith", "Mrs Jones"]
    assert shown(c.get("/dashboard?sort=name&order=desc").text) == ["Mrs Jones", "Mr Smith"]
    one = c.get("/dashboard?sort=name&per=1&page=2").text
    assert shown(one) == ["Mrs Jones"] and "Page 2 of 2" in one and "Showing 2–2 of 2 residents" in one
    assert 'href="/dashboard?sort=name&amp;per=1" rel="first"' in one, "links keep the view, not the defaults"
    assert shown(c.get("/dashboard?sort=name&per=1&page=9").text) == ["Mrs Jones"], "past the end: the last page"
    form = c.get("/dashboard?q=jo&state=warning").text
    assert 'name="q" value="jo"' in form and '<option value="warning" selected>' in form, "the form shows the view"


def test_bad_parameters_are_named_not_guessed(client: TestClient, world: World) -> None:
    c = signed_in(client, world)
    for query, words in (("sort=age", "Unknown sort 'age'"), ("state=dead", "Unknown alert state 'dead'"),
                         ("page=0", "The page must be a whole number from 1"), ("per=9999", "residents per page"),
                         ("carer=x", "The carer must be a whole number"), ("order=up", "Unknown order 'up'")):
        r = c.get(f"/dashboard?{query}")
        assert r.status_code == 400 and words in unescape(r.text), query
        assert shown(r.text) == ["Mr Smith", "Mrs Jones"], "the caseload is still shown, without that parameter"
    assert c.get("/dashboard?q=" + "x" * 300).status_code == 422, "a search past 200 characters is refused"
    assert "shortened" in c.get("/dashboard?q=" + "x" * 150).text


def test_a_page_of_a_large_caseload_audits_only_the_residents_it_shows(
        client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        s.add_all([Home(id=f"big-{i:03d}", organisation_id=world.org_a) for i in range(120)])
        s.flush()
        s.add_all([HomeClaim(home_id=f"big-{i:03d}", organisation_id=world.org_a, claimed_at=CARE_START)
                   for i in range(120)])
        s.add_all([Resident(home_id=f"big-{i:03d}", name=f"Resident {i:03d}", created_at=CARE_START)
                   for i in range(120)])
    html = signed_in(client, world).get("/dashboard?sort=name&per=25&page=2").text
    assert shown(html) == [f"Resident {i:03d}" for i in range(23, 48)], "Mr Smith and Mrs Jones sort first"
    assert "122 residents" in html and "Page 2 of 5" in html
    with sessions() as s:
        viewed = s.scalars(select(AuditEntry.resident_id).where(AuditEntry.resource == "caseload")).all()
    assert len(viewed) == 25


def test_a_carer_filters_within_their_own_residents(client: TestClient, world: World) -> None:
    html = signed_in(client, world, "anne").get("/dashboard").text
    assert shown(html) == ["Mrs Jones"] and "1 resident ·" in html
