"""What the alerting services raise; the API turns them into 404/409, the CLI into exit code 2."""

from __future__ import annotations

__all__ = ["AlertAlreadyAcknowledged", "AlertAlreadyResolved", "AlertError", "AlertNotFound", "OutcomeRefused",
           "PeopleError"]


class AlertError(Exception):
    """Root of the alert services' errors."""


class AlertNotFound(AlertError):
    """No alert has this id."""


class AlertAlreadyResolved(AlertError):
    """The alert is resolved: it can be neither acknowledged nor resolved again."""


class AlertAlreadyAcknowledged(AlertError):
    """Someone acknowledged the alert already (the message names them)."""


class PeopleError(Exception):
    """Residents, recipients, chains or absences: bad input (unknown home, malformed key, empty chain ...)."""


class OutcomeRefused(AlertError):
    """An outcome cannot be recorded on this alert: it is still open (resolve it with its outcome), or it is a
    notice, not an alert."""
