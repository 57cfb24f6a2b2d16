"""Logging in and out: ``POST /auth/token`` (OAuth2 password flow), ``POST /auth/logout``, ``GET /auth/me``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import update
from sqlalchemy.orm import Session

from api.audit import LOGOUT, audit, audit_login, audit_login_throttled, audit_password_change
from api.deps import Clock, CurrentUser, SessionDep
from api.errors import BadRequest, Conflict, Unauthorized
from api.limits import client_address
from api.schemas.auth import MeOut, PasswordChange, TokenOut
from api.security import (
    authenticate,
    hash_password,
    issue_token,
    normalise_email,
    revoke_all_tokens,
    verify_password,
)
from api.throttle import LoginThrottle, TooManyLogins
from gateway.db.models import AuthToken, Organisation, User

router = APIRouter(prefix="/auth", tags=["auth"])


def checked_login(request: Request, session: Session, email: str, password: str, at: datetime) -> User | None:
    """:func:`authenticate`, throttled by client address and account (the API's login and the dashboard's), and
    audited. The password is checked with no database connection held (``authenticate`` ends the session's
    transaction first); what follows (a token, the audit row) is a new, short transaction."""
    throttle: LoginThrottle = request.app.state.login_throttle
    address, account = client_address(request), normalise_email(email)
    try:
        throttle.check(address, account, at)
    except TooManyLogins:
        audit_login_throttled(session, email, at=at)
        raise
    user = authenticate(session, email, password)
    if user is None:
        throttle.failed(address, account, at)
    else:
        throttle.succeeded(address, account, at)
    audit_login(session, email, user, at=at)
    return user


@router.post("/token", response_model=TokenOut, summary="Log in: email and password for a bearer token",
             responses={429: {"description": "Too many failed logins from this address: wait (Retry-After)"}})
def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
          at: Clock) -> TokenOut:
    """OAuth2 password flow: ``username`` is the email. The token is valid for 12 hours or until logout.
    After five wrong passwords from one address for an account, each further one doubles that address's wait
    (429 with Retry-After); see docs/api.md for the per-address and per-account limits."""
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
             summary="Change one's own password (logs out every session)",
             responses={429: {"description": "Too many wrong current passwords: wait (Retry-After)"}})
def change_password(request: Request, body: PasswordChange, principal: CurrentUser, session: SessionDep,
                    at: Clock) -> Response:
    """Throttled like a login (a stolen token must not make the password guessable), and hashed with no database
    connection held."""
    if principal.user_id is None:
        raise BadRequest("an API key has no password")
    user = session.get(User, principal.user_id)
    assert user is not None
    throttle: LoginThrottle = request.app.state.login_throttle
    address, account = client_address(request), user.email
    try:
        throttle.check(address, account, at)
    except TooManyLogins:
        audit_login_throttled(session, account, at=at)
        raise
    user_id, old_hash = user.id, user.password_hash
    session.commit()  # the connection back in the pool while argon2 runs (twice)
    ok, _ = verify_password(body.current_password, old_hash)
    new_hash = hash_password(body.new_password) if ok else None
    user = session.get(User, user_id)
    assert user is not None
    if not ok or new_hash is None:
        throttle.failed(address, account, at)
        audit_password_change(session, user, False, at=at)
        raise BadRequest("the current password is wrong", code="wrong_password")
    throttle.succeeded(address, account, at)
    if user.password_hash != old_hash:
        raise Conflict("the password was changed meanwhile: log in again")
    user.password_hash = new_hash
    revoke_all_tokens(session, user.id, at)
    audit_password_change(session, user, True, at=at)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
