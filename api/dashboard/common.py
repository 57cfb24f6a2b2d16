"""What every dashboard page shares: the templates, who is signed in (the cookie), the CSRF check of a form post,
how an alert and a time are shown, and the notices an action may leave.

Time-zone policy (docs/dashboard.md): every time about a resident is shown in the resident's (their home's) local
time, labelled with the zone, on every page: ``14:05 GMT``, ``yesterday 23:10 BST``, ``03 Dec 09:00 GMT``; a zone
without a letter abbreviation is named instead (``14:05 (America/Sao_Paulo)``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from analytics.alerts import DEVICE_HEALTH, AlertKind, Outcome
from api.audit import remember_principal
from api.dashboard.csrf import same_origin, session_token_matches, token_for_session
from api.deps import Clock, Principal, SessionDep, principal_from_token
from api.errors import ApiError, Forbidden
from api.security import TOKEN_COOKIE
from gateway import timezones
from gateway.alerting import outcomes
from gateway.db.models import Alert, Home

__all__ = [
    "FORGED", "KIND_LABELS", "NOTICES", "OUTCOME_CHOICES", "FormPrincipal", "LoggedOut", "PagePrincipal",
    "alert_view", "back", "form_principal", "home_zone", "login_redirect", "page_principal", "plural",
    "templates", "when", "zone_label",
]


def _csrf_context(request: Request) -> dict[str, Any]:
    """Every page's forms carry the session's CSRF token (none signed out: the login form has its own)."""
    token = request.cookies.get(TOKEN_COOKIE)
    return {"csrf": token_for_session(token) if token else ""}


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 open alert``, ``2 open alerts``, ``0 residents``: the count with its noun agreeing."""
    return f"{count} {one if count == 1 else many or one + 's'}"


templates = Jinja2Templates(directory=Path(__file__).parent / "templates", context_processors=[_csrf_context])
templates.env.filters["plural"] = plural

KIND_LABELS = {"inactivity": "no activity", "not_up": "not up", "night_exit": "out at night",
               "long_absence": "out long", "no_meals": "no meals", "activity_decline": "less active",
               "cold_home": "cold", "pendant": "pendant", "hub_offline": "hub offline", "cant_see": "can't see",
               "sensor_silent": "sensor silent", "low_battery": "battery low", "hub_misbehaving": "hub misbehaving"}
OUTCOME_CHOICES = [(o.value, outcomes.label(o)) for o in Outcome]
# What a page may say after an action, by code: the query string names one, it never supplies the words (a link
# to a real page saying "call 0800 ..." would be believed).
NOTICES = {
    "acknowledged": "Acknowledged: the others in the chain are told you are dealing with it.",
    "resolved": "Resolved: everyone alerted is told.",
    "not_resolved": "Not resolved: choose what was found from the list.",
    "not_recorded": "Not recorded: choose what was found from the list.",
    "noted": "Note added.",
    "not_noted": "Not added: write the note first.",
    "going_round": "Recorded who is going round.",
    "not_going_round": "Not recorded: the alert may be resolved already, or the arrival time was not a number "
                       "of minutes within a day.",
    "going_round_cleared": "Nobody is going round now; the record is kept.",
    "nobody_going_round": "Nobody was going round.",
    "notes_full": "Not added: this alert has as many notes as it can keep; write a summary in its outcome note.",
    **{f"recorded_{o.value}": f"Recorded: {outcomes.label(o)}." for o in Outcome},
}
FORGED = ("the form was not sent from this dashboard's own page (its CSRF token is missing or wrong, or the "
          "request came from another site): reload the page and try again")


class LoggedOut(Exception):
    pass


def page_principal(request: Request, session: SessionDep, at: Clock) -> Principal:
    """The signed-in user from the cookie; a page without one goes to the login form."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise LoggedOut
    try:
        # Remembered, so a denial on a page (another organisation's resident, a forged form) is recorded as theirs.
        return remember_principal(session, principal_from_token(session, token, at))
    except ApiError:
        raise LoggedOut from None


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def form_principal(request: Request, principal: PagePrincipal, csrf: Annotated[str, Form(max_length=128)] = "",
                   ) -> Principal:
    """The signed-in user of a form post: only from this origin, with the session's CSRF token (else 403)."""
    if not same_origin(request) or not session_token_matches(request.cookies.get(TOKEN_COOKIE, ""), csrf):
        raise Forbidden(FORGED)
    return principal


FormPrincipal = Annotated[Principal, Depends(form_principal)]


def login_redirect(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/dashboard/login", status_code=303)


def back(alert: Alert, notice: str) -> Response:
    """Back to the resident's page, saying what happened (a code of :data:`NOTICES`)."""
    assert notice in NOTICES, notice
    target = f"/dashboard/residents/{alert.resident_id}" if alert.resident_id else "/dashboard"
    return RedirectResponse(f"{target}?notice={notice}", status_code=303)


# --- time ----------------------------------------------------------------------------------------------------------


def home_zone(home: Home | None) -> ZoneInfo:
    return timezones.zone(home.timezone, of=f"home {home.id}") if home is not None else timezones.zone(None)


def zone_name(name: str | None, home_id: str = "") -> ZoneInfo:
    return timezones.zone(name, of=f"home {home_id}" if home_id else "")


def zone_label(local: datetime, zone: ZoneInfo) -> str:
    """``GMT``, ``BST``, ``CET``; the zone's name in brackets when it has no letter abbreviation (``-03``)."""
    abbreviation = local.tzname() or ""
    return abbreviation if abbreviation.isalpha() else f"({zone.key})"


def when(moment: datetime, zone: ZoneInfo, at: datetime, *, label: bool = True) -> str:
    """A moment in the resident's local time, said relative to their today, with the zone: ``14:05 GMT``,
    ``yesterday 23:10 GMT``, ``03 Dec 09:00 GMT`` (and the year when it is not this year's)."""
    local = moment.astimezone(zone)
    today = at.astimezone(zone).date()
    if local.date() == today:
        text = local.strftime("%H:%M")
    elif local.date() == today - timedelta(days=1):
        text = local.strftime("yesterday %H:%M")
    elif local.year == today.year:
        text = local.strftime("%d %b %H:%M")
    else:
        text = local.strftime("%d %b %Y %H:%M")
    return f"{text} {zone_label(local, zone)}" if label else text


def alert_view(alert: Alert, zone: ZoneInfo, at: datetime) -> dict[str, Any]:
    urgent = alert.severity >= 3
    badge = "urgent" if urgent else "unseen" if alert.kind in DEVICE_HEALTH else "warning"
    return {"id": alert.id, "kind": alert.kind, "kind_label": KIND_LABELS.get(alert.kind, alert.kind),
            "message": alert.message, "state": alert.state, "severity": alert.severity, "badge": badge,
            "since": when(alert.raised_at, zone, at), "acknowledged_by": alert.acknowledged_by,
            "resolution_note": alert.resolution_note, "resolved_by": alert.resolved_by,
            "resolved_at": when(alert.resolved_at, zone, at) if alert.resolved_at else None,
            "outcome": alert.outcome, "outcome_label": outcomes.label(alert.outcome) if alert.outcome else None,
            "outcome_note": alert.outcome_note, "outcome_by": alert.outcome_by,
            "has_outcome": alert.kind != AlertKind.RETURNED, "notes": [], "going_round": []}
