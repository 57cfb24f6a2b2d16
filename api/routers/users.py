"""An organisation's users and API keys: admins only."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import ADMIN, Admin, Clock, PathId, Principal, SessionDep
from api.errors import Conflict, Invalid, NotFound
from api.pagination import Page, PageDep, paginate
from api.schemas.auth import ApiKeyCreated, ApiKeyIn, ApiKeyOut, UserIn, UserOut, UserUpdate
from api.security import hash_password, new_api_key, revoke_all_tokens
from gateway.db.models import ApiKey, Recipient, User

router = APIRouter(prefix="/users", tags=["users"])
keys_router = APIRouter(prefix="/api-keys", tags=["api keys"])


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
    return UserOut.model_validate(user)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a user")
def delete_user(user_id: PathId, principal: Admin, session: SessionDep) -> Response:
    user = _user(session, principal, user_id)
    if user.id == principal.user_id:
        raise Conflict("you cannot remove yourself; ask another admin")
    session.delete(user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@keys_router.get("", response_model=Page[ApiKeyOut], summary="The organisation's API keys (without the keys)")
def list_keys(principal: Admin, session: SessionDep, page: PageDep) -> Page[ApiKeyOut]:
    stmt = select(ApiKey).where(ApiKey.organisation_id == principal.organisation_id).order_by(ApiKey.id)
    return paginate(session, stmt, page, ApiKeyOut.model_validate)


@keys_router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED,
                  summary="Create an API key for an integration (the key is shown once)")
def create_key(body: ApiKeyIn, principal: Admin, session: SessionDep, at: Clock) -> ApiKeyCreated:
    new = new_api_key()
    key = ApiKey(organisation_id=principal.organisation_id, name=body.name, role=body.role, prefix=new.prefix,
                 key_hash=new.key_hash, created_by=principal.user_id, created_at=at)
    session.add(key)
    session.flush()
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=new.key)


@keys_router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
def revoke_key(key_id: PathId, principal: Admin, session: SessionDep, at: Clock) -> Response:
    key = session.get(ApiKey, key_id)
    if key is None or key.organisation_id != principal.organisation_id:
        raise NotFound(f"no API key {key_id} in your organisation")
    if key.revoked_at is None:
        key.revoked_at = at
    return Response(status_code=status.HTTP_204_NO_CONTENT)
