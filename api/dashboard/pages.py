"""The coordinators' dashboard: server-rendered pages over the same sessions, rules and services as the API.

Who needs attention comes first: residents with open alerts, most severe first, then homes that can't be seen.
Devices nobody has said what they are for are noted on the caseload and listed on the resident's page, a button
not set up first (its presses are raised as possible pendant presses until it is given the role pendant).
Logging in issues the API's own token, kept in an HttpOnly cookie that only these pages accept (the JSON API takes
bearer tokens and API keys only); every form carries a CSRF token and must come from this origin (``csrf.py``).
Notices after an action are named by a short code (``?notice=resolved``) from a fixed set, never text from the
query string; ids beyond the database's range are a 422. Acknowledging, resolving (with what was found)
and recording the outcome of an alert that cleared by itself call the same services (and write the same audit rows)
as ``POST /alerts/{id}/acknowledge``, ``/resolve`` and ``/outcome``. The baseline page reads the same stored JSON
as ``GET /residents/{id}/baseline``, and shows what carers' false-alarm feedback changed.
"""

from __future__ import annotations

import contextlib
import hmac
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.alerts import DEVICE_HEALTH, AlertKind, Outcome
from analytics.watch.pendant import setting_up_needed, setting_up_urgency
from api.audit import LOGOUT, OUTCOME, RESOLVE, VIEW, remember_principal
from api.dashboard.charts import Mark, daily_bars, day_timeline
from api.dashboard.csrf import LOGIN_CSRF_COOKIE, new_login_token, same_origin, session_token_matches, token_for_session
from api.deps import (
    Clock,
    PathId,
    Principal,
    SessionDep,
    audit,
    care_started,
    get_store,
    principal_from_token,
    resident_for,
    visible_residents,
)
from api.errors import ApiError, Forbidden, NotFound
from api.routers.activity import baseline_out, first_whole_day
from api.routers.alerts import alert_for
from api.routers.auth import checked_login
from api.security import TOKEN_COOKIE, TOKEN_TTL, issue_token, revoke_token
from api.throttle import TooManyLogins
from gateway import timezones
from gateway.alerting import outcomes, service
from gateway.alerting.states import AlertState
from gateway.db.models import Alert, Device, Home, Resident
from gateway.errors import StoreUnavailable
from gateway.stores.readings.base import ReadingStore, stored_activity

router = APIRouter(prefix="/dashboard", include_in_schema=False)
STATIC = Path(__file__).parent / "static"


def _csrf_context(request: Request) -> dict[str, Any]:
    """Every page's forms carry the session's CSRF token (none signed out: the login form has its own)."""
    token = request.cookies.get(TOKEN_COOKIE)
    return {"csrf": token_for_session(token) if token else ""}


templates = Jinja2Templates(directory=Path(__file__).parent / "templates", context_processors=[_csrf_context])
CHART_DAYS = 28
UNSEEN = frozenset({AlertKind.HUB_OFFLINE, AlertKind.CANT_SEE})
KIND_LABELS = {"inactivity": "no activity", "not_up": "not up", "night_exit": "out at night",
               "long_absence": "out long", "no_meals": "no meals", "activity_decline": "less active",
               "cold_home": "cold", "pendant": "pendant", "hub_offline": "hub offline", "cant_see": "can't see",
               "sensor_silent": "sensor silent", "low_battery": "battery low"}
OUTCOME_CHOICES = [(o.value, outcomes.label(o)) for o in Outcome]
# What a page may say after an action, by code: the query string names one, it never supplies the words (a link
# to a real page saying "call 0800 ..." would be believed).
NOTICES = {
    "acknowledged": "Acknowledged: the others in the chain are told you are dealing with it.",
    "resolved": "Resolved: everyone alerted is told.",
    "not_resolved": "Not resolved: choose what was found from the list.",
    "not_recorded": "Not recorded: choose what was found from the list.",
    **{f"recorded_{o.value}": f"Recorded: {outcomes.label(o)}." for o in Outcome},
}
LOGIN_CSRF_TTL = 3600  # seconds a login form stays usable
FORGED = ("the form was not sent from this dashboard's own page (its CSRF token is missing or wrong, or the "
          "request came from another site): reload the page and try again")


