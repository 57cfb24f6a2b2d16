"""Messages the gateway rejected (they broke the MQTT contract), of the organisation's homes while it cared for them
(its claim periods): a dead letter of an unassigned or unknown home is the operator's (``telecare`` logs and
metrics), and one from before a claim is the previous organisation's, not the new one's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import PathId, SessionDep, Staff, while_cared_for
from api.errors import NotFound
from api.pagination import Page, PageDep, paginate
from api.schemas.common import HomeId, UtcDatetime, Word
from api.schemas.homes import DeadLetterOut
from gateway.db.models import DeadLetter

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


@router.get("", response_model=Page[DeadLetterOut], summary="Rejected messages of your homes, newest first")
def list_dead_letters(
    principal: Staff, session: SessionDep, page: PageDep,
    home_id: Annotated[HomeId | None, Query(description="one home")] = None,
    reason: Annotated[Word | None, Query(description="e.g. bad_json")] = None,
    since: Annotated[UtcDatetime | None, Query(description="received at or after")] = None,
    until: Annotated[UtcDatetime | None, Query(description="received before")] = None,
) -> Page[DeadLetterOut]:
    stmt = select(DeadLetter).where(while_cared_for(principal, DeadLetter.home_id, DeadLetter.received_at))
    if home_id is not None:
        stmt = stmt.where(DeadLetter.home_id == home_id)
    if reason is not None:
        stmt = stmt.where(DeadLetter.reason == reason)
    if since is not None:
        stmt = stmt.where(DeadLetter.received_at >= since)
    if until is not None:
        stmt = stmt.where(DeadLetter.received_at < until)
    stmt = stmt.order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
    return paginate(session, stmt, page, DeadLetterOut.model_validate)


@router.get("/{dead_letter_id}", response_model=DeadLetterOut, summary="One rejected message")
def get_dead_letter(dead_letter_id: PathId, principal: Staff, session: SessionDep) -> DeadLetterOut:
    row = session.scalar(select(DeadLetter).where(
        DeadLetter.id == dead_letter_id, while_cared_for(principal, DeadLetter.home_id, DeadLetter.received_at)))
    if row is None:
        raise NotFound(f"no dead letter {dead_letter_id} for your homes")
    return DeadLetterOut.model_validate(row)
