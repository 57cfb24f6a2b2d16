"""The caseload of 130 residents, the care record and the phone layout in a real browser: Debian's chromium driven
by Playwright, against a served app. Screenshots are saved under the test's directory (their paths are printed;
``TELECARE_SCREENSHOT_DIR`` keeps copies)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import Action, AlertEvent, AlertKind, Outcome, Severity
from api.app import create_app
from api.security import hash_password
from gateway.alerting import people, service
from gateway.alerting.record import apply_events
from gateway.config import Settings
from gateway.db.migrate import upgrade
from gateway.db.models import Device, Home, HomeClaim, Organisation, User
from gateway.db.session import make_engine, make_session_factory
from gateway.stores.readings.base import DailySummary
from gateway.stores.readings.sqlite import SqliteReadingStore
from tests.api.conftest import serving

CHROMIUM = os.environ.get("TELECARE_CHROMIUM", "/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(),
                                reason=f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/test does)")
EMAIL, PASSWORD = "coordinator@example.org", "correct horse battery"
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
SURNAMES = ["Jones", "Smith", "Brown", "Patel", "Evans", "Khan", "Wilson", "Taylor", "Clarke", "Hughes"]
PHONE = {"width": 390, "height": 844}


def seed(sessions: sessionmaker[Session], store: SqliteReadingStore) -> None:
    """130 residents: Mary Jones urgent, every 9th not urgent, every 11th's hub offline, every 13th with a device
    nobody described. Anne is in the chains of the even ones."""
    with sessions.begin() as s:
        org = Organisation(name="Northshire Council")
        s.add(org)
        s.flush()
        anne = people.add_recipient(s, "Anne Carer", "a" * 30, organisation_id=org.id)
        bob = people.add_recipient(s, "Bob Carer", "b" * 30, organisation_id=org.id)
        for i in range(130):
            home = f"northshire-{i:03d}"
            s.add(Home(id=home, name=f"{i} Long Street", organisation_id=org.id, hub_online=i % 11 != 5,
                       last_seen=NOW - timedelta(minutes=i)))
            s.flush()
            s.add(HomeClaim(home_id=home, organisation_id=org.id, claimed_at=NOW - timedelta(days=60)))
            name = "Mary Jones" if i == 0 else f"{chr(65 + i % 26)}. {SURNAMES[i % 10]} {i:03d}"
            people.add_resident(s, home, name).created_at = NOW - timedelta(days=60)
            people.set_chain(s, home, [(anne.id if i % 2 == 0 else bob.id, 15)])
            if i % 13 == 7:
                s.add(Device(home_id=home, name="0x00158d0001", kind="motion"))
        s.add(User(organisation_id=org.id, email=EMAIL, name="Carol Coordinator", role="coordinator",
                   password_hash=hash_password(PASSWORD)))
        raised = int((NOW - timedelta(minutes=40)).timestamp() * 1000)
        apply_events(s, [AlertEvent(Action.RAISE, AlertKind.INACTIVITY, "northshire-000", raised, Severity.URGENT,
                                    "No activity since 14:20, last in the kitchen.")]
                     + [AlertEvent(Action.RAISE, AlertKind.NOT_UP, f"northshire-{i:03d}", raised, Severity.WARNING,
                                   "Not up by 10:30.") for i in range(9, 130, 9)], NOW)
        earlier = apply_events(s, [AlertEvent(Action.RAISE, AlertKind.NIGHT_EXIT, "northshire-000",
                                              raised - 86_400_000, Severity.URGENT, "Out at 02:10, not back.")],
                               NOW - timedelta(days=1))
        service.resolve(s, earlier[0].id, "Carol Coordinator", "Back at 02:40; she had gone to look for the cat, "
                        "which was found asleep on the neighbour's shed roof", NOW - timedelta(hours=20),
                        outcome=Outcome.FALSE_ALARM)
    store.write_daily_summaries([DailySummary("northshire-000", NOW.date() - timedelta(days=d),
                                              {"activities": 180 + 5 * d, "bed_minutes": 470, "out_minutes": 45,
                                               "bathroom_visits": 5}) for d in range(1, 28) if d % 6])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dashboard")
    settings = Settings(data_dir=tmp / "data")  # type: ignore[call-arg]
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    store = SqliteReadingStore(tmp / "readings.sqlite3")
    seed(make_session_factory(engine), store)
    app = create_app(settings, sessions=make_session_factory(engine), store=store)
    app.state.now = lambda: NOW
    try:
        with serving(app) as url:
            yield url
    finally:
        store.close()
        engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def signed_in(browser: Any, served: str, viewport: dict[str, int]) -> Any:
    page = browser.new_page(viewport=viewport)
    page.goto(f"{served}/")
    assert page.url.endswith("/dashboard/login"), "the root address leads to the dashboard, signed out to login"
    page.fill("input[name=username]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{served}/dashboard")
    return page


def shot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    keep = os.environ.get("TELECARE_SCREENSHOT_DIR")
    if keep:  # CI keeps them as artifacts when asked
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def names(page: Any) -> list[str]:
    return [n.strip() for n in page.locator("#caseload td.who > a").all_inner_texts()]


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a {PHONE['width']} px screen"


def test_search_filter_sort_and_pages(browser: Any, served: str, tmp_path: Path) -> None:
    page = signed_in(browser, served, {"width": 1200, "height": 900})
    assert "130 residents · 15 open alerts · 12 homes that can't be seen" in page.inner_text("#summary")
    assert names(page)[0] == "Mary Jones" and len(names(page)) == 50, "the urgent one first, 50 a page"
    assert page.locator("#caseload tbody tr").nth(1).get_attribute("data-state") == "warning"
    home = page.locator("#caseload td.home .home-id").first.bounding_box()
    assert home["height"] < 24, "the Home column does not wrap"
    shot(page, tmp_path / "caseload-desktop.png")

    page.fill("input[name=q]", "jones")
    page.click("button[name=apply]")
    assert "q=jones" in page.url, "a search is part of the address: it can be bookmarked"
    assert names(page) and all("Jones" in n for n in names(page)) and len(names(page)) == 13
    page.goto(page.url)  # the bookmark
    assert len(names(page)) == 13 and page.input_value("input[name=q]") == "jones"

    page.goto(f"{served}/dashboard")
    page.click(".chips >> text=Can't see")
    assert "cant_see=1" in page.url and len(names(page)) == 12
    assert page.locator("#caseload td.home .badge.unseen").count() == 12
    assert "all well" not in page.inner_text("#caseload"), "a home that can't be seen is never 'all well'"
    page.select_option("select[name=carer]", label="Anne Carer")
    page.click("button[name=apply]")
    assert all(int(n[-3:]) % 2 == 0 for n in names(page)), "only Anne's residents"
    shot(page, tmp_path / "caseload-filtered.png")

    page.goto(f"{served}/dashboard")
    page.click("#caseload th >> text=Resident")
    assert "sort=name" in page.url
    first_page = names(page)
    assert first_page == sorted(first_page, key=str.lower)
    page.click("a[rel=next]")
    assert "page=2" in page.url and page.inner_text("#page-of") == "Page 2 of 3"
    assert names(page)[0].lower() >= first_page[-1].lower() and not set(names(page)) & set(first_page)
    page.select_option("select[name=state]", "urgent")
    page.click("button[name=apply]")
    assert names(page) == ["Mary Jones"] and "Showing 1–1 of 1 resident matching" in page.inner_text("#showing")


def test_notes_and_going_round(browser: Any, served: str, tmp_path: Path) -> None:
    page = signed_in(browser, served, {"width": 1200, "height": 900})
    page.click("text=Mary Jones")
    assert "Times are Mary Jones's local time, Europe/London (GMT)" in page.inner_text("#zone")
    card = page.locator("[data-alert]").first
    card.locator(".going-form select[name=arriving_in]").select_option("20")
    card.locator("button[name=going_round]").click()
    assert "Recorded who is going round." in page.inner_text("[role=status]")
    assert "Carol Coordinator is going round" in page.inner_text("[data-alert]")
    assert "expected by 15:20 GMT" in page.inner_text("[data-alert]")
    page.fill("[data-alert] textarea[name=text]", "Rang Mary, no answer; her daughter has a key")
    page.click("[data-alert] button[name=add_note]")
    assert "Note added." in page.inner_text("[role=status]")
    note = page.locator("[data-alert] .notes li").first.inner_text()
    assert note == "Carol Coordinator · 15:00 GMT Rang Mary, no answer; her daughter has a key"
    assert "None." not in page.inner_text("#history"), "an alert is open"
    assert page.locator("svg.bars").count() == 4 and page.locator("svg.bars .nodata").count() >= 4
    assert (page.locator("svg.bars .nodata title").first.text_content() or "").endswith(": no data")
    page.click("#figures summary")
    assert "no data" in page.inner_text("#figures table")
    shot(page, tmp_path / "resident-notes.png")


def test_the_phone_layout_fits_390_px(browser: Any, served: str, tmp_path: Path) -> None:
    page = signed_in(browser, served, PHONE)
    no_sideways_scroll(page)
    shot(page, tmp_path / "phone-caseload.png")
    page.goto(f"{served}/dashboard?q=long+street&sort=last_heard&order=desc&per=25&page=2")
    no_sideways_scroll(page)
    page.goto(f"{served}/dashboard")
    page.click("text=Mary Jones")
    page.click("#figures summary")
    assert "cat" in page.inner_text("#history"), "a resolved alert under Recent alerts (cards on a phone)"
    no_sideways_scroll(page)
    box = page.locator("svg.bars").first.bounding_box()
    assert box["width"] >= 300, "the daily charts use the phone's width (their text stays legible)"
    shot(page, tmp_path / "phone-resident.png")
    page.goto(f"{served}/dashboard/login")
    no_sideways_scroll(page)
