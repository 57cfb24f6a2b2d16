"""The dashboard hardened (issue 12, finding 7): security headers on every answer, no-store on health data, CSRF
tokens and Origin checks on every form, a JSON API that ignores the dashboard's cookie, notices from a fixed set,
and ids beyond the database's range answered 422 (over real HTTP too, where a POST used to reset the connection)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from api.app import create_app
from api.dashboard.csrf import LOGIN_CSRF_COOKIE, token_for_session
from api.headers import STRICT_CSP
from gateway.db.models import Alert, AuditEntry, AuthToken
from tests.api.conftest import PASSWORD, Clock, World, app_for, raise_alerts, serving, settings_for

HUGE_ID = "9" * 20  # beyond 64 bits, let alone PostgreSQL's 32-bit ids


def signed_in(client: TestClient, world: World, who: str = "cora") -> TestClient:
    client.cookies.set("telecare_token", world.tokens[who])
    return client


def state_of(sessions: sessionmaker[Session], alert_id: int) -> str:
    with sessions() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None
        return alert.state


# --- headers -------------------------------------------------------------------------------------------------------


def assert_hardened(response: httpx.Response) -> None:
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_every_answer_carries_the_security_headers_and_health_data_is_not_stored(client: TestClient,
                                                                                 world: World) -> None:
    signed_in(client, world)
    pages = [client.get("/dashboard"), client.get(f"/dashboard/residents/{world.residents['jones']}"),
             client.get(f"/dashboard/residents/{world.residents['jones']}/baseline"),
             client.get("/dashboard/login")]
    client.cookies.clear()
    answers = [client.get("/alerts", headers=world.auth("cora")), client.get("/residents", headers=world.auth("cora")),
               client.get("/alerts"), client.get("/no/such/route")]  # errors too
    for r in pages + answers:
        assert_hardened(r)
        assert r.headers["content-security-policy"] == STRICT_CSP, r.url
        assert r.headers["cache-control"] == "no-store", r.url
        assert "strict-transport-security" not in r.headers, "plain HTTP: HSTS would be ignored, and misleading"
    # Static assets and the API's description hold no health data: they may be cached.
    for path in ("/dashboard/static/dashboard.css", "/openapi.json"):
        r = client.get(path)
        assert r.status_code == 200 and "no-store" not in r.headers.get("cache-control", "")
        assert_hardened(r)
    assert client.get("/dashboard/static/dashboard.css").headers["content-type"].startswith("text/css")


def test_the_strict_policy_allows_no_script_and_the_pages_need_none(client: TestClient, world: World) -> None:
    assert "script-src" not in STRICT_CSP and "default-src 'none'" in STRICT_CSP  # so no script runs at all
    assert "'unsafe-inline'" not in STRICT_CSP and "style-src 'self'" in STRICT_CSP
    raise_alerts(client.app.state.sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))  # type: ignore[attr-defined]
    signed_in(client, world)
    for path in ("/dashboard", f"/dashboard/residents/{world.residents['jones']}",
                 f"/dashboard/residents/{world.residents['jones']}/baseline", "/dashboard/login"):
        html = client.get(path).text
        assert '<link rel="stylesheet" href="/dashboard/static/dashboard.css">' in html
        for inline in (r"<script", r"<style", r"\sstyle=", r"\son[a-z]+=", r"javascript:"):
            assert not re.search(inline, html, re.IGNORECASE), (path, inline)


def test_hsts_only_over_tls(tmp_path: Path, sessions: sessionmaker[Session], world: World) -> None:
    app = create_app(settings_for(tmp_path), sessions=sessions)
    with TestClient(app, base_url="https://testserver") as tls:
        r = tls.get("/dashboard/login")
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        assert "secure" in r.headers["set-cookie"].lower(), "the login form's cookie only over TLS too"


def test_the_api_docs_get_a_policy_that_lets_them_load_and_nothing_else(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200
        assert_hardened(r)
        csp = r.headers["content-security-policy"]
        script_src = csp.split("script-src ", 1)[1].split(";", 1)[0].split()
        assert script_src[0] == "'self'" and all(s.startswith("'sha256-") for s in script_src[1:]), script_src
        assert "frame-ancestors 'none'" in csp
        assert "https:" not in csp, "served from the package: nothing from a CDN (issue 14: /docs offline)"
        for script in re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL):
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in csp, "the page's own inline script is allowed by its hash"
        assert int(r.headers["content-length"]) == len(r.content)
    assert "sha256-" in client.get("/docs").headers["content-security-policy"]


# --- the JSON API and the cookie -----------------------------------------------------------------------------------


def test_the_json_api_ignores_the_dashboards_cookie(client: TestClient, world: World,
                                                   sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    signed_in(client, world)
    assert client.get("/alerts").status_code == 401
    assert client.get(f"/residents/{world.residents['jones']}").status_code == 401
    assert client.post(f"/alerts/{alert_id}/acknowledge", json={}).status_code == 401
    assert state_of(sessions, alert_id) == "raised"
    assert client.get("/dashboard").status_code == 200, "the pages still take it"
    assert client.get("/alerts", headers=world.auth("cora")).status_code == 200, "bearer tokens still work"


# --- CSRF ----------------------------------------------------------------------------------------------------------


def test_a_form_post_needs_this_sessions_csrf_token(client: TestClient, world: World,
                                                   sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    signed_in(client, world)
    url = f"/dashboard/alerts/{alert_id}/acknowledge"
    for data in ({}, {"csrf": "0" * 64}, {"csrf": token_for_session(world.tokens["ada"])}, {"csrf": "é" * 10}):
        r = client.post(url, data=data, follow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"], data
    for action, data in (("resolve", {"note": "x", "outcome": "fall"}), ("outcome", {"outcome": "fall"})):
        r = client.post(f"/dashboard/alerts/{alert_id}/{action}", data=data, follow_redirects=False)
        assert r.status_code == 403, action
    assert state_of(sessions, alert_id) == "raised", "nothing forged was done"

    page = client.get(f"/dashboard/residents/{world.residents['jones']}").text
    tokens = set(re.findall(r'<input type="hidden" name="csrf" value="([0-9a-f]+)">', page))
    assert tokens == {token_for_session(world.tokens["cora"])}, "every form of the page carries the session's token"
    assert page.count('name="csrf"') == page.count("<form"), "every form"
    r = client.post(url, data={"csrf": tokens.pop()}, follow_redirects=False)
    assert r.status_code == 303 and state_of(sessions, alert_id) == "acknowledged"


def test_a_post_from_another_site_is_refused_even_with_the_token(client: TestClient, world: World,
                                                                sessions: sessionmaker[Session]) -> None:
    alert_id, = raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""))
    signed_in(client, world)
    url, data = f"/dashboard/alerts/{alert_id}/acknowledge", {"csrf": token_for_session(world.tokens["cora"])}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}, {"Origin": "http://testserver.evil.example"}):
        r = client.post(url, data=data, headers=headers, follow_redirects=False)
        assert r.status_code == 403, headers
    assert state_of(sessions, alert_id) == "raised"
    r = client.post(url, data=data, headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303 and state_of(sessions, alert_id) == "acknowledged"


def test_signing_out_needs_the_token(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    signed_in(client, world)
    assert client.post("/dashboard/logout", follow_redirects=False).status_code == 403
    assert client.get("/dashboard").status_code == 200, "still signed in"
    page = client.get("/dashboard").text
    assert f'name="csrf" value="{token_for_session(world.tokens["cora"])}"' in page  # the sign-out form
    r = client.post("/dashboard/logout", data={"csrf": token_for_session(world.tokens["cora"])},
                    follow_redirects=False)
    assert r.status_code == 303
    with sessions() as s:
        assert s.query(AuthToken).filter(AuthToken.user_id == world.users["cora"],
                                         AuthToken.revoked_at.is_not(None)).count() == 1
        assert s.query(AuditEntry).filter(AuditEntry.action == "logout").count() == 1, "signing out is audited"


def test_the_login_form_is_double_submitted_and_from_this_origin(client: TestClient, world: World) -> None:
    credentials = {"username": world.emails["cora"], "password": PASSWORD}
    # A forged login (no form of ours behind it) is refused before the password is even checked.
    r = client.post("/dashboard/login", data=credentials, follow_redirects=False)
    assert r.status_code == 403 and "telecare_token" not in r.cookies and "sign in again" in r.text
    form = client.get("/dashboard/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token and client.cookies[LOGIN_CSRF_COOKIE] == token.group(1)
    r = client.post("/dashboard/login", data={**credentials, "csrf": "not-it"}, follow_redirects=False)
    assert r.status_code == 403 and "telecare_token" not in r.cookies
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)  # the refusal is a fresh form
    assert token
    r = client.post("/dashboard/login", data={**credentials, "csrf": token.group(1)},
                    headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert r.status_code == 403 and "telecare_token" not in r.cookies
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert token
    r = client.post("/dashboard/login", data={**credentials, "csrf": token.group(1)},
                    headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303 and r.cookies.get("telecare_token")


# --- notices -------------------------------------------------------------------------------------------------------


def test_notices_come_from_a_fixed_set_never_from_the_query_string(client: TestClient, world: World) -> None:
    signed_in(client, world)
    page = f"/dashboard/residents/{world.residents['jones']}"
    r = client.get(page, params={"notice": "Call 0800 FAKE now: your account is locked"})
    assert r.status_code == 200 and "0800" not in r.text and 'role="status"' not in r.text
    assert "Resolved: everyone alerted is told." in client.get(page, params={"notice": "resolved"}).text
    assert "Recorded: Unwell." in client.get(page, params={"notice": "recorded_unwell"}).text


# --- ids -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"/dashboard/residents/{HUGE_ID}", f"/dashboard/residents/{HUGE_ID}/baseline",
                                  "/dashboard/residents/2147483648", "/dashboard/residents/0"])
def test_an_id_out_of_range_is_a_422_on_a_page(client: TestClient, world: World, path: str) -> None:
    r = signed_in(client, world).get(path)
    assert r.status_code == 422 and "resident_id" in r.json()["error"]["message"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve", "outcome"])
def test_an_id_out_of_range_is_a_422_on_a_form(client: TestClient, world: World, action: str) -> None:
    signed_in(client, world)
    r = client.post(f"/dashboard/alerts/{HUGE_ID}/{action}", follow_redirects=False,
                    data={"csrf": token_for_session(world.tokens["cora"]), "note": "x", "outcome": "fall"})
    assert r.status_code == 422 and "alert_id" in r.json()["error"]["message"]


@pytest.fixture
def served(tmp_path: Path, sessions: sessionmaker[Session], world: World, clock: Clock) -> Iterator[str]:
    """The app under uvicorn, as deployed (the connection reset happened there, not in the test client)."""
    app = app_for(tmp_path, sessions, clock)
    with serving(app) as url:
        yield url


def test_over_http_a_huge_id_is_answered_and_a_proxy_saying_https_gets_hsts(served: str, world: World) -> None:
    cookies = {"telecare_token": world.tokens["cora"]}
    with httpx.Client(base_url=served, cookies=cookies, follow_redirects=False) as http:
        r = http.post(f"/dashboard/alerts/{HUGE_ID}/acknowledge", data={"csrf": token_for_session(cookies[
            "telecare_token"])})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"
        assert http.get(f"/dashboard/residents/{HUGE_ID}").status_code == 422
        assert "strict-transport-security" not in http.get("/dashboard/login").headers
        # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (its --forwarded-allow-ips default): a TLS proxy there.
        r = http.get("/dashboard/login", headers={"X-Forwarded-Proto": "https"})
        assert r.headers["strict-transport-security"].startswith("max-age=")
