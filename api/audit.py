"""The audit trail: who viewed or changed a resident's data, who logged in (or failed to), who changed the
organisation's users, keys, homes and recipients, and who was refused (health data: coordinators must be able to
show all of it).

Every route that reads or changes a resident's data (the resident, their chain and absences, their alerts, their
activity) calls :func:`audit` in the request's transaction: a change is never kept without its audit row, and a
failed request leaves no trace of a view that did not happen.

Some events are failures, whose request is rolled back: failed logins, refused password changes, throttled logins,
denied attempts (403, and 404 for what the caller may not see). Those are *deferred* (:func:`audit_failure`) and
written by :func:`write_deferred` after the rollback, in their own transaction, *folded*: at most one row per
actor (or account and client address) per minute per kind, its ``occurrences`` counting the rest, so a flood of
refusals costs a row a minute rather than a row a request.

Each row keeps the client address the request came from (:func:`client_address`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from api.security import normalise_email
from gateway.db.models import (
    AUDIT_RESOURCE_LEN,
    CLIENT_ADDRESS_LEN,
    NAME_LEN,
    AuditEntry,
    User,
)

if TYPE_CHECKING:
    from api.deps import Principal

__all__ = [
    "ACKNOWLEDGE",
    "CLAIM",
    "CREATE",
    "DEACTIVATE",
    "DELETE",
    "DENIED",
    "ERASE",
    "EXPORT",
    "FOLD_WINDOW",
    "LIST",
    "LOGIN",
    "LOGIN_FAILED",
    "LOGIN_THROTTLED",
    "LOGOUT",
    "OUTCOME",
    "PASSWORD_CHANGE",
    "PASSWORD_CHANGE_FAILED",
    "REACTIVATE",
    "REASSIGN",
    "RELEASE",
    "RESOLVE",
    "REVOKE",
    "UPDATE",
    "VIEW",
    "audit",
    "audit_account",
    "audit_account_failure",
    "audit_failure",
    "audit_login",
    "audit_login_throttled",
    "audit_many",
    "audit_password_change",
    "client_address",
    "mask_secret",
    "record_denial",
    "write_deferred",
]

log = logging.getLogger(__name__)

# Actions on a resident's data
VIEW, LIST, CREATE, UPDATE, DELETE, ACKNOWLEDGE, RESOLVE, OUTCOME = (
    "view", "list", "create", "update", "delete", "acknowledge", "resolve", "outcome")
# Accounts and sessions
LOGIN, LOGIN_FAILED, LOGIN_THROTTLED, LOGOUT = "login", "login_failed", "login_throttled", "logout"
PASSWORD_CHANGE, PASSWORD_CHANGE_FAILED = "password_change", "password_change_failed"
# The organisation's setup
DEACTIVATE, REACTIVATE, REVOKE, REASSIGN, CLAIM, RELEASE, EXPORT = (
    "deactivate", "reactivate", "revoke", "reassign", "claim", "release", "export")
# Privacy: a resident erased (the row that outlives them, naming who erased which id, and when)
ERASE = "erase"
# Refusals
DENIED = "denied"

FOLD_WINDOW = timedelta(minutes=1)  # repeated failures of one kind by one actor within this share a row
DENIED_STATUSES = frozenset({403, 404})
AUDIT_TABLE: Table = AuditEntry.__table__  # type: ignore[assignment]  # a mapped class's table is a Table
_DEFERRED = "audit_deferred"  # session.info key: rows to write whether the request succeeds or fails
_ADDRESS = "client_address"  # session.info key: the request's client address
_PRINCIPAL = "principal"  # session.info key: the caller, once known (api.deps.get_principal)


def client_address(request: Request) -> str | None:
    """The address the request came from: as :class:`api.limits.RequestLimits` resolved it behind the trusted
    proxies (the same address the login throttle keys on), else the peer's."""
    resolved = getattr(request.state, "client_address", None)
    if isinstance(resolved, str):
        return resolved[:CLIENT_ADDRESS_LEN]
    return request.client.host[:CLIENT_ADDRESS_LEN] if request.client else None


def remember_request(session: Session, request: Request) -> None:
    """Called by the request's session dependency: the rows written in it carry the request's client address."""
    session.info[_ADDRESS] = client_address(request)


