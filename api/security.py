"""Passwords, bearer tokens and API keys.

* Passwords are hashed with argon2 (pwdlib's recommended hasher); hashes made with older parameters are
  upgraded at the next login.
* Tokens and API keys are opaque random strings (``secrets.token_urlsafe``). Only their sha256 is stored: a leaked
  database does not leak working credentials, and a token can be revoked (logout) or expire (``TOKEN_TTL``).
  A plain hash is enough for these (unlike passwords): they carry 256 bits of randomness.

The dashboard logs in through the same functions (:func:`authenticate`, :func:`issue_token`) and keeps the token in
the ``telecare_token`` cookie.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from pwdlib import PasswordHash
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db.models import ApiKey, AuthToken, User

__all__ = ["API_KEY_PREFIX", "TOKEN_COOKIE", "TOKEN_TTL", "authenticate", "hash_password", "issue_token",
           "new_api_key", "revoke_token", "sha256", "verify_password"]

TOKEN_TTL = timedelta(hours=12)
TOKEN_COOKIE = "telecare_token"
API_KEY_PREFIX = "tck_"  # recognisable in logs and secret scanners
MIN_PASSWORD_LEN = 10
MAX_PASSWORD_LEN = 1024

_hasher = PasswordHash.recommended()
# Verified when the email is unknown, so a wrong email takes as long as a wrong password (no account probing).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hashing_slots(cores: int | None, processes: str | None) -> int:
    """Hashes one process computes at once: half the cores, shared among the API's processes (``telecare api
    --workers N`` tells each one N in ``TELECARE_API_WORKERS``), at least one each.

    argon2 takes a core (and 64 MiB) for about 120 ms, so a login flood hashing on every core would leave none for
    the requests that care (alerts); the rest wait, holding no database connection."""
    try:
        workers = max(1, int(processes or 1))
    except ValueError:
        workers = 1
    return max(1, (cores or 2) // 2 // workers)


_HASHING = threading.BoundedSemaphore(hashing_slots(os.cpu_count(), os.environ.get("TELECARE_API_WORKERS")))


def hash_password(password: str) -> str:
    with _HASHING:
        return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """(matches, a new hash to store when the stored one used older parameters)."""
    with _HASHING:
        return _hasher.verify_and_update(password, password_hash)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, else None (the caller says 401 without saying which).

    The password is checked with no connection held: argon2 takes about 120 ms, and on SQLite the API has one
    pooled connection (and one writer), so a login that held it through the hash made every other request
    (and the gateway's dispatcher) wait behind a login flood. The user's row is read, the session's transaction
    ended (its connection back in the pool), the hash checked, and the user read again in a new, short
    transaction for the caller to record the login in. Ends any transaction the session had open (committed)."""
    email = normalise_email(email)
    # A NUL cannot be in a stored email, and PostgreSQL refuses it in a query.
    found = None if "\x00" in email else session.execute(
        select(User.id, User.password_hash, User.active).where(User.email == email)).one_or_none()
    session.commit()  # releases the connection before the slow part
    if found is None:
        with _HASHING:
            _hasher.verify(password, _DUMMY_HASH)
        return None
    user_id, password_hash, active = found
    ok, new_hash = verify_password(password, password_hash)
    if not ok or not active:
        return None
    user = session.get(User, user_id)
    if user is None or not user.active or user.password_hash != password_hash:
        return None  # deactivated or given a new password while we were hashing
    if new_hash is not None:
        user.password_hash = new_hash
    return user


def issue_token(session: Session, user: User, now: datetime, ttl: timedelta = TOKEN_TTL) -> tuple[str, int]:
    """A new bearer token for ``user``: (the token, its lifetime in seconds). Only its hash is stored."""
    token = secrets.token_urlsafe(32)
    session.add(AuthToken(user_id=user.id, token_hash=sha256(token), created_at=now, expires_at=now + ttl))
    session.flush()
    return token, int(ttl.total_seconds())


def revoke_token(session: Session, token: str, now: datetime) -> bool:
    result = session.execute(update(AuthToken).where(AuthToken.token_hash == sha256(token),
                                                     AuthToken.revoked_at.is_(None)).values(revoked_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_all_tokens(session: Session, user_id: int, now: datetime) -> None:
    """Log a user out everywhere (their password changed, or they were deactivated)."""
    session.execute(update(AuthToken).where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
                    .values(revoked_at=now))


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: str  # shown once
    prefix: str
    key_hash: str


def new_api_key() -> NewApiKey:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(key=key, prefix=key[:12], key_hash=sha256(key))


def api_key_for(session: Session, key: str) -> ApiKey | None:
    """The key, if it is live: not revoked, and its owner (the admin answerable for it: its creator until
    reassigned) still an active admin of the key's organisation. A key dies with its owner's deactivation, removal
    or demotion, so an integration cannot outlive the person who vouched for it (an admin reassigns it)."""
    return session.scalar(select(ApiKey).join(User, User.id == ApiKey.owner_id).where(
        ApiKey.key_hash == sha256(key), ApiKey.revoked_at.is_(None), User.active.is_(True),
        User.role == "admin", User.organisation_id == ApiKey.organisation_id))
