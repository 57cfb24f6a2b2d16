"""Logging in and out: ``POST /auth/token`` (OAuth2 password flow), ``POST /auth/logout``, ``GET /auth/me``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import update

from api.deps import Clock, CurrentUser, SessionDep
from api.errors import BadRequest, Unauthorized
from api.schemas.auth import MeOut, PasswordChange, TokenOut
from api.security import authenticate, hash_password, issue_token, revoke_all_tokens, verify_password
from gateway.db.models import AuthToken, Organisation, User

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut, summary="Log in: email and password for a bearer token")
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, at: Clock) -> TokenOut:
    """OAuth2 password flow: ``username`` is the email. The token is valid for 12 hours or until logout."""
    user = authenticate(session, form.username, form.password)
    if user is None:
        raise Unauthorized("wrong email or password (or the account is deactivated)")
    token, expires_in = issue_token(session, user, at)
    return TokenOut(access_token=token, expires_in=expires_in)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the token in use")
def logout(principal: CurrentUser, session: SessionDep, at: Clock) -> Response:
    if principal.token_hash is None:
        raise BadRequest("an API key is not logged out: an admin revokes it with DELETE /api-keys/{id}")
    session.execute(update(AuthToken).where(AuthToken.token_hash == principal.token_hash).values(revoked_at=at))
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