def remember_principal(session: Session, principal: Principal) -> Principal:
    """Called once the caller is known, so a denial of this request can be recorded against them."""
    session.info[_PRINCIPAL] = principal
    return principal


def mask_secret(secret: str | None) -> str:
    """A key as the trail shows it: its last 4 characters, enough to tell two keys apart and nothing to use."""
    if not secret:
        return "none"
    return "…" + secret[-4:] if len(secret) > 8 else "…"


def _now(at: datetime | None) -> datetime:
    return at or datetime.now(UTC)


def audit(session: Session, principal: Principal, action: str, resource: str, resident_id: int | None,
          detail: str = "", *, at: datetime | None = None) -> None:
    """Record that the caller did ``action`` (view, list, create, update, delete, acknowledge ...) on ``resource``
    (resident, alert, alerts, activity ...). Written in the request's transaction: a failed request leaves no
    trace of a view that did not happen, and a change is never kept without its audit row."""
    _insert(session, principal, action, resource, [resident_id], detail, at)


def audit_many(session: Session, principal: Principal, action: str, resource: str,
               resident_ids: Iterable[int | None], detail: str = "", *, at: datetime | None = None) -> None:
    """One row per resident whose data a list showed, so each resident's trail is complete on its own."""
    _insert(session, principal, action, resource, sorted({r for r in resident_ids if r is not None}), detail, at)


def _insert(session: Session, principal: Principal, action: str, resource: str, resident_ids: Sequence[int | None],
            detail: str, at: datetime | None) -> None:
    """The rows inserted now, in one statement into the table, rather than added as objects for the session's
    flush: every read request writes its row, and the ORM's unit of work (or its bulk insert) cost more than the
    insert itself (bench/api.py, docs/benchmarks.md)."""
    if not resident_ids:
        return
    common = {"organisation_id": principal.organisation_id, "at": _now(at), "user_id": principal.user_id,
              "api_key_id": principal.api_key_id, "actor": principal.name[:NAME_LEN], "action": action,
              "resource": resource[:AUDIT_RESOURCE_LEN], "detail": detail,
              "client_address": session.info.get(_ADDRESS)}
    session.execute(insert(AUDIT_TABLE), [{**common, "resident_id": r} for r in resident_ids])


def audit_account(session: Session, user: User, action: str, detail: str = "", *,
                  at: datetime | None = None) -> None:
    """A row about a login account (a login, a password change): the account is the actor, in its organisation.
    In the request's transaction, like :func:`audit`."""
    session.add(AuditEntry(organisation_id=user.organisation_id, at=_now(at), user_id=user.id, api_key_id=None,
                           actor=user.name[:NAME_LEN], action=action, resource="account", resident_id=None,
                           detail=detail, client_address=session.info.get(_ADDRESS)))


def audit_failure(session: Session, *, organisation_id: int, user_id: int | None, api_key_id: int | None,
                  actor: str, action: str, resource: str, detail: str, at: datetime | None = None,
                  per_address: bool = False) -> None:
    """A failure to record whether or not the request then fails (its transaction rolled back): deferred to
    :func:`write_deferred`, folded with the actor's same failure of the last minute (and the same client address,
    with ``per_address``: failed logins, where the actor is the account tried rather than who tried it)."""
    session.info.setdefault(_DEFERRED, []).append(
        ({"organisation_id": organisation_id, "at": _now(at), "user_id": user_id, "api_key_id": api_key_id,
          "actor": actor[:NAME_LEN], "action": action, "resource": resource[:AUDIT_RESOURCE_LEN],
          "resident_id": None, "detail": detail, "client_address": session.info.get(_ADDRESS)}, per_address))


def audit_account_failure(session: Session, user: User, action: str, detail: str, *,
                          at: datetime | None = None) -> None:
    """A failed login, a throttled login, a refused password change: about ``user``'s account, from this address."""
    audit_failure(session, organisation_id=user.organisation_id, user_id=user.id, api_key_id=None,
                  actor=user.name, action=action, resource="account", detail=detail, at=at, per_address=True)


