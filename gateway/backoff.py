"""Exponential back-off, the one rule every retry in the product uses: how long to wait before attempt ``n``.

Pure (no clock, no sleeping): callers wait on their own clock, so tests and the simulated clock control time.
A server that says how long to wait (HTTP ``Retry-After``) is heard in one of two ways, chosen by the caller:

* ``RetryAfter.AT_LEAST``: never sooner than the server asked, nor sooner than the back-off (a journal consumer
  in front of the readings store: it must not hammer a store that is recovering);
* ``RetryAfter.INSTEAD``: the server's word replaces the back-off, up to ``retry_after_cap_s`` (alert delivery:
  a message that waits longer than it is useful is worse than a refused one, and a short ``Retry-After`` is
  taken at its word).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class RetryAfter(StrEnum):
    AT_LEAST = "at least"
    INSTEAD = "instead"


@dataclass(frozen=True, slots=True)
class Backoff:
    """``first_s`` before the second attempt, multiplied by ``factor`` after each further failure, at most
    ``cap_s``; never less than ``floor_s``."""

    first_s: float
    cap_s: float
    factor: float = 2.0
    floor_s: float = 0.0
    retry_after: RetryAfter = RetryAfter.AT_LEAST
    retry_after_cap_s: float = math.inf

    def __post_init__(self) -> None:
        if not (self.first_s >= 0 and self.cap_s >= self.first_s and self.factor >= 1 and self.floor_s >= 0):
            raise ValueError(f"back-off needs 0 <= first_s <= cap_s and factor >= 1 (got {self!r})")

    def delay_s(self, failures: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after ``failures`` failures in a row (1 for the first), and the server's
        ``Retry-After`` in seconds if it sent one."""
        if failures < 1:
            raise ValueError(f"failures counts from 1 (got {failures})")
        computed = self._exponential_s(failures)
        if retry_after_s is not None:
            if self.retry_after is RetryAfter.INSTEAD:
                computed = min(retry_after_s, self.retry_after_cap_s)
            else:
                computed = max(computed, min(retry_after_s, self.retry_after_cap_s))
        return max(computed, self.floor_s)

    def _exponential_s(self, failures: int) -> float:
        if self.first_s == 0 or self.factor == 1:
            return self.first_s
        # Bounded exponent: past the cap a bigger power only overflows (a long outage counts thousands of failures).
        steps_to_cap = math.ceil(math.log(self.cap_s / self.first_s, self.factor))
        return min(self.cap_s, self.first_s * self.factor ** min(failures - 1, steps_to_cap))
