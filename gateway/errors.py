"""Errors the gateway's adapters raise, each carrying the decision the caller has to make: retry or drop."""

from __future__ import annotations

__all__ = ["PointsRejected", "StoreUnavailable"]


class StoreUnavailable(Exception):
    """The readings store cannot take or serve data right now; the same request may succeed later.

    Raised on a refused or timed-out connection, HTTP 429 (too many requests), HTTP 5xx, and on answers that
    an operator has to fix (401/403 bad token, 404 unknown bucket): none of these is the data's fault, so the
    journal keeps the points and the writer retries. ``retry_after`` is the server's ``Retry-After`` in
    seconds when it sent one, else ``None``.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PointsRejected(Exception):
    """The readings store refused the data itself (HTTP 400, 413 or 422, or a value the store cannot hold).

    Retrying the same batch cannot help: the caller splits the batch to find the bad points, or drops them.
    """