def record_denial(session: Session, request: Request, exc: BaseException, at: datetime) -> None:
    """If ``exc`` refused a known caller (403, or 404: what they may not see is "not found"), defer its row. A 404
    is recorded whether or not the id exists in another organisation: the trail does not confirm that either."""
    principal: Principal | None = session.info.get(_PRINCIPAL)
    status = getattr(exc, "status", None)
    if status is None and type(exc).__name__ == "AlertNotFound":
        status = 404
    if principal is None or status not in DENIED_STATUSES:
        return
    route = request.scope.get("route")
    template = getattr(route, "path", None) or request.url.path
    message = getattr(exc, "message", None) or str(exc)
    audit_failure(session, organisation_id=principal.organisation_id, user_id=principal.user_id,
                  api_key_id=principal.api_key_id, actor=principal.name, action=DENIED,
                  resource=f"{status} {request.method} {template}",
                  detail=f"{request.method} {request.url.path}: {message}"[:1000], at=at)


def write_deferred(session: Session) -> None:
    """Write the deferred rows, folding each into its kind's row of the last minute when there is one. Called by
    the request's session dependency before its commit, or after its rollback (then committed on its own)."""
    deferred: list[tuple[dict[str, Any], bool]] = session.info.pop(_DEFERRED, [])
    for values, per_address in deferred:
        same = [AuditEntry.organisation_id == values["organisation_id"], AuditEntry.action == values["action"],
                AuditEntry.resource == values["resource"], AuditEntry.at > values["at"] - FOLD_WINDOW,
                AuditEntry.at <= values["at"]]
        for column, value in ((AuditEntry.user_id, values["user_id"]),
                              (AuditEntry.api_key_id, values["api_key_id"])):
            same.append(column.is_(None) if value is None else column == value)
        if per_address:
            address = values["client_address"]
            same.append(AuditEntry.client_address.is_(None) if address is None
                        else AuditEntry.client_address == address)
        row_id = session.scalar(select(AuditEntry.id).where(*same)
                                .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(1))
        if row_id is None:
            session.add(AuditEntry(**values))
        else:
            session.execute(update(AuditEntry).where(AuditEntry.id == row_id)
                            .values(occurrences=AuditEntry.occurrences + 1))
    session.flush()


def keep_failure_rows(session: Session, request: Request, exc: BaseException, at: datetime) -> None:
    """After a failed request's rollback: record a denial, write the deferred rows, commit. Never raises (the
    request's own error is what the client must get); a failure here is logged."""
    try:
        record_denial(session, request, exc, at)
        if session.info.get(_DEFERRED):
            write_deferred(session)
            session.commit()
    except Exception:  # the audit must not replace the request's error
        log.exception("could not write the audit rows of a failed request")
        session.rollback()


def _account(session: Session, email: str) -> User | None:
    email = normalise_email(email)
    return None if "\x00" in email else session.scalar(select(User).where(User.email == email))


def audit_login(session: Session, email: str, user: User | None, *, at: datetime | None = None) -> None:
    """A login's outcome: ``user`` when it succeeded, else a failed login of the account with that email (folded
    per account and address). An email that is no account belongs to no organisation: logged, not audited."""
    if user is not None:
        audit_account(session, user, LOGIN, at=at)
        return
    account = _account(session, email)
    if account is None:
        log.info("failed login for an unknown email %r from %s", email[:254], session.info.get(_ADDRESS))
        return
    reason = "the account is deactivated" if not account.active else "wrong password"
    audit_account_failure(session, account, LOGIN_FAILED, reason, at=at)


def audit_login_throttled(session: Session, email: str, *, at: datetime | None = None) -> None:
    """A login refused by the throttle (folded per account and address, like failed logins)."""
    account = _account(session, email)
    if account is None:
        log.info("throttled login for an unknown email %r from %s", email[:254], session.info.get(_ADDRESS))
        return
    audit_account_failure(session, account, LOGIN_THROTTLED, "too many failed logins: told to wait", at=at)


def audit_password_change(session: Session, user: User, ok: bool, *, at: datetime | None = None) -> None:
    """One's own password changed (every session logged out), or refused for a wrong current password."""
    if ok:
        audit_account(session, user, PASSWORD_CHANGE, "every session logged out", at=at)
    else:
        audit_account_failure(session, user, PASSWORD_CHANGE_FAILED, "the current password was wrong", at=at)
