"""What a failed Pushover call means for the caller: try again later, or stop trying."""

from __future__ import annotations

__all__ = ["DeliveryError", "GiveUp", "Retry"]


class DeliveryError(Exception):
    """Root of the notifier's errors; catch it to handle both decisions in one place."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Retry(DeliveryError):
    """The same request may succeed later: send it again after a back-off.

    Raised when Pushover cannot be reached (connection refused or reset, DNS failure), when it does not answer
    within the client's ``timeout_s``, on HTTP 429 (the application's monthly message limit is reached) and on
    HTTP 5xx or any answer that is not Pushover's JSON. ``retry_after_s`` is how long the server asked us to wait
    (``Retry-After``, or for 429 the time until ``X-Limit-App-Reset``) when it said, else ``None``: the caller
    then uses its own back-off. ``status`` is the HTTP status when there was an answer.
    """

    def __init__(self, reason: str, *, retry_after_s: float | None = None, status: int | None = None) -> None:
        super().__init__(reason, status=status)
        self.retry_after_s = retry_after_s


class GiveUp(DeliveryError):
    """Pushover refused the request itself (HTTP 4xx other than 429): sending it again cannot help.

    Raised for an invalid application token, an invalid user or group key, bad parameters (a blank message,
    a priority out of range, an emergency message without ``retry``/``expire``) and an unknown receipt.
    ``reason`` is Pushover's own error text (its ``errors`` joined with "; "), ``errors`` the list itself, and
    ``invalid`` the parameters Pushover marked ``"invalid"`` in its answer (e.g. ``{"token"}`` or ``{"user"}``).
    An operator has to fix the token or the recipient's key; the caller escalates to another recipient.
    """

    def __init__(
        self, reason: str, *, status: int | None = None, errors: list[str] | None = None,
        invalid: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(reason, status=status)
        self.errors = errors or []
        self.invalid = invalid

    @property
    def token_refused(self) -> bool:
        """Pushover refused the application token: no message can be sent, whoever it is for (not the
        recipient's fault; the dispatcher falls back to the console and alarms operators)."""
        return "token" in self.invalid
