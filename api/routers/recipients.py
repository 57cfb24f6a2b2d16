"""Recipients: the carers, neighbours and monitoring centres who are alerted, with their Pushover user key.

When the server has a Pushover application token (``TELECARE_PUSHOVER_TOKEN``), a new or changed key is checked
with Pushover first, so a typo is found now rather than when the first alert cannot be delivered.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit import CREATE, DELETE, UPDATE, audit, mask_secret
from api.deps import PathId, Principal, SessionDep, Staff
from api.errors import Conflict, Invalid, NotFound, Unavailable
from api.pagination import Page, PageDep, paginate
from api.schemas.people import RecipientIn, RecipientOut, RecipientUpdate
from gateway.alerting import people
from gateway.config import Settings
from gateway.db.models import EscalationStep, Recipient
from gateway.notify.errors import DeliveryError, GiveUp
from gateway.notify.pushover import PushoverClient

router = APIRouter(prefix="/recipients", tags=["recipients"])


def _out(session: Session, recipient: Recipient) -> RecipientOut:
    residents = sorted(session.scalars(select(EscalationStep.resident_id)
                                       .where(EscalationStep.recipient_id == recipient.id)))
    return RecipientOut(id=recipient.id, name=recipient.name, pushover_user_key=recipient.pushover_user_key,
                        pushover_device=recipient.pushover_device, created_at=recipient.created_at,
                        residents=residents)


def _recipient(principal: Principal, session: Session, recipient_id: int) -> Recipient:
    recipient = session.get(Recipient, recipient_id)
    if recipient is None or recipient.organisation_id != principal.organisation_id:
        raise NotFound(f"no recipient {recipient_id} in your organisation")
    return recipient


def validate_with_pushover(settings: Settings, session: Session, user_key: str) -> None:
    """Ask Pushover whether ``user_key`` exists (no-op without an application token)."""
    if settings.pushover_token is None:
        return
    # End the transaction first: the call may take seconds, and a SQLite write lock must not wait on it.
    session.commit()
    client = PushoverClient(settings.pushover_url, settings.pushover_token.get_secret_value(),
                            settings.pushover_timeout_s)
    try:
        valid = client.validate_user(user_key)
    except GiveUp as e:
        raise Unavailable(f"Pushover refused the server's application token ({e.reason}): the operator must fix "
                          "TELECARE_PUSHOVER_TOKEN", code="pushover_refused") from None
    except DeliveryError as e:
        raise Unavailable(f"cannot check the key with Pushover now ({e.reason}); try again later",
                          code="pushover_unavailable") from None
    if not valid:
        raise Invalid(f"Pushover says the user key {user_key} is invalid or has no active device: check it in "
                      "the person's Pushover app", code="invalid_pushover_key")


@router.get("", response_model=Page[RecipientOut], summary="Your organisation's recipients")
def list_recipients(principal: Staff, session: SessionDep, page: PageDep) -> Page[RecipientOut]:
    stmt = (select(Recipient).where(Recipient.organisation_id == principal.organisation_id)
            .order_by(Recipient.name, Recipient.id))
    return paginate(session, stmt, page, lambda r: _out(session, r))


@router.post("", response_model=RecipientOut, status_code=status.HTTP_201_CREATED,
             summary="Add a recipient (the Pushover key is checked when the server has a Pushover token)")
def create_recipient(body: RecipientIn, principal: Staff, session: SessionDep, request: Request) -> RecipientOut:
    validate_with_pushover(request.app.state.settings, session, body.pushover_user_key)
    recipient = people.add_recipient(session, body.name, body.pushover_user_key, body.pushover_device,
                                     organisation_id=principal.organisation_id)
    audit(session, principal, CREATE, "recipient", None,
          f"recipient {recipient.id} {recipient.name!r}, Pushover key {mask_secret(recipient.pushover_user_key)}")
    return _out(session, recipient)


@router.get("/{recipient_id}", response_model=RecipientOut, summary="One recipient")
def get_recipient(recipient_id: PathId, principal: Staff, session: SessionDep) -> RecipientOut:
    return _out(session, _recipient(principal, session, recipient_id))


@router.patch("/{recipient_id}", response_model=RecipientOut, summary="Change a recipient")
def update_recipient(recipient_id: PathId, body: RecipientUpdate, principal: Staff, session: SessionDep,
                     request: Request) -> RecipientOut:
    recipient = _recipient(principal, session, recipient_id)
    changes = body.model_dump(exclude_unset=True)
    key = changes.get("pushover_user_key")
    if key is not None and key != recipient.pushover_user_key:
        validate_with_pushover(request.app.state.settings, session, key)
        recipient = _recipient(principal, session, recipient_id)  # a new transaction: read it again
    said = _changes(recipient, key, changes)
    key_changed = key is not None and key != recipient.pushover_user_key
    if key is not None and key_changed:  # mypy narrows `key` on the first test, not through key_changed
        recipient.pushover_user_key = key
    if changes.get("name") is not None:
        recipient.name = changes["name"]
    if "pushover_device" in changes:
        recipient.pushover_device = changes["pushover_device"]
    session.flush()
    out = _out(session, recipient)
    if said:
        # A new key redirects the alerts of every resident whose chain names this recipient: the trail shows
        # which key (masked) replaced which, and whose alerts it carries.
        whose = f"; alerts of resident(s) {', '.join(map(str, out.residents))}" if key_changed and out.residents else ""
        audit(session, principal, UPDATE, "recipient", None,
              f"recipient {recipient.id} {recipient.name!r}: {'; '.join(said)}{whose}")
    return out


def _changes(recipient: Recipient, key: str | None, changes: dict[str, object]) -> list[str]:
    """What the update changes, secrets masked."""
    said = []
    if key is not None and key != recipient.pushover_user_key:
        said.append(f"Pushover key {mask_secret(recipient.pushover_user_key)} → {mask_secret(key)}")
    if changes.get("name") is not None and changes["name"] != recipient.name:
        said.append(f"name {recipient.name!r} → {changes['name']!r}")
    if "pushover_device" in changes and changes["pushover_device"] != recipient.pushover_device:
        said.append(f"device {recipient.pushover_device!r} → {changes['pushover_device']!r}")
    return said


@router.delete("/{recipient_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a recipient who is in no chain")
def delete_recipient(recipient_id: PathId, principal: Staff, session: SessionDep) -> Response:
    recipient = _recipient(principal, session, recipient_id)
    residents = sorted(set(session.scalars(select(EscalationStep.resident_id)
                                           .where(EscalationStep.recipient_id == recipient.id))))
    if residents:
        raise Conflict(f"{recipient.name} is in the escalation chain of resident(s) "
                       f"{', '.join(map(str, residents))}: change those chains first (PUT /residents/{{id}}/chain)")
    audit(session, principal, DELETE, "recipient", None,
          f"recipient {recipient.id} {recipient.name!r}, Pushover key {mask_secret(recipient.pushover_user_key)}")
    session.delete(recipient)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
