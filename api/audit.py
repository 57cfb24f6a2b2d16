"""The audit trail of who viewed or changed a resident's data (health data: coordinators must be able to show it).

Every route that reads or changes a resident's data (the resident, their chain and absences, their alerts, their
activity) calls :func:`audit` in the request's transaction. ``GET /audit`` reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from gateway.db.models import AuditEntry

if TYPE_CHECKING:
    from api.deps import Principal

__all__ = ["ACKNOWLEDGE", "CREATE", "DELETE", "LIST", "OUTCOME", "RESOLVE", "UPDATE", "VIEW", "audit", "audit_many"]

# Actions
VIEW, LIST, CREATE, UPDATE, DELETE, ACKNOWLEDGE, RESOLVE, OUTCOME = (
    "view", "list", "create", "update", "delete", "acknowledge", "resolve", "outcome")


def audit(session: Session, principal: Principal, action: str, resource: str, resident_id: int | None,
          detail: str = "", *, at: datetime | None = None) -> None:
    """Record that the caller did ``action`` (view, list, create, update, delete, acknowledge ...) on ``resource``
    (resident, alert, alerts, activity ...). Written in the request's transaction: a failed request leaves no
    trace of a view that did not happen, and a change is never kept without its audit row."""
    session.add(AuditEntry(organisation_id=principal.organisation_id, at=at or datetime.now(UTC),
                           user_id=principal.user_id, api_key_id=principal.api_key_id, actor=principal.name,
                           action=action, resource=resource, resident_id=resident_id, detail=detail))


def audit_many(session: Session, principal: Principal, action: str, resource: str,
               resident_ids: Iterable[int | None], detail: str = "", *, at: datetime | None = None) -> None:
    """One row per resident whose data a list showed, so each resident's trail is complete on its own."""
    for resident_id in sorted({r for r in resident_ids if r is not None}):
        audit(session, principal, action, resource, resident_id, detail, at=at)
