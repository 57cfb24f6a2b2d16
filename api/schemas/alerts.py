"""Alerts, their timeline and notifications; acknowledging and resolving."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from analytics.alerts import Outcome
from api.schemas.common import DbId, In, Name, Note, Out, UtcDatetime

State = Literal["raised", "notified", "acknowledged", "resolved"]


class AlertOut(Out):
    id: int
    home_id: str
    resident_id: int | None
    kind: str
    subject: str = Field(description='"" for the resident; a device\'s name or "hub" for device health')
    severity: int
    severity_name: str
    state: State
    message: str
    details: dict[str, Any]
    raised_at: datetime = Field(description="when the threshold was crossed (event time)")
    updated_at: datetime
    repeat_count: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    escalation_step: int
    next_escalation_at: datetime | None
    outcome: Outcome | None = Field(description="what was found (null: not recorded): false_alarm (the resident "
                                                "was fine), fall, unwell, out, sensor_problem, other")
    outcome_note: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    outcome_learned_at: datetime | None = Field(
        description="when the detectors were given the outcome (null: not yet); they learn from false alarms only")


class TimelineEntry(Out):
    at: datetime
    what: str
    who: str | None
    detail: str


class NotificationOut(Out):
    id: int
    recipient_id: int
    recipient_name: str
    step: int
    purpose: str
    priority: int
    title: str
    state: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    receipt_state: str | None
    created_at: datetime


class NoteOut(Out):
    """A note on an alert (append-only: a correction is another note)."""

    id: int
    alert_id: int
    at: datetime = Field(description="when it was written")
    author: str = Field(description="who wrote it, named as they were then")
    author_user_id: int | None = Field(description="their account (null: an API key, or the account was deleted)")
    text: str


class AttendanceOut(Out):
    """Someone going round to the resident."""

    id: int
    alert_id: int
    name: str = Field(description="who is going round: a user's name or the person named")
    user_id: int | None = Field(description="their account, when they are a user")
    said_at: datetime = Field(description="when it was said")
    expected_at: datetime | None = Field(description="when they expect to arrive (null: not said)")
    recorded_by: str = Field(description="who said so: themselves, or a coordinator")
    recorded_by_user_id: int | None
    cleared_at: datetime | None = Field(description="null: they are going round now; else when it was cleared "
                                                    "(done, or someone else went instead)")
    cleared_by: str | None


class CareRecordOut(Out):
    """The care team's record on an alert: its outcome, who is (and was) going round, and the notes."""

    alert_id: int
    state: State
    outcome: Outcome | None = Field(description="what was found: false_alarm (the resident was fine), fall, "
                                                "unwell, out, sensor_problem, other (null: not recorded)")
    outcome_note: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    attendance: AttendanceOut | None = Field(description="who is going round now (null: nobody said so)")
    attendance_history: list[AttendanceOut] = Field(description="everyone who said they were going round, oldest "
                                                                "first, the current one included")
    notes: list[NoteOut] = Field(description="oldest first")


class AlertDetailOut(AlertOut):
    timeline: list[TimelineEntry]
    notifications: list[NotificationOut]
    # Defaults so that code building a detail without the record (an older caller) still validates.
    attendance: AttendanceOut | None = Field(None, description="who is going round now (null: nobody said so)")
    attendance_history: list[AttendanceOut] = Field(default_factory=list)
    notes: list[NoteOut] = Field(default_factory=list, description="the care team's notes, oldest first")


class AcknowledgeIn(In):
    note: Note | None = None


class ResolveIn(In):
    note: Note = Field(description="what was found and done")
    outcome: Outcome | None = Field(None, description="what was found, in the shared vocabulary (recommended: a "
                                                      "false_alarm teaches the detectors)")


class OutcomeIn(In):
    """What was found, on an alert already resolved (one that cleared by itself), or a correction."""

    outcome: Outcome
    note: Note | None = None


class NoteIn(In):
    text: Note = Field(description="what was found, done or arranged (up to 2,000 characters)")


class AttendanceIn(In):
    """Who is going round: a user of the organisation (``user_id``), a person named (``name``: a neighbour, a
    relative), or neither: the caller themselves."""

    user_id: DbId | None = Field(None, description="a user of your organisation")
    name: Name | None = Field(None, description="someone who is not a user (a neighbour, a relative)")
    expected_at: UtcDatetime | None = Field(None, description="when they expect to arrive (ISO 8601 with offset)")

    @model_validator(mode="after")
    def _one_person(self) -> AttendanceIn:
        if self.user_id is not None and self.name is not None:
            raise ValueError("give user_id (a user) or name (someone else), not both")
        return self