class _LoggedOut(Exception):
    pass


def page_principal(request: Request, session: SessionDep, at: Clock) -> Principal:
    """The signed-in user from the cookie; a page without one goes to the login form."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise _LoggedOut
    try:
        # Remembered, so a denial on a page (another organisation's resident, a forged form) is recorded as theirs.
        return remember_principal(session, principal_from_token(session, token, at))
    except ApiError:
        raise _LoggedOut from None


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


def _login_page(request: Request, *, status_code: int = 200, username: str | None = None, error: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
    """The login form, with a fresh double-submit token: in the form, and in a cookie only this form's post gets."""
    token = new_login_token()
    response = templates.TemplateResponse(
        request, "login.html", {"who": None, "username": username, "error": error, "login_csrf": token},
        status_code=status_code, headers=headers)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=LOGIN_CSRF_TTL, path="/dashboard/login", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, at: Clock, username: Annotated[str, Form(max_length=320)],
          password: Annotated[str, Form(max_length=1024)], csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same_origin(request) or not expected or not csrf.isascii() or not hmac.compare_digest(expected, csrf):
        # No password is checked: a forged login would sign the victim in as someone else.
        return _login_page(request, status_code=403, username=username,
                           error="This sign-in form had expired or came from another site: please sign in again.")
    try:
        user = checked_login(request, session, username, password, at)
    except TooManyLogins as e:
        return _login_page(request, status_code=429, username=username,
                           error=e.message[0].upper() + e.message[1:] + ".", headers=e.headers)
    if user is None:
        return _login_page(request, status_code=401, username=username,
                           error="That email and password do not match an account.")
    token, _ = issue_token(session, user, at)
    response = RedirectResponse("/dashboard", status_code=303)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/dashboard/login")
    response.set_cookie(TOKEN_COOKIE, token, max_age=int(TOKEN_TTL.total_seconds()), httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, at: Clock,
           csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    token = request.cookies.get(TOKEN_COOKIE)
    if token:
        if not same_origin(request) or not session_token_matches(token, csrf):
            raise Forbidden(FORGED)  # another site may not sign a carer out in the middle of an emergency
        with contextlib.suppress(ApiError):  # a token already dead: nobody to name in the trail
            audit(session, principal_from_token(session, token, at), LOGOUT, "account", None, at=at)
        revoke_token(session, token, at)
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response


@router.get("", response_class=HTMLResponse)
def caseload(request: Request, principal: PagePrincipal, session: SessionDep, at: Clock) -> Response:
    residents = list(session.scalars(visible_residents(principal).order_by(Resident.name)))
    ids = [r.id for r in residents]
    open_alerts = list(session.scalars(select(Alert).where(
        Alert.resident_id.in_(ids), Alert.organisation_id == principal.organisation_id,
        Alert.state != AlertState.RESOLVED)
        .order_by(Alert.severity.desc(), Alert.raised_at))) if ids else []
    homes = {h.id: h for h in session.scalars(select(Home).where(Home.id.in_([r.home_id for r in residents])))}
    not_set_up = _not_set_up(session, list(homes))
    by_resident: dict[int, list[Alert]] = {}
    for alert in open_alerts:
        by_resident.setdefault(alert.resident_id or 0, []).append(alert)
    rows: list[dict[str, Any]] = []
    for r in residents:
        alerts = by_resident.get(r.id, [])
        home = homes.get(r.home_id)
        zone = _zone(home)
        rows.append({
            "id": r.id, "name": r.name, "home": r.home_id,
            "alerts": [_alert_view(a, zone, at) for a in alerts],
            "severity": max((a.severity for a in alerts), default=0),
            "unseen": any(a.kind in UNSEEN for a in alerts) or (home is not None and home.hub_online is False),
            "last_heard": _when(home.last_seen, zone, at) if home and home.last_seen else None,
            "not_set_up": len(not_set_up.get(r.home_id, [])),
            "buttons_not_set_up": sum(1 for d in not_set_up.get(r.home_id, []) if d["urgent"]),
        })
    # Who needs attention now: the most severe open alert first, then homes that can't be seen, then the rest.
    rows.sort(key=lambda row: (-row["severity"], not row["unseen"], row["name"]))
    for r in residents:
        audit(session, principal, "view", "caseload", r.id, at=at)
    return templates.TemplateResponse(request, "caseload.html", {
        "who": principal.name, "rows": rows, "open_count": len(open_alerts),
        "unseen_count": sum(1 for row in rows if row["unseen"]), "updated": at.strftime("%H:%M UTC")})


@router.get("/residents/{resident_id}", response_class=HTMLResponse)
def resident_page(request: Request, resident_id: PathId, principal: PagePrincipal, session: SessionDep, at: Clock,
                  notice: str | None = None) -> Response:
    resident = resident_for(principal, session, resident_id)
    home = session.get(Home, resident.home_id)
    zone = _zone(home)
    alerts = list(session.scalars(select(Alert).where(Alert.resident_id == resident.id,
                                                      Alert.organisation_id == principal.organisation_id)
                                  .order_by(Alert.raised_at.desc()).limit(50)))
    open_alerts = sorted((a for a in alerts if a.state != AlertState.RESOLVED),
                         key=lambda a: (-a.severity, a.raised_at))
    store: ReadingStore = get_store(request)
    local_today = at.astimezone(zone).date()
    context: dict[str, Any] = {
        "who": principal.name, "notice": NOTICES.get(notice or ""), "days": CHART_DAYS,
        "resident": {"id": resident.id, "name": resident.name, "home": resident.home_id, "timezone": str(zone)},
        "open_alerts": [_alert_view(a, zone, at) for a in open_alerts],
        "history": [_alert_view(a, zone, at) for a in alerts if a.state == AlertState.RESOLVED][:20],
        "outcomes": OUTCOME_CHOICES,
        "today_chart": "", "day_charts": [], "store_error": None,
        "not_set_up": _not_set_up(session, [resident.home_id]).get(resident.home_id, []),
    }
    since = care_started(session, principal, resident)  # nothing from before the resident and the claim
    try:
        context["today_chart"] = _today(store, resident.home_id, zone, local_today, at, since)
        context["day_charts"] = _weeks(store, resident.home_id, local_today, zone, since)
    except StoreUnavailable as e:
        context["store_error"] = f"Activity cannot be shown now: the readings store is unavailable ({e})."
    audit(session, principal, "view", "resident", resident.id, "dashboard", at=at)
    return templates.TemplateResponse(request, "resident.html", context)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock) -> Response:
    alert = alert_for(principal, session, alert_id, to_change=True)
    service.acknowledge(session, alert.id, principal.name, None, at, recipient_id=principal.recipient_id)
    audit(session, principal, "acknowledge", "alert", alert.resident_id, f"alert {alert.id}", at=at)
    return _back(alert, "acknowledged")


