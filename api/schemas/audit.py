"""The audit trail."""

from __future__ import annotations

from datetime import datetime

from api.schemas.common import Out


class AuditOut(Out):
    id: int
    at: datetime
    user_id: int | None
    api_key_id: int | None
    actor: str
    action: str
    resource: str
    resident_id: int | None
    detail: str
