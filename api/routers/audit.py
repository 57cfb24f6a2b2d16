"""``GET /audit``: who viewed or changed what about a resident, for the organisation's admins and coordinators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import SessionDep, Staff
from api.pagination import Page, PageDep, paginate
from api.schemas.audit import AuditOut
from api.schemas.common import INT32_MAX, UtcDatetime, text
from gateway.db.models import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])

IdQuery = Annotated[int | None, Query(ge=1, le=INT32_MAX)]


@router.get("", response_model=Page[AuditOut], summary="The audit trail, newest first")
def list_audit(
    principal: Staff, session: SessionDep, page: PageDep,
    resident_id: IdQuery = None,
    user_id: IdQuery = None,
    api_key_id: IdQuery = None,
    action: Annotated[text(32) | None, Query(description="view, list, update ...")] = None,
    since: Annotated[UtcDatetime | None, Query()] = None,
    until: Annotated[UtcDatetime | None, Query()] = None,
) -> Page[AuditOut]:
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
                    AuditOut.model_validate)
