"""The API's composition root: ``create_app(settings)`` builds the FastAPI application; nothing runs at import.

``telecare api`` migrates the database and serves it with uvicorn; tests build it around their own session
factory (and readings store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from api import dashboard
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


def _pool(url: str) -> dict[str, object]:
    """SQLite has one writer at a time, and every request writes (its audit rows): requests queue in order for
    one connection here, rather than in SQLite's busy handler, which is not fair (seconds at p99 under load).
    A request that waits longer than ``pool_timeout`` is answered 503."""
    if normalise_url(url).get_backend_name() != "sqlite":
        return {}
    return {"pool_size": 1, "max_overflow": 0, "pool_timeout": 10}


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

    app = FastAPI(title="Telecare API", version="1", description=DESCRIPTION, lifespan=lifespan)
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
    dashboard.install(app)
    app.add_middleware(RequestLimits, limits=limits)  # a 413 before the body is read; the client address
    # Added last, so outermost: every answer of the app (a 413 or 429 of another middleware too) gets the headers.
    app.add_middleware(SecurityHeaders)
    return app
