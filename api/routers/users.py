"""An organisation's users and API keys: admins only. Every change is in the audit trail.

An API key belongs to the organisation and names its creator; it works only while its owner (its creator, until
an admin reassigns it) is an active admin of the organisation (:func:`api.security.api_key_for`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.audit import CREATE, DEACTIVATE, DELETE, REACTIVATE, REASSIGN, REVOKE, UPDATE, audit
from api.deps import ADMIN, Admin, Clock, PathId, Principal, SessionDep
from api.errors import Conflict, Invalid, NotFound
from api.pagination import Page, PageDep, paginate
from api.schemas.auth import ApiKeyIn, ApiKeyOut, UserIn, UserOut, UserUpdate
from api.schemas.common import DbId, In
from api.security import hash_password, new_api_key, revoke_all_tokens
from gateway.db.models import ApiKey, Recipient, User

router = APIRouter(prefix="/users", tags=["users"])
keys_router = APIRouter(prefix="/api-keys", tags=["api keys"])


class KeyOut(ApiKeyOut):
    created_by: int | None = Field(description="the user who created it (None if an API key did, or once that "
                                               "user is deleted)")
    owner_id: int | None = Field(description="the admin answerable for it: its creator until reassigned")
    working: bool = Field(description="not revoked, and its owner is an active admin of the organisation: a key "
                                      "stops working when its owner is deactivated, removed or no longer an "
                                      "admin, until reassigned (POST /api-keys/{id}/reassign)")


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown once, store it now")


class KeyReassign(In):
    owner_id: DbId = Field(description="an active admin of the organisation, answerable for the key from now on")


def _active_admin(session: Session, organisation_id: int, user_id: int | None) -> User | None:
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or user.organisation_id != organisation_id or not user.active or user.role != ADMIN:
        return None
    return user


def _key_out(session: Session, key: ApiKey) -> KeyOut:
    working = key.revoked_at is None and _active_admin(session, key.organisation_id, key.owner_id) is not None
    return KeyOut(**ApiKeyOut.model_validate(key).model_dump(), created_by=key.created_by, owner_id=key.owner_id,
                  working=working)


def _user_label(user: User) -> str:
    return f"user {user.id} ({user.email})"


def _owned_keys(session: Session, user_id: int) -> int:
    """How many live keys this user answers for (they stop working when the user stops being an active admin)."""
    return session.scalar(select(func.count()).select_from(ApiKey)
                          .where(ApiKey.owner_id == user_id, ApiKey.revoked_at.is_(None))) or 0


def _keys_note(session: Session, user: User) -> str:
    owned = _owned_keys(session, user.id)
    return f"; {owned} API key(s) they own stopped working until reassigned" if owned else ""


def _user(session: Session, principal: Principal, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.organisation_id != principal.organisation_id:
        raise NotFound(f"no user {user_id} in your organisation")
    return user


def _check_recipient(session: Session, organisation_id: int, recipient_id: int | None) -> None:
    if recipient_id is None:
        return
    recipient = session.get(Recipient, recipient_id)
    if recipient is None or recipient.organisation_id != organisation_id:
        raise Invalid(f"no recipient {recipient_id} in your organisation: add them first (POST /recipients)")


@router.get("", response_model=Page[UserOut], summary="The organisation's users")
def list_users(principal: Admin, session: SessionDep, page: PageDep) -> Page[UserOut]:
    stmt = select(User).where(User.organisation_id == principal.organisation_id).order_by(User.id)
    return paginate(session, stmt, page, UserOut.model_validate)


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED, summary="Add a user")
def create_user(body: UserIn, principal: Admin, session: SessionDep) -> UserOut:
    if session.scalar(select(User.id).where(User.email == body.email)) is not None:
        raise Conflict(f"a user with the email {body.email} exists already")
    _check_recipient(session, principal.organisation_id, body.recipient_id)
    user = User(organisation_id=principal.organisation_id, email=body.email, name=body.name, role=body.role,
                password_hash=hash_password(body.password), recipient_id=body.recipient_id, active=True)
    session.add(user)
    session.flush()
    audit(session, principal, CREATE, "user", None, f"{_user_label(user)} as {user.role}")
    return UserOut.model_validate(user)


@router.get("/{user_id}", response_model=UserOut, summary="One user")
def get_user(user_id: PathId, principal: Admin, session: SessionDep) -> UserOut:
    return UserOut.model_validate(_user(session, principal, user_id))


@router.patch("/{user_id}", response_model=UserOut, summary="Change a user (name, role, carer link, password)")
def update_user(user_id: PathId, body: UserUpdate, principal: Admin, session: SessionDep, at: Clock) -> UserOut:
    user = _user(session, principal, user_id)
    changes = body.model_dump(exclude_unset=True)
    if user.id == principal.user_id and (changes.get("role") not in (None, ADMIN) or changes.get("active") is False):
        # Keeps at least one admin able to undo mistakes.
        raise Conflict("you cannot remove your own admin role or deactivate yourself; ask another admin")
    was: dict[str, Any] = {"name": user.name, "role": user.role, "active": user.active,
                           "recipient_id": user.recipient_id}
    for field in ("name", "role", "active"):
        if changes.get(field) is not None:
            setattr(user, field, changes[field])
    if "recipient_id" in changes:
        _check_recipient(session, principal.organisation_id, changes["recipient_id"])
        user.recipient_id = changes["recipient_id"]
    if changes.get("password") is not None:
        user.password_hash = hash_password(changes["password"])
    if changes.get("password") is not None or changes.get("active") is False:
        revoke_all_tokens(session, user.id, at)
    session.flush()
    _audit_user_update(session, principal, user, was, changes.get("password") is not None, at)
    return UserOut.model_validate(user)


def _audit_user_update(session: Session, principal: Principal, user: User, was: dict[str, Any],
                       password_reset: bool, at: datetime) -> None:
    """One row: deactivate or reactivate when ``active`` changed, else update; what changed, from what to what."""
    said = [f"{field} {was[field]!r} → {getattr(user, field)!r}" for field in ("name", "role", "recipient_id")
            if getattr(user, field) != was[field]]
    if password_reset:
        said.append("password reset (every session logged out)")
    action = UPDATE
    if user.active != was["active"]:
        action = REACTIVATE if user.active else DEACTIVATE
    if not said and action == UPDATE:
        return  # nothing changed
    stops_keys = was["role"] == ADMIN and was["active"] and (not user.active or user.role != ADMIN)
    detail = _user_label(user) + (": " + "; ".join(said) if said else "")
    audit(session, principal, action, "user", None, detail + (_keys_note(session, user) if stops_keys else ""),
          at=at)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a user")
def delete_user(user_id: PathId, principal: Admin, session: SessionDep) -> Response:
    user = _user(session, principal, user_id)
    if user.id == principal.user_id:
        raise Conflict("you cannot remove yourself; ask another admin")
    audit(session, principal, DELETE, "user", None, f"{_user_label(user)}, {user.role}"
          + (_keys_note(session, user) if user.active and user.role == ADMIN else ""))
    session.delete(user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@keys_router.get("", response_model=Page[KeyOut], summary="The organisation's API keys (without the keys)")
def list_keys(principal: Admin, session: SessionDep, page: PageDep) -> Page[KeyOut]:
    stmt = select(ApiKey).where(ApiKey.organisation_id == principal.organisation_id).order_by(ApiKey.id)
    return paginate(session, stmt, page, lambda key: _key_out(session, key))


def _key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.organisation_id != principal.organisation_id:
        raise NotFound(f"no API key {key_id} in your organisation")
    return key


def _key_label(key: ApiKey) -> str:
    return f"key {key.id} {key.name!r} ({key.prefix}…)"


@keys_router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED,
                  summary="Create an API key for an integration (the key is shown once); the caller owns it")
def create_key(body: ApiKeyIn, principal: Admin, session: SessionDep, at: Clock) -> KeyCreated:
    # Owned by the admin creating it; a key created by an admin key is owned by that key's owner.
    owner_id = principal.user_id
    if owner_id is None and principal.api_key_id is not None:
        owner_id = _key(session, principal, principal.api_key_id).owner_id
    new = new_api_key()
    key = ApiKey(organisation_id=principal.organisation_id, name=body.name, role=body.role, prefix=new.prefix,
                 key_hash=new.key_hash, created_by=principal.user_id, owner_id=owner_id, created_at=at)
    session.add(key)
    session.flush()
    audit(session, principal, CREATE, "api_key", None, f"{_key_label(key)} as {key.role}, owner user {owner_id}",
          at=at)
    return KeyCreated(**_key_out(session, key).model_dump(), key=new.key)


@keys_router.post("/{key_id}/reassign", response_model=KeyOut,
                  summary="Make another active admin answerable for a key (it works again if its owner left)")
def reassign_key(key_id: PathId, body: KeyReassign, principal: Admin, session: SessionDep, at: Clock) -> KeyOut:
    key = _key(session, principal, key_id)
    if key.revoked_at is not None:
        raise Conflict(f"API key {key_id} is revoked: create a new one (POST /api-keys)")
    owner = _active_admin(session, principal.organisation_id, body.owner_id)
    if owner is None:
        raise Invalid(f"user {body.owner_id} is not an active admin of your organisation", code="not_an_admin")
    previous, key.owner_id = key.owner_id, owner.id
    session.flush()
    audit(session, principal, REASSIGN, "api_key", None, f"{_key_label(key)}: owner user {previous} → "
                                                          f"{_user_label(owner)}", at=at)
    return _key_out(session, key)


@keys_router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
def revoke_key(key_id: PathId, principal: Admin, session: SessionDep, at: Clock) -> Response:
    key = _key(session, principal, key_id)
    if key.revoked_at is None:
        key.revoked_at = at
        audit(session, principal, REVOKE, "api_key", None, _key_label(key), at=at)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
