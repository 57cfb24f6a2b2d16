"""One JSON shape for every error: ``{"error": {"status", "code", "message"}}``, plus ``fields`` for 422.

Routers raise :class:`ApiError` (or a subclass); the handlers here also turn FastAPI's own errors (unknown route,
wrong method, validation) and the services' errors into the same shape, so a client parses one thing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.alerting.errors import AlertError, AlertNotFound, CareRecordInvalid, PeopleError
from gateway.alerting.people import AbsenceOverlap

log = logging.getLogger(__name__)

__all__ = ["ApiError", "BadRequest", "Conflict", "Forbidden", "Invalid", "NotFound", "Unauthorized", "Unavailable",
           "install_error_handlers"]

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests",
          500: "internal", 503: "unavailable"}


class ApiError(Exception):
    """An error for the client: an HTTP status, a stable machine code and a message a person can act on."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    """Not logged in, or the credentials are wrong, expired or revoked."""

    status, code = 401, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """Logged in, but the role does not allow this."""

    status, code = 403, "forbidden"


class NotFound(ApiError):
    """Absent, or not visible to the caller: the two are deliberately indistinguishable across organisations."""

    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Invalid(ApiError):
    """The request is well formed but its content cannot be accepted (unknown recipient, invalid Pushover key)."""

    status, code = 422, "invalid"


class Unavailable(ApiError):
    """A service the request needs (Pushover, the readings store) cannot be reached: try again later."""

    status, code = 503, "unavailable"


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, **extra}}


def _response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
              **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, **extra), status_code=status, headers=headers)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "chain", 0, "wait_min")`` → ``body.chain[0].wait_min``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        fields.append({"field": _where(err.get("loc", ())), "message": message})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5]) or "the request is invalid"
    return _response(422, "invalid", summary, fields=fields)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _response(exc.status, exc.code, exc.message, exc.headers)


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    if status == 404 and detail == "Not Found":
        detail = "no such endpoint: see /docs for the API's endpoints"
    elif status == 405:
        detail = "this endpoint does not take that method: see /docs"
    return _response(status, _CODES.get(status, "error"), detail, getattr(exc, "headers", None))


async def _alert_errors(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, AlertNotFound):
        return _response(404, "not_found", str(exc))
    if isinstance(exc, CareRecordInvalid):  # who is going round, or when: said so that it cannot be recorded
        return _response(422, "invalid", str(exc))
    return _response(409, "conflict", str(exc))  # the alert's state refuses it (resolved, acknowledged, full)


async def _people(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, AbsenceOverlap):  # well formed, but it conflicts with an absence already planned
        return _response(409, "conflict", str(exc))
    return _response(422, "invalid", str(exc))


async def _integrity(_request: Request, exc: Exception) -> JSONResponse:
    # A safety net: the routers check what they can first; a race (two clients at once) ends up here.
    log.info("integrity error: %s", exc)
    return _response(409, "conflict", "the change conflicts with the current data (a duplicate, or something "
                                      "still refers to it); reload and try again")


async def _data(_request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the schemas let through (a bug to fix there, but the client's input).
    log.warning("database refused a value: %s", exc)
    return _response(422, "invalid", "a value in the request cannot be stored (too long or out of range)")


async def _busy(_request: Request, exc: Exception) -> JSONResponse:
    # SQLite's one writer lock held past the busy timeout, or no pooled connection free in time (the embedded
    # database under load): a moment, not a bug.
    if isinstance(exc, PoolTimeout) or "locked" in str(exc) or "busy" in str(exc):
        log.warning("database busy: %s", exc)
        return _response(503, "unavailable", "the database is busy; try again in a moment", {"Retry-After": "1"})
    return await _internal(_request, exc)


async def _internal(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _response(500, "internal", "an internal error occurred; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(AlertError, _alert_errors)  # Starlette looks a handler up along the error's MRO
    app.add_exception_handler(PeopleError, _people)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DataError, _data)
    app.add_exception_handler(OperationalError, _busy)
    app.add_exception_handler(PoolTimeout, _busy)
    app.add_exception_handler(Exception, _internal)
