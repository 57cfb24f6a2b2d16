"""Failed logins slow an account down: after a few wrong passwords, that account's logins wait a while.

Health data sits behind these passwords, so guessing must not be cheap. Kept per account (the email, as
normalised) in the API process's memory: a restart forgets it, which costs an attacker little time to gain.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

from api.errors import ApiError


class TooManyLogins(ApiError):
    status, code = 429, "too_many_requests"


class LoginThrottle:
    def __init__(self, *, failures: int = 5, window: timedelta = timedelta(minutes=15)) -> None:
        self.failures = failures
        self.window = window
        self._failed: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def check(self, email: str, at: datetime) -> None:
        """Raise :class:`TooManyLogins` while this account has had too many recent failures."""
        with self._lock:
            recent = self._recent(email, at)
            if len(recent) < self.failures:
                return
            wait = recent[0] + self.window - at
        seconds = max(1, int(wait.total_seconds()) + 1)
        raise TooManyLogins(f"too many failed logins for this account: try again in {seconds // 60 + 1} minutes "
                            "(or ask an admin of your organisation to reset the password)",
                            headers={"Retry-After": str(seconds)})

    def failed(self, email: str, at: datetime) -> None:
        with self._lock:
            self._recent(email, at).append(at)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failed.pop(email, None)

    def _recent(self, email: str, at: datetime) -> deque[datetime]:
        recent = self._failed.setdefault(email, deque())
        while recent and recent[0] <= at - self.window:
            recent.popleft()
        return recent