@router.post("/alerts/{alert_id}/resolve")
def resolve(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock,
            note: Annotated[str, Form(min_length=1, max_length=2000)],
            outcome: Annotated[str, Form(max_length=32)] = "") -> Response:
    alert = alert_for(principal, session, alert_id, to_change=True)
    try:
        found = outcomes.parse_outcome(outcome) if outcome.strip() else None
    except ValueError:
        return _back(alert, "not_resolved")
    service.resolve(session, alert.id, principal.name, note.strip() or "resolved", at, outcome=found,
                    recipient_id=principal.recipient_id)
    audit(session, principal, RESOLVE, "alert", alert.resident_id,
          f"alert {alert.id}" + (f": {found.value}" if found else ""), at=at)
    return _back(alert, "resolved")


@router.post("/alerts/{alert_id}/outcome")
def record_outcome(alert_id: PathId, principal: FormPrincipal, session: SessionDep, at: Clock,
                   outcome: Annotated[str, Form(max_length=32)],
                   note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """What was found, on an alert that cleared by itself (or a correction)."""
    alert = alert_for(principal, session, alert_id, to_change=True)
    try:
        found = outcomes.parse_outcome(outcome)
    except ValueError:
        return _back(alert, "not_recorded")
    service.record_outcome(session, alert.id, found, principal.name, note.strip() or None, at)
    audit(session, principal, OUTCOME, "alert", alert.resident_id, f"alert {alert.id}: {found.value}", at=at)
    return _back(alert, f"recorded_{found.value}")


@router.get("/residents/{resident_id}/baseline", response_class=HTMLResponse)
def baseline_page(request: Request, resident_id: PathId, principal: PagePrincipal, session: SessionDep,
                  at: Clock) -> Response:
    resident = resident_for(principal, session, resident_id)
    zone = _zone(session.get(Home, resident.home_id))
    context: dict[str, Any] = {"who": principal.name, "resident": {"id": resident.id, "name": resident.name,
                                                                   "home": resident.home_id, "timezone": str(zone)},
                               "baseline": None, "missing": None, "feedback": [], "stillness": []}
    try:
        learned = baseline_out(session, resident)
    except NotFound as e:
        context["missing"] = e.message[0].upper() + e.message[1:] + "."
    else:
        context["baseline"] = learned
        context["taken"] = _when(learned.baseline_at or learned.saved_at, zone, at)
        contexts = list(learned.stillness)
        context["contexts"] = contexts
        context["stillness"] = [
            (half_hour, [(learned.stillness[c].limit_min[i], learned.stillness[c].usual_min[i]) for c in contexts])
            for i, half_hour in enumerate(learned.half_hours)]
        context["feedback"] = [
            {"at": _when(f.at, zone, at), "alert_id": f.alert_id, "kind": KIND_LABELS.get(f.kind, f.kind),
             "context": f.context, "room": f.room, "when": spans(f.half_hours),
             "before": f.limit_before_min, "after": f.limit_after_min} for f in learned.feedback]
    audit(session, principal, VIEW, "activity.baseline", resident.id, "dashboard", at=at)
    return templates.TemplateResponse(request, "baseline.html", context)


def spans(half_hours: list[str]) -> str:
    """``["13:00", "13:30", "14:00", "20:00"]`` → ``13:00–14:30, 20:00–20:30``: the half-hours as periods."""
    minutes = sorted({int(h[:2]) * 60 + int(h[3:5]) for h in half_hours if len(h) >= 5 and h[2] == ":"
                      and h[:2].isdigit() and h[3:5].isdigit()})
    periods: list[list[int]] = []
    for m in minutes:
        if periods and periods[-1][1] == m:
            periods[-1][1] = m + 30
        else:
            periods.append([m, m + 30])
    return ", ".join(f"{a // 60:02d}:{a % 60:02d}–{b // 60 % 24:02d}:{b % 60:02d}" for a, b in periods)


def _not_set_up(session: Session, home_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per home, the devices that still need setting up, a button not set up first (``urgent``)."""
    if not home_ids:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    # Only devices without a role, or buttons (a button may have the wrong one), can need setting up.
    candidates = session.scalars(select(Device).where(Device.home_id.in_(home_ids),
                                                      Device.role.is_(None) | (Device.kind == "button"))
                                 .order_by(Device.name))
    for device in candidates:
        reason = setting_up_needed(device.kind, device.room, device.role)
        if reason is not None:
            out.setdefault(device.home_id, []).append({
                "name": device.name, "kind": device.kind, "room": device.room, "role": device.role,
                "reason": reason, "urgent": setting_up_urgency(device.kind, device.role) == 0})
    for devices in out.values():
        devices.sort(key=lambda d: not d["urgent"])  # stable: by name within each
    return out


def _back(alert: Alert, notice: str) -> Response:
    """Back to the resident's page, saying what happened (a code of :data:`NOTICES`)."""
    assert notice in NOTICES, notice
    target = f"/dashboard/residents/{alert.resident_id}" if alert.resident_id else "/dashboard"
    return RedirectResponse(f"{target}?notice={notice}", status_code=303)


def _today(store: ReadingStore, home: str, zone: ZoneInfo, day: date, at: datetime, since: datetime | None) -> str:
    start = datetime.combine(day, datetime.min.time(), zone)
    start_ms = int(start.timestamp() * 1000)
    from_ms = start_ms if since is None else max(start_ms, int(since.timestamp() * 1000))
    end_ms = int(at.timestamp() * 1000) + 1
    points = store.timeline(home, from_ms, end_ms, limit=50_000) if since is not None and from_ms < end_ms else []
    marks, rooms = [], set()
    for p in points:
        change = stored_activity(p)  # as ingest decided it, and the detectors took it (gateway.reading_facts)
        if change is None:
            continue
        room = p.tags.get("room") or p.tags.get("device", "?")
        rooms.add(room)
        marks.append(Mark((p.time_ms - start_ms) / 60_000, room, f"{change} ({p.tags.get('device', '')})"))
    now_minute = (at.timestamp() * 1000 - start_ms) / 60_000
    return day_timeline(marks, sorted(rooms), now_minute=now_minute)


def _weeks(store: ReadingStore, home: str, today: date, zone: ZoneInfo, since: datetime | None) -> list[str]:
    first = today - timedelta(days=CHART_DAYS - 1)
    shown_from = first_whole_day(since, zone) if since is not None else today + timedelta(days=1)
    by_day = {s.day: s.values for s in store.daily_summaries(home, max(first, shown_from), today)
              if s.day >= shown_from} if shown_from <= today else {}
    days = [first + timedelta(days=i) for i in range(CHART_DAYS)]
    labels = [d.strftime("%d %b") for d in days]

    def series(name: str, scale: float = 1.0) -> list[float | None]:
        return [round(by_day[d][name] / scale, 1) if d in by_day and name in by_day[d] else None for d in days]

    return [daily_bars(labels, series("activities"), label="Activities a day"),
            daily_bars(labels, series("bed_minutes", 60), label="Time in bed", unit=" h"),
            daily_bars(labels, series("out_minutes", 60), label="Time out", unit=" h"),
            daily_bars(labels, series("bathroom_visits"), label="Bathroom visits")]


def _alert_view(alert: Alert, zone: ZoneInfo, at: datetime) -> dict[str, Any]:
    urgent = alert.severity >= 3
    badge = "urgent" if urgent else "unseen" if alert.kind in DEVICE_HEALTH else "warning"
    return {"id": alert.id, "kind": alert.kind, "kind_label": KIND_LABELS.get(alert.kind, alert.kind),
            "message": alert.message, "state": alert.state, "severity": alert.severity, "badge": badge,
            "since": _when(alert.raised_at, zone, at), "acknowledged_by": alert.acknowledged_by,
            "resolution_note": alert.resolution_note, "resolved_by": alert.resolved_by,
            "outcome": alert.outcome, "outcome_label": outcomes.label(alert.outcome) if alert.outcome else None,
            "outcome_note": alert.outcome_note, "outcome_by": alert.outcome_by,
            "has_outcome": alert.kind != AlertKind.RETURNED}


def _when(moment: datetime, zone: ZoneInfo, at: datetime) -> str:
    local = moment.astimezone(zone)
    today = at.astimezone(zone).date()
    if local.date() == today:
        return local.strftime("%H:%M")
    if local.date() == today - timedelta(days=1):
        return local.strftime("yesterday %H:%M")
    return local.strftime("%d %b %H:%M")


def _zone(home: Home | None) -> ZoneInfo:
    return timezones.zone(home.timezone, of=f"home {home.id}") if home is not None else timezones.zone(None)


def install(app: Any) -> None:
    """Mount the pages and send signed-out visitors to the login form."""
    app.include_router(router)
    # Served by the app (not a CDN): the CSP allows styles from this origin only, and no inline ones.
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.add_exception_handler(_LoggedOut, login_redirect)

