"""``GET /audit``: who viewed or changed what, logged in, or was refused, for the organisation's admins and
coordinators; ``GET /audit/export``: the whole trail of a period as CSV or JSON Lines, for the organisation's data
protection officer (admins only)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from api.audit import EXPORT, audit
from api.deps import Admin, SessionDep, Staff
from api.errors import BadRequest
from api.pagination import Page, PageDep, paginate
from api.schemas.audit import AuditOut
from api.schemas.common import INT32_MAX, UtcDatetime, Word
from gateway.db.models import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])

IdQuery = Annotated[int | None, Query(ge=1, le=INT32_MAX)]
EXPORT_BATCH = 1000  # rows read per query: each batch takes the (on SQLite, only) pooled connection briefly
EXPORT_COLUMNS = ("id", "at", "organisation_id", "user_id", "api_key_id", "actor", "client_address", "action",
                  "resource", "resident_id", "occurrences", "detail")
# A spreadsheet runs a cell starting with one of these as a formula ("CSV injection"): an actor's name or a
# denied path is text someone else chose.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class AuditRowOut(AuditOut):
    client_address: str | None = Field(description="where the request came from (None for older rows)")
    occurrences: int = Field(description="how many events the row stands for: repeated denials and failed "
                                         "logins of one kind within a minute share a row")


@router.get("", response_model=Page[AuditRowOut], summary="The audit trail, newest first")
def list_audit(
    principal: Staff, session: SessionDep, page: PageDep,
    resident_id: IdQuery = None,
    user_id: IdQuery = None,
    api_key_id: IdQuery = None,
    action: Annotated[Word | None, Query(description="view, list, update, login_failed, denied ...")] = None,
    since: Annotated[UtcDatetime | None, Query()] = None,
    until: Annotated[UtcDatetime | None, Query()] = None,
) -> Page[AuditRowOut]:
    stmt = select(AuditEntry).where(AuditEntry.organisation_id == principal.organisation_id)
    for column, value in ((AuditEntry.resident_id, resident_id), (AuditEntry.user_id, user_id),
                          (AuditEntry.api_key_id, api_key_id), (AuditEntry.action, action)):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    return paginate(session, stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()), page,
                    AuditRowOut.model_validate)


@router.get("/export", summary="The organisation's audit trail for a period, as CSV or JSON Lines (admins)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}},
                             "description": "Oldest first; streamed"}})
def export_audit(
    request: Request, principal: Admin, session: SessionDep,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl (one JSON object a line)")] = "csv",
    start: Annotated[UtcDatetime | None, Query(alias="from", description="from this time (inclusive)")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to", description="until this time (exclusive)")] = None,
) -> StreamingResponse:
    """Every row of the caller's organisation in ``[from, to)``, oldest first: for a data protection officer (a
    subject access request, an investigation). The export itself is recorded in the trail."""
    if start is not None and end is not None and end <= start:
        raise BadRequest("'to' must be after 'from'")
    audit(session, principal, EXPORT, "audit", None, f"format {format}, from {start.isoformat() if start else '-'} "
                                                     f"to {end.isoformat() if end else '-'}")
    # The rows are streamed after this request's session is committed and closed: each batch is read in its own
    # short session, so a large export never holds the connection (SQLite has one) between batches.
    rows = _rows(request.app.state.sessions, principal.organisation_id, start, end)
    lines = _csv_lines(rows) if format == "csv" else (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    stamp = f"{principal.organisation_id}-{request.app.state.now():%Y%m%dT%H%M%SZ}"
    return StreamingResponse(
        lines, media_type="text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{format}"',
                 "Cache-Control": "no-store"})


def _rows(sessions: sessionmaker[Session], organisation_id: int, start: datetime | None,
          end: datetime | None) -> Iterator[dict[str, Any]]:
    """The organisation's rows in ``[start, end)`` by (at, id), a batch per query (keyset: no OFFSET scans)."""
    after: tuple[datetime, int] | None = None
    while True:
        stmt = select(AuditEntry).where(AuditEntry.organisation_id == organisation_id)
        if start is not None:
            stmt = stmt.where(AuditEntry.at >= start)
        if end is not None:
            stmt = stmt.where(AuditEntry.at < end)
        if after is not None:
            stmt = stmt.where(or_(AuditEntry.at > after[0], and_(AuditEntry.at == after[0], AuditEntry.id > after[1])))
        with sessions() as session:
            entries = list(session.scalars(stmt.order_by(AuditEntry.at, AuditEntry.id).limit(EXPORT_BATCH)))
            batch = [_row(entry) for entry in entries]
        yield from batch
        if len(batch) < EXPORT_BATCH:
            return
        after = (entries[-1].at, entries[-1].id)


def _row(entry: AuditEntry) -> dict[str, Any]:
    row = {column: getattr(entry, column) for column in EXPORT_COLUMNS}
    row["at"] = entry.at.isoformat()
    return row


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
