"""``/docs`` and ``/redoc`` work with no way out to the internet: every asset comes from the package; the root
address leads to the dashboard."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.api_docs import ASSETS_PATH, assets_directory
from api.app import create_app
from tests.api.conftest import serving, settings_for

CHROMIUM = os.environ.get("TELECARE_CHROMIUM", "/usr/bin/chromium")
_URL_ATTRIBUTE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_SCRIPT_URL = re.compile(r"""url:\s*'([^']+)'""")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",),
                 ".png": ("image/png",)}


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return create_app(settings_for(tmp_path))  # the pages need no database


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _urls(html: str) -> list[str]:
    return _URL_ATTRIBUTE.findall(html) + _SCRIPT_URL.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_pages_reference_only_this_server(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = _urls(r.text)
    assert urls, "the page loads its assets"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
    for elsewhere in ("http://", "https://", "cdn.jsdelivr", "googleapis", "fastapi.tiangolo.com", "unpkg"):
        assert elsewhere not in r.text, f"{page} mentions {elsewhere}"
    assert "/openapi.json" in urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_a_page_loads_is_served_with_its_type(client: TestClient, page: str) -> None:
    assets = [url for url in _urls(client.get(page).text) if url.startswith(ASSETS_PATH + "/")]
    assert len(assets) == (3 if page == "/docs" else 2)  # the script, the style (Swagger UI) and the icon
    for url in assets:
        r = client.get(url)
        assert r.status_code == 200, url
        suffix = Path(url).suffix
        assert r.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], (url, r.headers["content-type"])
        assert len(r.content) == (assets_directory() / Path(url).name).stat().st_size > 1000
    assert client.get(f"{ASSETS_PATH}/swagger-ui-bundle.js").content.startswith(b"/*! For license")
    assert client.get(f"{ASSETS_PATH}/nothing.js").status_code == 404
    assert client.get(f"{ASSETS_PATH}/../../api/app.py").status_code == 404


def test_the_openapi_description_and_oauth2_redirect_are_served(client: TestClient) -> None:
    assert client.get("/openapi.json").json()["info"]["title"] == "Telecare API"
    r = client.get("/docs/oauth2-redirect")
    assert r.status_code == 200 and "oauth2" in r.text.lower()
    schema_paths = client.get("/openapi.json").json()["paths"]
    assert "/docs" not in schema_paths and "/" not in schema_paths, "the pages are not API operations"


def test_behind_a_proxy_prefix_every_url_keeps_it(app: FastAPI) -> None:
    with TestClient(app, root_path="/telecare") as client:
        for page in ("/docs", "/redoc"):
            urls = _urls(client.get(page).text)
            assert urls and all(url.startswith("/telecare/") for url in urls), urls
        r = client.get("/", follow_redirects=False)
        assert r.headers["location"] == "/telecare/dashboard"


def test_the_root_address_leads_to_the_dashboard(client: TestClient) -> None:
    for method in ("GET", "HEAD"):
        r = client.request(method, "/", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/dashboard", method
    r = client.get("/")
    assert r.status_code == 200 and r.url.path == "/dashboard/login", "signed out: the dashboard's login"
    assert client.post("/", follow_redirects=False).status_code == 405


@pytest.mark.skipif(not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_the_pages_render_in_a_browser_with_no_way_out(app: FastAPI, tmp_path: Path) -> None:
    """Chromium with every request to another origin refused, as on a locked-down care network."""
    playwright = pytest.importorskip("playwright.sync_api")
    refused: list[str] = []
    with serving(app) as served, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})

            def only_this_server(route: object) -> None:
                url = route.request.url  # type: ignore[attr-defined]
                if url.startswith(served) or url.startswith("data:") or url.startswith("blob:"):
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    refused.append(url)
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", only_this_server)
            page.goto(f"{served}/docs")
            page.get_by_text("/alerts/{alert_id}/notes").first.wait_for(timeout=20_000)
            assert page.locator(".swagger-ui .info .title").inner_text().startswith("Telecare API")
            page.screenshot(path=str(tmp_path / "docs.png"))
            page.goto(f"{served}/redoc")
            page.locator("h1", has_text="Telecare API").first.wait_for(timeout=20_000)
            page.get_by_text("Add a note").first.wait_for(state="attached")  # in ReDoc's menu
            page.screenshot(path=str(tmp_path / "redoc.png"))
        finally:
            browser.close()
    assert refused == [], f"the pages tried to reach {refused}"
