"""Signing in and out of the dashboard. (The server's root address leads here: ``api/app.py``.)

Logging in issues the API's own token, kept in an HttpOnly cookie that only the dashboard's pages accept (the JSON
API takes bearer tokens and API keys only). The login form has no session yet, so it carries a double-submit token
of its own (``csrf.py``); signing out needs the session's CSRF token, so another site cannot sign a carer out.
"""

from __future__ import annotations

import contextlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.audit import LOGOUT
from api.dashboard.common import FORGED, templates
from api.dashboard.csrf import LOGIN_CSRF_COOKIE, new_login_token, same_origin, session_token_matches
from api.deps import Clock, SessionDep, audit, principal_from_token
from api.errors import ApiError, Forbidden
from api.routers.auth import checked_login
from api.security import TOKEN_COOKIE, TOKEN_TTL, issue_token, revoke_token
from api.throttle import TooManyLogins

router = APIRouter(prefix="/dashboard", include_in_schema=False)
LOGIN_CSRF_TTL = 3600  # seconds a login form stays usable


def _login_page(request: Request, *, status_code: int = 200, username: str | None = None, error: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
    """The login form, with a fresh double-submit token: in the form, and in a cookie only this form's post gets."""
    token = new_login_token()
    response = templates.TemplateResponse(
        request, "login.html", {"who": None, "username": username, "error": error, "login_csrf": token},
        status_code=status_code, headers=headers)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=LOGIN_CSRF_TTL, path="/dashboard/login", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, at: Clock, username: Annotated[str, Form(max_length=320)],
          password: Annotated[str, Form(max_length=1024)], csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same_origin(request) or not expected or not csrf.isascii() or not hmac.compare_digest(expected, csrf):
        # No password is checked: a forged login would sign the victim in as someone else.
        return _login_page(request, status_code=403, username=username,
                           error="This sign-in form had expired or came from another site: please sign in again.")
    try:
        user = checked_login(request, session, username, password, at)
    except TooManyLogins as e:
        return _login_page(request, status_code=429, username=username,
                           error=e.message[0].upper() + e.message[1:] + ".", headers=e.headers)
    if user is None:
        return _login_page(request, status_code=401, username=username,
                           error="That email and password do not match an account.")
    token, _ = issue_token(session, user, at)
    response = RedirectResponse("/dashboard", status_code=303)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/dashboard/login")
    response.set_cookie(TOKEN_COOKIE, token, max_age=int(TOKEN_TTL.total_seconds()), httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, at: Clock,
           csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    token = request.cookies.get(TOKEN_COOKIE)
    if token:
        if not same_origin(request) or not session_token_matches(token, csrf):
            raise Forbidden(FORGED)  # another site may not sign a carer out in the middle of an emergency
        with contextlib.suppress(ApiError):  # a token already dead: nobody to name in the trail
            audit(session, principal_from_token(session, token, at), LOGOUT, "account", None, at=at)
        revoke_token(session, token, at)
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response
