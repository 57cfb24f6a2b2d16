"""The dashboard's defence against cross-site requests (issue 12, finding 7): every form posts a token another
site cannot know, from a page of this origin.

* Signed in, the token is bound to the session: an HMAC of a fixed label keyed with the session's own token (the
  HttpOnly cookie). Nothing is stored; it changes at every login and dies with the session, and it reveals nothing
  about the cookie it comes from.
* The login form has no session yet (a forged login would sign the victim in as the attacker): a random token in
  a short-lived cookie, repeated in the form (double submit).
* And the ``Origin`` (or, without it, the ``Referer``) must name this host. A browser sends one of them with every
  form post; a request with neither is not from a browser's page, and still needs the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

__all__ = ["LOGIN_CSRF_COOKIE", "new_login_token", "same_origin", "session_token_matches", "token_for_session"]

LOGIN_CSRF_COOKIE = "telecare_login_csrf"
_LABEL = b"telecare dashboard csrf v1"


def token_for_session(session_token: str) -> str:
    """The CSRF token of the session whose (cookie) token is ``session_token``."""
    return hmac.new(session_token.encode(), _LABEL, hashlib.sha256).hexdigest()


def session_token_matches(session_token: str, sent: str) -> bool:
    # compare_digest takes ASCII strings only; a token is hex.
    return sent.isascii() and hmac.compare_digest(token_for_session(session_token), sent)


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def same_origin(request: Request) -> bool:
    """Whether the post comes from a page of this host (by ``Origin``, else ``Referer``; neither: not a browser)."""
    host = request.headers.get("host", "").lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc.lower() == host
    referer = request.headers.get("referer")
    if referer is not None:
        return urlsplit(referer).netloc.lower() == host
    return True
