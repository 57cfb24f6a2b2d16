"""The baseline page: what a resident's alerts are compared with (the same stored JSON as
``GET /residents/{id}/baseline``), and what carers' false-alarm feedback changed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.audit import VIEW
from api.dashboard.common import KIND_LABELS, PagePrincipal, home_zone, templates, when
from api.deps import Clock, PathId, SessionDep, audit, resident_for
from api.errors import NotFound
from api.routers.activity import baseline_out
from gateway.db.models import Home

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("/residents/{resident_id}/baseline", response_class=HTMLResponse)
def baseline_page(request: Request, resident_id: PathId, principal: PagePrincipal, session: SessionDep,
                  at: Clock) -> Response:
    resident = resident_for(principal, session, resident_id)
    zone = home_zone(session.get(Home, resident.home_id))
    context: dict[str, Any] = {"who": principal.name, "resident": {"id": resident.id, "name": resident.name,
                                                                   "home": resident.home_id, "timezone": str(zone)},
                               "baseline": None, "missing": None, "feedback": [], "stillness": []}
    try:
        learned = baseline_out(session, resident)
    except NotFound as e:
        context["missing"] = e.message[0].upper() + e.message[1:] + "."
    else:
        context["baseline"] = learned
        context["taken"] = when(learned.baseline_at or learned.saved_at, zone, at)
        contexts = list(learned.stillness)
        context["contexts"] = contexts
        context["stillness"] = [
            (half_hour, [(learned.stillness[c].limit_min[i], learned.stillness[c].usual_min[i]) for c in contexts])
            for i, half_hour in enumerate(learned.half_hours)]
        context["feedback"] = [
            {"at": when(f.at, zone, at), "alert_id": f.alert_id, "kind": KIND_LABELS.get(f.kind, f.kind),
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
