"""The coordinators' dashboard: server-rendered pages over the same sessions, rules and services as the API.

One module a page (docs/dashboard.md):

* ``signin.py``: signing in and out (the server's root address leads here: ``api/app.py``);
* ``caseload_page.py``: the caseload, searched, filtered, sorted and paged in the database (``api/caseload.py``);
* ``resident_page.py``: a resident's alerts with the care team's record on each, today, the last four weeks;
* ``alert_actions.py``: acknowledge, resolve, outcome, notes, going round (the API's services and audit rows);
* ``baseline_page.py``: what the alerts are compared with;
* ``common.py``: the templates, the signed-in user and CSRF check, and how times and alerts are shown.

Logging in issues the API's own token, kept in an HttpOnly cookie that only these pages accept (the JSON API takes
bearer tokens and API keys only); every form carries a CSRF token and must come from this origin (``csrf.py``).
Notices after an action are named by a short code (``?notice=resolved``) from a fixed set, never text from the
query string; ids beyond the database's range are a 422.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.staticfiles import StaticFiles

from api.dashboard import alert_actions, baseline_page, caseload_page, resident_page, signin
from api.dashboard.common import LoggedOut, login_redirect

STATIC = Path(__file__).parent / "static"


def install(app: Any) -> None:
    """Mount the pages and send signed-out visitors to the login form."""
    for module in (signin, caseload_page, resident_page, alert_actions, baseline_page):
        app.include_router(module.router)
    # Served by the app (not a CDN): the CSP allows styles from this origin only, and no inline ones.
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.add_exception_handler(LoggedOut, login_redirect)
