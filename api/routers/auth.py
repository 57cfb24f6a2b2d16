"""Logging in and out: ``POST /auth/token`` (OAuth2 password flow), ``POST /auth/logout``, ``GET /auth/me``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import update
from sqlalchemy.orm import Session

from api.audit import LOGOUT, audit
from api.deps import Clock, CurrentUser, SessionDep
from api.errors import BadRequest, Unauthorized
from api.schemas.auth import MeOut, PasswordChange, TokenOut
from api.security import (
    authenticate,
    hash_password,
    issue_token,
    normalise_email,
    revoke_all_tokens,
    verify_password,
)
from api.throttle import LoginThrottle
from gateway.db.models import AuthToken, Organisation, User

router = APIRouter(prefix="/auth", tags=["auth"])


def checked_login(request: Request, session: Session, email: str, password: str, at: datetime) -> User | None:
    """:func:`authenticate`, throttled per account (the API's login and the dashboard's)."""
    throttle: LoginThrottle = request.app.state.login_throttle
    key = normalise_email(email)
    throttle.check(key, at)
    user = authenticate(session, email, password)
    if user is None:
        throttle.failed(key, at)
    else:
        throttle.succeeded(key)
    return user


@router.post("/token", response_model=TokenOut, summary="Log in: email and password for a bearer token",
             responses={429: {"description": "Too many failed logins for this account: wait (Retry-After)"}})
def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
          at: Clock) -> TokenOut:
    """OAuth2 password flow: ``username`` is the email. The token is valid for 12 hours or until logout.
    Five wrong passwords for an account within 15 minutes make its logins wait (429)."""
    user = checked_login(request, session, form.username, form.password, at)
    if user is None:
        raise Unauthorized("wrong email or password (or the account is deactivated)")
    token, expires_in = issue_token(session, user, at)
    return TokenOut(access_token=token, expires_in=expires_in)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the token in use")
def logout(principal: CurrentUser, session: SessionDep, at: Clock) -> Response:
    if principal.token_hash is None:
        raise BadRequest("an API key is not logged out: an admin revokes it with DELETE /api-keys/{id}")
    session.execute(update(AuthToken).where(AuthToken.token_hash == principal.token_hash).values(revoked_at=at))
    audit(session, principal, LOGOUT, "account", None, at=at)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MeOut, summary="Who is calling")
def me(principal: CurrentUser, session: SessionDep) -> MeOut:
    organisation = session.get(Organisation, principal.organisation_id)
    return MeOut(user_id=principal.user_id, api_key_id=principal.api_key_id,
                 organisation_id=principal.organisation_id,
                 organisation_name=organisation.name if organisation else "", role=principal.role,
                 recipient_id=principal.recipient_id, name=principal.name)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT,
             summary="Change one's own password (logs out every session)")
def change_password(body: PasswordChange, principal: CurrentUser, session: SessionDep, at: Clock) -> Response:
    if principal.user_id is None:
        raise BadRequest("an API key has no password")
    user = session.get(User, principal.user_id)
    assert user is not None
    ok, _ = verify_password(body.current_password, user.password_hash)
    if not ok:
        raise BadRequest("the current password is wrong", code="wrong_password")
    user.password_hash = hash_password(body.new_password)
    revoke_all_tokens(session, user.id, at)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
