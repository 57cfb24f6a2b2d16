"""The API's dependencies: a session per request, who is calling, what they may see, the audit trail.

Isolation lives here, not in each route: every query for a resident's data goes through :func:`visible_residents`
(or :func:`resident_for`), so a coordinator sees their organisation's residents and a carer only the residents
whose escalation chain names the carer's linked recipient. What is not visible is "not found" (404), never
"forbidden": another organisation's ids are not confirmed to exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import ColumnElement, Select, exists, false, or_, select
from sqlalchemy.orm import QueryableAttribute, Session, contains_eager, sessionmaker

from api.audit import audit, audit_many, keep_failure_rows, remember_principal, remember_request, write_deferred
from api.errors import Forbidden, NotFound, Unauthorized
from api.schemas.common import INT32_MAX
from api.security import api_key_for, sha256
from gateway.claims import claim_start_query
from gateway.db.models import NAME_LEN, AuthToken, EscalationStep, Home, HomeClaim, Resident, User
from gateway.stores.readings.base import ReadingStore

__all__ = [
    "ADMIN",
    "CARER",
    "COORDINATOR",
    "ROLES",
    "STAFF",
    "Admin",
    "Clock",
    "CurrentUser",
    "PathId",
    "Principal",
    "SessionDep",
    "Staff",
    "StoreDep",
    "audit",
    "audit_many",
    "get_principal",
    "get_session",
    "get_store",
    "principal_from_token",
    "require_role",
    "resident_for",
    "resident_in_care",
    "visible_residents",
    "while_cared_for",
]

ADMIN, COORDINATOR, CARER = "admin", "coordinator", "carer"
ROLES = (ADMIN, COORDINATOR, CARER)
STAFF = (ADMIN, COORDINATOR)  # an admin may do what a coordinator does (someone has to set the first home up)
API_KEY_TOUCH = timedelta(minutes=1)  # last_used_at is written at most this often per key

_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False,
                               description="A token from POST /auth/token (email and password)")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key created by an admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (by token, or the dashboard's cookie on its pages) or an API key, always within one
    organisation."""

    user_id: int | None
    api_key_id: int | None
    organisation_id: int
    role: str
    recipient_id: int | None
    name: str
    token_hash: str | None = None  # the bearer token used, so logout can revoke it

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF


def get_session(request: Request) -> Iterator[Session]:
    """One session (one transaction) per request: committed when the route succeeds, rolled back otherwise."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        remember_request(session, request)  # its audit rows carry the client address
        try:
            yield session
            write_deferred(session)
            session.commit()
        except BaseException as e:
            session.rollback()
            # Failed logins and denied attempts are recorded although the request failed.
            keep_failure_rows(session, request, e, now(request))
            raise


# "function" scope: the commit happens before the response is sent, so a failed commit is an error response
# rather than a success that was not kept.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def now(request: Request) -> datetime:
    """The API's clock (wall time; tests replace ``app.state.now``)."""
    clock: Callable[[], datetime] = request.app.state.now
    return clock()


async def _now(request: Request) -> datetime:
    """:func:`now` as a dependency. Dependencies that neither block nor wait are ``async``: FastAPI runs a plain
    ``def`` dependency in its thread pool, a hand-off to a thread and back for each one (about a tenth of a cheap
    request's time, with 16 requests at once contending for the threads and the GIL)."""
    return now(request)


Clock = Annotated[datetime, Depends(_now)]


