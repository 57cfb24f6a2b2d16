"""The caseload page: who needs attention first, for a caseload of hundreds.

Search, filters, sort and paging are the page's query parameters (a GET form: a filtered view is a link that can
be bookmarked or sent), done in the database by :func:`api.caseload.caseload`. A value the page does not know is
not guessed at: the page says which one and shows the caseload without it (400). A page past the last shows the
last. Every time is the resident's local time, labelled with the zone (``common.when``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.caseload import (
    MAX_SEARCH_LEN,
    AlertFilter,
    CaseloadPage,
    CaseloadQuery,
    CaseloadRow,
    CaseloadSort,
    caseload,
    open_alerts,
)
from api.dashboard.common import PagePrincipal, alert_view, templates, when, zone_label, zone_name
from api.deps import Clock, Principal, SessionDep, audit_many
from gateway.db.models import Recipient

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PER_PAGE = (25, 50, 100, 200)
DEFAULT_PER_PAGE = 50
MAX_PAGE = 100_000
SORTS = {"urgency": "Most urgent first", "name": "Name", "home": "Home", "last_heard": "Last heard from"}
STATES = {"": "Any alert state", "urgent": "Urgent", "warning": "Open alert, not urgent", "none": "No open alert"}
Text = Annotated[str, Query(max_length=200)]


@dataclass
class _Parsed:
    query: CaseloadQuery
    page: int
    per_page: int
    errors: list[str] = field(default_factory=list)


def _parse(q: str, state: str, cant_see: str, setup: str, carer: str, sort: str, order: str, page: str,
           per: str) -> _Parsed:
    """The page's parameters as a query, each bad one named in ``errors`` and left out rather than guessed."""
    errors: list[str] = []
    if len(q) > MAX_SEARCH_LEN:
        errors.append(f"The search is longer than {MAX_SEARCH_LEN} characters: shortened.")
        q = q[:MAX_SEARCH_LEN]
    alert_state = None
    if state:
        if state in STATES:
            alert_state = AlertFilter(state)
        else:
            errors.append(f"Unknown alert state {state!r}: choose urgent, warning or none.")
    sort_by = CaseloadSort.URGENCY
    if sort in SORTS:
        sort_by = CaseloadSort(sort)
    elif sort:
        errors.append(f"Unknown sort {sort!r}: shown most urgent first.")
    if order not in ("", "asc", "desc"):
        errors.append(f"Unknown order {order!r}: choose asc or desc.")
    carer_id = _number(carer, "carer", errors, 1, 2**31 - 1)
    page_no = _number(page, "page", errors, 1, MAX_PAGE) or 1
    per_page = _number(per, "residents per page", errors, 1, max(PER_PAGE)) or DEFAULT_PER_PAGE
    query = CaseloadQuery(search=q, alert_state=alert_state, cant_see=cant_see == "1", needs_setting_up=setup == "1",
                          carer=carer_id, sort=sort_by, descending=order == "desc", limit=per_page,
                          offset=(page_no - 1) * per_page)
    return _Parsed(query, page_no, per_page, errors)


def _number(value: str, what: str, errors: list[str], low: int, high: int) -> int | None:
    if not value:
        return None
    if value.isascii() and value.isdigit() and low <= int(value) <= high:
        return int(value)
    errors.append(f"The {what} must be a whole number from {low} to {high}, not {value[:20]!r}.")
    return None


@router.get("", response_class=HTMLResponse)
def caseload_page(request: Request, principal: PagePrincipal, session: SessionDep, at: Clock, q: Text = "",
                  state: Text = "", cant_see: Text = "", setup: Text = "", carer: Text = "", sort: Text = "",
                  order: Text = "", page: Text = "", per: Text = "") -> Response:
    parsed = _parse(q, state, cant_see, setup, carer, sort, order, page, per)
    result = caseload(session, principal, parsed.query)
    last_page = max(1, -(-result.total // parsed.per_page))
    if parsed.page > last_page:  # a bookmarked page of a caseload that has since shrunk: its last page
        parsed.page = last_page
        parsed.query = CaseloadQuery(**{**_fields(parsed.query), "offset": (last_page - 1) * parsed.per_page})
        result = caseload(session, principal, parsed.query)
    alerts = open_alerts(session, principal, [r.resident_id for r in result.rows])
    rows = [_row_view(r, alerts.get(r.resident_id, []), at) for r in result.rows]
    audit_many(session, principal, "view", "caseload", [r.resident_id for r in result.rows], at=at)
    params = {"q": parsed.query.search, "state": state if state in STATES else "",
              "cant_see": "1" if parsed.query.cant_see else "", "setup": "1" if parsed.query.needs_setting_up else "",
              "carer": str(parsed.query.carer or ""), "sort": parsed.query.sort.value,
              "order": "desc" if parsed.query.descending else "", "per": str(parsed.per_page)}
    context = {
        "who": principal.name, "rows": rows, "summary": result.summary, "total": result.total,
        "params": params, "filtered": result.total != result.summary.residents, "errors": parsed.errors,
        "page": parsed.page, "last_page": last_page, "first_shown": parsed.query.offset + 1 if rows else 0,
        "last_shown": parsed.query.offset + len(rows), "per_page_choices": PER_PAGE, "sorts": SORTS,
        "states": STATES, "carers": _carers(session, principal), "updated": _updated(result, at),
        "link": lambda **changes: _link(params, changes),
    }
    return templates.TemplateResponse(request, "caseload.html", context, status_code=400 if parsed.errors else 200)


def _fields(query: CaseloadQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in CaseloadQuery.__dataclass_fields__}


def _link(params: dict[str, str], changes: dict[str, Any]) -> str:
    """This view's address with ``changes``: empty values left out, so links stay short and readable."""
    merged = {**params, **{k: str(v) for k, v in changes.items()}}
    if merged.get("per") == str(DEFAULT_PER_PAGE):
        merged["per"] = ""
    if merged.get("sort") == CaseloadSort.URGENCY.value:
        merged["sort"] = ""
    if merged.get("page") == "1":
        merged["page"] = ""
    encoded = urlencode({k: v for k, v in merged.items() if v})
    return "/dashboard" + (f"?{encoded}" if encoded else "")


def _carers(session: Session, principal: Principal) -> list[tuple[int, str]]:
    """The organisation's carers (recipients) to filter by: whose chains name them."""
    return [(r.id, r.name) for r in session.scalars(
        select(Recipient).where(Recipient.organisation_id == principal.organisation_id).order_by(Recipient.name))]


def _row_view(row: CaseloadRow, alerts: list[Any], at: datetime) -> dict[str, Any]:
    zone = zone_name(row.timezone, row.home_id)
    return {
        "id": row.resident_id, "name": row.name, "home": row.home_id, "home_name": row.home_name,
        "alerts": [alert_view(a, zone, at) for a in alerts], "open_count": row.open_alerts,
        "severity": row.severity or 0, "state": row.alert_state.value, "unseen": row.cant_see,
        "last_heard": when(row.last_heard, zone, at) if row.last_heard else None,
        "not_set_up": row.not_set_up, "buttons_not_set_up": row.buttons_not_set_up,
    }


def _updated(result: CaseloadPage, at: datetime) -> str:
    """When the page was made, in the zone its residents share (the most common one on the page), labelled."""
    zones = Counter(r.timezone for r in result.rows)
    zone = zone_name(zones.most_common(1)[0][0]) if zones else None
    if zone is None:
        return at.astimezone(UTC).strftime("%H:%M UTC")
    local = at.astimezone(zone)
    return f"{local:%H:%M} {zone_label(local, zone)}"
