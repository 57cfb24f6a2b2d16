"""The alerting vocabulary: the states of an alert, of a notification and of an emergency message's receipt, and
what a notification is for.

They are ``StrEnum``s so a member *is* its value: the values are stored in the operational database and shown in
the API's JSON, and a row read back (a plain ``str``) compares equal to its member. Changing a value is a
migration, not a refactor.
"""

from __future__ import annotations

from enum import StrEnum


class AlertState(StrEnum):
    RAISED = "raised"
    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


#: Nobody has said they are dealing with it yet: the chain escalates and messages repeat.
UNACKNOWLEDGED: tuple[AlertState, ...] = (AlertState.RAISED, AlertState.NOTIFIED)


class NotificationState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Purpose(StrEnum):
    """Why a notification is sent: the first three ask someone to act; the others inform."""

    ALERT = "alert"
    ESCALATION = "escalation"
    REPEAT = "repeat"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    NOTICE = "notice"


#: The purposes that ask someone to act (and so count as "was alerted").
ALERTING: tuple[Purpose, ...] = (Purpose.ALERT, Purpose.ESCALATION, Purpose.REPEAT)


class ReceiptState(StrEnum):
    """Where an emergency-priority message stands with Pushover, which repeats it until acknowledged."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    EXPIRED = "expired"
    CANCEL = "cancel"  # acknowledged or resolved here: Pushover is still to be told to stop repeating it
    CANCELLED = "cancelled"
    GONE = "gone"  # Pushover no longer knows the receipt: nothing more to follow
