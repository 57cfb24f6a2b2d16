"""The dashboard in a real headless browser: Debian's chromium driven by Playwright, against a served app."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertEvent, AlertKind, Severity
from api.app import create_app
from api.security import hash_password
from gateway.alerting import people
from gateway.alerting.record import apply_events
from gateway.claims import claim_home
from gateway.config import Settings
from gateway.db.migrate import upgrade
from gateway.db.models import Home, Organisation, User
from gateway.db.session import make_engine, make_session_factory
from gateway.homes import import_homes, parse_description
from gateway.stores.readings.base import ACTIVITY_FIELD, DailySummary, Point
from gateway.stores.readings.sqlite import SqliteReadingStore
from sensors_sim.scenario import default_home, to_home_description
from tests.api.conftest import serving

CHROMIUM = os.environ.get("TELECARE_CHROMIUM", "/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(),
                                reason=f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/test does)")
EMAIL, PASSWORD = "coordinator@example.org", "correct horse battery"
NOW = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)  # the app's clock in these tests


def seed(sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    with sessions() as s:
        org = Organisation(name="Northshire Council")
        s.add(org)
        s.flush()
        for home_id, name in (("h-quiet", "Arthur Quiet"), ("h-fall", "Mary Jones")):
            import_homes(s, parse_description(to_home_description(default_home(home_id))))
            # Claimed, and the resident added, well before the readings and summaries below.
            claim_home(s, s.get_one(Home, home_id), org.id, NOW - timedelta(days=60))
            people.add_resident(s, home_id, name).created_at = NOW - timedelta(days=60)
        s.add(User(organisation_id=org.id, email=EMAIL, name="Carol Coordinator", role="coordinator",
                   password_hash=hash_password(PASSWORD)))
        raised = int((NOW - timedelta(minutes=40)).timestamp() * 1000)
        apply_events(s, [AlertEvent(Action.RAISE, AlertKind.INACTIVITY, "h-fall", raised, Severity.URGENT,
                                    "No activity since 13:05, last in the kitchen. Usually there is activity "
                                    "within 20 min at this time of day.")], NOW)
        s.commit()
    today = NOW.date()
    store.write_daily_summaries([DailySummary("h-fall", today - timedelta(days=d),
                                              {"activities": 200 + 7 * d, "bed_minutes": 480, "out_minutes": 60,
                                               "bathroom_visits": 6}) for d in range(1, 28)])
    start = int(datetime.combine(today, datetime.min.time(), UTC).timestamp() * 1000)
    store.write([Point("reading", {"home": "h-fall", "device": "kitchen_pir", "kind": "motion", "room": "kitchen"},
                       {"occupancy": i % 2 == 0, **({ACTIVITY_FIELD: "motion"} if i % 2 == 0 else {})},
                       start + i * 600_000) for i in range(40)])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path / "data")  # type: ignore[call-arg]
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    store = SqliteReadingStore(tmp_path / "readings.sqlite3")
    seed(sessions, store)
    app = create_app(settings, sessions=sessions, store=store)
    app.state.now = lambda: NOW

    try:
        with serving(app) as url:
            yield url
    finally:
        store.close()
        engine.dispose()


def test_a_coordinator_signs_in_sees_who_needs_attention_and_answers_the_alert(served: str, tmp_path: Path) -> None:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{served}/dashboard")
        assert page.url.endswith("/dashboard/login"), "signed out: the login form"
        page.fill("input[name=username]", EMAIL)
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        assert "do not match" in page.inner_text("[role=alert]")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        rows = page.locator("#caseload tbody tr")
        assert rows.count() == 2
        assert "Mary Jones" in rows.nth(0).inner_text(), "the resident with an urgent alert comes first"
        assert "no activity" in rows.nth(0).inner_text() and "all well" in rows.nth(1).inner_text()
        page.screenshot(path=str(tmp_path / "caseload.png"), full_page=True)

        page.click("text=Mary Jones")
        assert page.locator("svg.timeline .mark").count() >= 10, "today's activity by room"
        assert page.locator("svg.bars").count() == 4, "the last weeks' figures"
        page.screenshot(path=str(tmp_path / "resident.png"), full_page=True)
        page.click("button[name=ack]")
        assert "Acknowledged" in page.inner_text("[role=status]")
        assert "acknowledged by Carol Coordinator" in page.inner_text("[data-alert]")
        page.fill("input[name=note]", "Found on the kitchen floor, ambulance called")
        page.click("button[name=resolve]")
        assert "Open alerts" in page.inner_text("main"), "no outcome chosen: the browser does not send the form"
        page.select_option("[data-alert] select[name=outcome]", "fall")
        page.click("button[name=resolve]")
        assert "no open alerts" in page.inner_text("main")
        assert "ambulance called" in page.inner_text("#history")
        assert "Found on the floor, or had fallen" in page.inner_text("#history")
        browser.close()
    saved = os.environ.get("TELECARE_SCREENSHOT_DIR")
    if saved:  # CI keeps them as artifacts when asked
        Path(saved).mkdir(parents=True, exist_ok=True)
        for name in ("caseload.png", "resident.png"):
            shutil.copy(tmp_path / name, Path(saved) / name)
    assert (tmp_path / "resident.png").stat().st_size > 10_000


def test_signed_out_pages_and_actions_go_to_the_login_form(served: str) -> None:
    with httpx.Client(base_url=served, follow_redirects=False) as client:
        assert client.get("/dashboard").headers["location"] == "/dashboard/login"
        assert client.post("/dashboard/alerts/1/acknowledge").headers["location"] == "/dashboard/login"
        client.cookies.set("telecare_token", "not-a-token")
        assert client.get("/dashboard/residents/1").status_code == 303