def get_principal(
    session: SessionDep,
    at: Clock,
    token: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The caller, from ``Authorization: Bearer`` or ``X-API-Key``, in that order.

    Never from the dashboard's cookie: a browser attaches it to any request, another site's included, so a JSON
    route that took it could be driven cross-site without the dashboard's CSRF checks. The dashboard's pages
    read the cookie themselves (``api.dashboard.common.page_principal``)."""
    if token:
        return remember_principal(session, principal_from_token(session, token, at))
    if api_key:
        key = api_key_for(session, api_key)
        if key is None:
            raise Unauthorized("the API key is unknown or revoked, or its owner is no longer an active admin: "
                               "ask an admin of your organisation (POST /api-keys/{id}/reassign)")
        if key.last_used_at is None or at - key.last_used_at >= API_KEY_TOUCH:
            key.last_used_at = at
        return remember_principal(session, Principal(
            user_id=None, api_key_id=key.id, organisation_id=key.organisation_id, role=key.role, recipient_id=None,
            name=f"API key {key.name}"[:NAME_LEN]))
    raise Unauthorized("log in first: POST /auth/token with your email and password, then send "
                       "'Authorization: Bearer <token>' (or an 'X-API-Key' header)")


def principal_from_token(session: Session, token: str, at: datetime) -> Principal:
    """The user whose live token this is (401 if unknown, revoked, expired or deactivated).

    Read as plain columns in one query, not as ORM objects: every authenticated request pays for this, and
    nothing here is changed. Never cached in the process: a logout or a deactivation holds at the next request,
    in every server process."""
    token_hash = sha256(token)
    row = session.execute(select(AuthToken.revoked_at, AuthToken.expires_at, User.id, User.active,
                                 User.organisation_id, User.role, User.recipient_id, User.name)
                          .join(User, User.id == AuthToken.user_id)
                          .where(AuthToken.token_hash == token_hash)).one_or_none()
    if row is None:
        raise Unauthorized("the token is unknown: log in again (POST /auth/token)")
    if row.revoked_at is not None:
        raise Unauthorized("the token was revoked (logged out): log in again (POST /auth/token)")
    if row.expires_at <= at:
        raise Unauthorized("the token has expired: log in again (POST /auth/token)")
    if not row.active:
        raise Unauthorized("this account is deactivated: ask an admin of your organisation")
    return Principal(user_id=row.id, api_key_id=None, organisation_id=row.organisation_id, role=row.role,
                     recipient_id=row.recipient_id, name=row.name, token_hash=token_hash)


CurrentUser = Annotated[Principal, Depends(get_principal)]
# A path id: database ids are 32-bit on PostgreSQL, so a larger number is a 422, not a query that cannot match.
PathId = Annotated[int, Path(ge=1, le=INT32_MAX)]


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets only these roles through (403 for the others)."""
    allowed = frozenset(roles)

    async def check(principal: CurrentUser) -> Principal:  # async: no thread needed (see _now)
        if principal.role not in allowed:
            raise Forbidden(f"a {principal.role} may not do this; it needs the role "
                            f"{' or '.join(sorted(allowed))}")
        return principal

    return check


Staff = Annotated[Principal, Depends(require_role(*STAFF))]
Admin = Annotated[Principal, Depends(require_role(ADMIN))]


def get_store(request: Request) -> ReadingStore:
    """The readings store, created at the first request that needs it (not every deployment reads readings)."""
    store: ReadingStore | None = request.app.state.store
    if store is None:
        from gateway.stores.readings import reading_store_for

        store = request.app.state.store = reading_store_for(request.app.state.settings)
    return store


async def store_dependency(request: Request) -> ReadingStore:
    """:func:`get_store` as a dependency, on the event loop (see ``_now``): the store is opened at the first
    request that reads readings (a file, or a client object), and only handed over after."""
    return get_store(request)


StoreDep = Annotated[ReadingStore, Depends(store_dependency)]


# --- what a principal may see --------------------------------------------------------------------------------------


def visible_homes(principal: Principal) -> Select[str]:
    """Ids of the homes of the caller's organisation (staff), as a subquery to filter on."""
    return select(Home.id).where(Home.organisation_id == principal.organisation_id)


def while_cared_for(principal: Principal, home_id: QueryableAttribute[str | None],
                    at: QueryableAttribute[datetime]) -> ColumnElement[bool]:
    """True for a home's row made (``at``) while the caller's organisation cared for the home: inside one of its
    claim periods. The previous organisation's data are not the new one's, and the old one keeps its own."""
    return exists().where(HomeClaim.home_id == home_id, HomeClaim.organisation_id == principal.organisation_id,
                          HomeClaim.claimed_at <= at,
                          or_(HomeClaim.released_at.is_(None), at < HomeClaim.released_at))


def visible_residents(principal: Principal) -> Select[Resident]:
    """The residents the caller may see: the organisation's (staff); those in whose chain they are (carers)."""
    stmt = select(Resident).join(Home, Home.id == Resident.home_id).where(
        Home.organisation_id == principal.organisation_id)
    if not principal.is_staff:
        if principal.recipient_id is None:
            return stmt.where(false())  # a carer not linked to a recipient follows nobody
        stmt = stmt.where(exists().where(EscalationStep.resident_id == Resident.id,
                                         EscalationStep.recipient_id == principal.recipient_id))
    return stmt


def visible_resident_ids(principal: Principal) -> Select[int]:
    return visible_residents(principal).with_only_columns(Resident.id)


def resident_for(principal: Principal, session: Session, resident_id: int) -> Resident:
    """The resident, if the caller may see them; else 404 (whether or not they exist elsewhere). Their home comes
    with them, from the join that checks the organisation: every caller reads its time zone, which cost a second
    query when it was loaded lazily."""
    resident = session.scalar(visible_residents(principal).where(Resident.id == resident_id)
                              .options(contains_eager(Resident.home)))
    if resident is None:
        raise _no_resident(principal, resident_id)
    return resident


def _no_resident(principal: Principal, resident_id: int) -> NotFound:
    return NotFound(f"no resident {resident_id} in your organisation"
                    + ("" if principal.is_staff else " that you care for"))


def resident_in_care(principal: Principal, session: Session, resident_id: int) -> tuple[Resident, datetime | None]:
    """:func:`resident_for`, and the earliest moment of their readings the caller may see: the later of the
    resident's creation and the start of the organisation's current claim of the home (a resident lives in one
    claim period: a home with a resident cannot be released); None without a current claim: nothing may be seen.

    One query: the views of readings ask for both at every request, and a round trip to the database cost more
    than the claim's subquery."""
    claimed_at = claim_start_query(Resident.home_id, principal.organisation_id).scalar_subquery()
    row = session.execute(visible_residents(principal).where(Resident.id == resident_id).add_columns(claimed_at)
                          .options(contains_eager(Resident.home))).one_or_none()
    if row is None:
        raise _no_resident(principal, resident_id)
    resident, claimed = row
    return resident, None if claimed is None else max(claimed, resident.created_at)
