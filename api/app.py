"""The API's composition root: ``create_app(settings)`` builds the FastAPI application; nothing runs at import.

``telecare api`` migrates the database and serves it with uvicorn; tests build it around their own session
factory (and readings store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session, sessionmaker

from api import api_docs, dashboard
from api.errors import install_error_handlers
from api.headers import SecurityHeaders
from api.limits import ApiLimits, RequestLimits
from api.routers import (
    activity,
    alerts,
    audit,
    auth,
    dead_letters,
    devices,
    homes,
    privacy,
    recipients,
    residents,
    users,
)
from api.throttle import login_throttle_for
from gateway.config import Settings
from gateway.db.session import make_engine, make_session_factory, normalise_url
from gateway.stores.readings.base import ReadingStore

__all__ = ["create_app"]

DESCRIPTION = """\
The care coordinators' API: residents, homes and devices, carers (alert recipients), alerts and their
escalation, device health, rejected messages, and the audit trail of who saw what.

Log in with `POST /auth/token` (email and password) and send `Authorization: Bearer <token>`; integrations send
`X-API-Key`. Every error is `{"error": {"status", "code", "message"}}`. See docs/api.md.
"""


# PostgreSQL: connections kept open for as many requests as usually run at once. SQLAlchemy's default (5, closing
# what it opened past them when they come back) opened and closed a connection for most requests under 16 users:
# starting a PostgreSQL backend costs more CPU than the request's queries. Each server process holds up to 25:
# three (telecare api --workers 3) and the gateway's fit PostgreSQL's default max_connections (100).
PG_POOL_SIZE = 20
PG_POOL_OVERFLOW = 5


def _pool(url: str) -> dict[str, object]:
    """SQLite has one writer at a time, and every request writes (its audit rows): requests queue in order for
    one connection here, rather than in SQLite's busy handler, which is not fair (seconds at p99 under load).
    A request that waits longer than ``pool_timeout`` is answered 503."""
    if normalise_url(url).get_backend_name() != "sqlite":
        return {"pool_size": PG_POOL_SIZE, "max_overflow": PG_POOL_OVERFLOW}
    return {"pool_size": 1, "max_overflow": 0, "pool_timeout": 10}


def _to_dashboard(request: Request) -> RedirectResponse:
    """The server's root address: people who open it want the dashboard (it sends them to log in first)."""
    return RedirectResponse(str(request.scope.get("root_path", "")).rstrip("/") + "/dashboard", status_code=307)


def create_app(settings: Settings, *, sessions: sessionmaker[Session] | None = None,
               store: ReadingStore | None = None) -> FastAPI:
    """The API on ``settings.database_url`` (or ``sessions``). Runs no migrations: ``telecare api`` does."""
    engine = None
    if sessions is None:
        engine = make_engine(settings.database_url, **_pool(settings.database_url))
        sessions = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Close only what this app opened (a store given by the caller is the caller's).
        if store is None and app.state.store is not None:
            app.state.store.close()
            app.state.store = None
        if engine is not None:
            engine.dispose()

    # docs_url and redoc_url None: FastAPI's pages load from a CDN; api_docs serves the same from the package.
    app = FastAPI(title="Telecare API", version="1", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.store = store  # None: created at first use (api.deps.get_store)
    app.state.now = lambda: datetime.now(UTC)
    app.state.limits = limits = ApiLimits()
    app.state.login_throttle = login_throttle_for(sessions)  # in the database on PostgreSQL
    install_error_handlers(app)
    for module in (auth, users, residents, homes, recipients, alerts, devices, dead_letters, audit):
        app.include_router(module.router)
    app.include_router(users.keys_router)
    app.include_router(activity.router)
    app.include_router(privacy.router)  # export, erasure, retention settings (issue 12)
    # Before the dashboard's routes, so this one answers "/" (its prefix kept behind a proxy).
    app.add_api_route("/", _to_dashboard, methods=["GET", "HEAD"], include_in_schema=False)
    dashboard.install(app)
    api_docs.install(app)
    app.add_middleware(RequestLimits, limits=limits)  # a 413 before the body is read; the client address
    # Added last, so outermost: every answer of the app (a 413 or 429 of another middleware too) gets the headers.
    app.add_middleware(SecurityHeaders)
    return app
