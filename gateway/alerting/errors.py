"""What the alerting services raise; the API turns them into 404/409/422, the dashboard into notices on the page,
the CLI into exit code 2."""

from __future__ import annotations

__all__ = ["AlertAlreadyAcknowledged", "AlertAlreadyResolved", "AlertError", "AlertNotFound", "AttendanceRefused",
           "CareRecordInvalid", "CareRecordRefused", "ExpectedTimeRefused", "NobodyGoingRound", "NotesFull",
           "OutcomeRefused", "PeopleError", "WhoIsGoingUnknown"]


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


# --- The care team's record (gateway.alerting.care_record) ----------------------------------------------------------


class CareRecordRefused(AlertError):
    """The alert's record cannot take this now (a conflict with its state, not bad input)."""


class NotesFull(CareRecordRefused):
    """The alert holds as many notes as one alert keeps."""


class AttendanceRefused(CareRecordRefused):
    """Nobody can be going round for this alert: it is resolved, or has had as many people going round as it keeps."""


class NobodyGoingRound(CareRecordRefused):
    """Nobody is going round for the alert: there is nothing to clear."""


class CareRecordInvalid(AlertError):
    """What was said cannot be recorded as it is (bad input: the caller can say it differently)."""


class WhoIsGoingUnknown(CareRecordInvalid):
    """Who is going round is not said, or names no active user of the alert's organisation."""


class ExpectedTimeRefused(CareRecordInvalid):
    """The expected arrival is in the past, or more than a day ahead."""
